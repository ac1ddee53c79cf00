"""SLOs no fleet can meet: every SLO (tree, TTFT, TPOT) against its zero-load floor; decode queues.

A fleet cannot be sized to an SLO below the latency an idle replica of its hardware needs, so
``slo.feasible`` checks the tree SLO against each shape's zero-load critical path and the TTFT
and TPOT SLOs against each call's zero-load prefill and decode step times.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from planner.sim.budget import call_floors, zero_load_calls
from planner.sim.config import FleetSpec, SloSpec
from planner.sim.engine import simulate
from planner.sim.metrics import call_latencies, summarize
from planner.sim.pool import pool_replica
from planner.sim.results import SimulationResult
from planner.workload import PoissonArrivals
from tests.conftest import load_fleet, load_workload
from tests.test_verdicts import _peer

LOOSE = SloSpec(tree_e2e_s=1e6, ttft_s=1e6, tpot_s=1e6)


@pytest.fixture(scope="module")
def peer() -> tuple[FleetSpec, SimulationResult]:
    """Llama-2-70B on 4 x TP4 H100 (vLLM), 512 in / 256 out, 200 requests at 20/s."""
    fleet, workload = _peer(n_trees=200)
    result = simulate(fleet, workload, seed=0)
    return fleet, result


def test_loose_slos_are_feasible_and_call_floors_are_reported(
    peer: tuple[FleetSpec, SimulationResult],
) -> None:
    fleet, result = peer
    summary = summarize(result, LOOSE, fleet)
    assert summary["slo"]["feasible"] is True and summary["slo"]["infeasible_reason"] is None
    floor = summary["calls"]["floor_s"]["chat"]
    assert 0 < floor["tpot_s"] < floor["ttft_s"] < 1.0  # a 512-token prefill > one decode step
    assert summary["calls"]["floor_over_slo_fraction"]["chat"] == {"ttft_s": 0.0, "tpot_s": 0.0}


@pytest.mark.parametrize(("field", "label"), [("ttft_s", "TTFT"), ("tpot_s", "TPOT")])
def test_call_slo_below_its_floor_is_infeasible_naming_slo_and_shape(
    peer: tuple[FleetSpec, SimulationResult], field: str, label: str
) -> None:
    fleet, result = peer
    floor = summarize(result, LOOSE, fleet)["calls"]["floor_s"]["chat"][field]
    tight = replace(LOOSE, **{field: floor / 2})
    slo = summarize(result, tight, fleet)["slo"]
    assert slo["feasible"] is False
    reason = slo["infeasible_reason"]
    assert reason.startswith(f"No fleet of h100 meets the {floor / 2:g} s {label} SLO")
    assert "of chat calls" in reason and "adding racks cannot fix it" in reason
    assert "tree SLO" not in reason  # the tree SLO is loose: only the SLO that fails is named
    just_above = summarize(result, replace(LOOSE, **{field: floor * 1.01}), fleet)["slo"]
    assert just_above["feasible"] is True


def test_no_call_beats_its_zero_load_floor_on_an_idle_fleet() -> None:
    """Calls far apart (idle fleet): measured TTFT and TPOT are at or above their floors.

    Step-time jitter is switched off: the floor is the static model's step time, and a jittered
    step may run a few % faster than it.
    """
    fleet = load_fleet("gb200_unified")
    fleet = replace(fleet, pools=tuple(replace(p, step_jitter_cv=0.0) for p in fleet.pools))
    workload = replace(
        load_workload("mixed_agents"),
        arrivals=PoissonArrivals(rate_per_s=0.01),
        n_trees=30,
    )
    result = simulate(fleet, workload, seed=4)
    pool = fleet.pools[0]
    perf = pool_replica(pool)
    per_call = zero_load_calls(
        result, perf, perf, None, 0.0, prefix_cache=True, token_budget=pool.batching.token_budget
    )
    measured = call_latencies(result)
    done = np.isfinite(result.finish_s)
    assert (per_call["prefill_s"][done] <= measured["ttft_s"][done] * 1.02).all()
    outputs = result.trees.output_tokens
    multi = done & (outputs > 1)
    tpot_floor = per_call["decode_s"][multi] / (outputs[multi] - 1)
    assert (tpot_floor <= measured["tpot_s"][multi] * 1.02).all()
    floors = call_floors(result, per_call, LOOSE)
    assert set(floors) <= {"chat", "fanout", "chain", "debate"} and floors


def test_disaggregated_tpot_floor_includes_the_kv_transfer_and_decode_queue_is_reported() -> None:
    fleet = load_fleet("gb200_prefill_lpu_decode")
    workload = replace(load_workload("mixed_agents"), n_trees=60)
    result = simulate(fleet, workload, seed=2)
    summary = summarize(result, LOOSE, fleet)
    decode = summary["pools"]["decode"]
    queue = decode["queue_depth"]
    assert queue is not None and len(queue) == len(decode["kv_occupancy"])
    assert min(queue) >= 0.0
    # the queue integrates each call's wait from KV landing to decode admission
    assert result.decode_admit_s is not None and result.kv_landed_s is not None
    waits = result.decode_admit_s - result.kv_landed_s
    assert np.nanmin(waits) >= 0.0
    total_wait = float(np.nansum(waits))
    rounding = 0.0005 * len(queue) * decode["timeline_bin_s"]  # bins are rounded to 3 decimals
    assert sum(queue) * decode["timeline_bin_s"] == pytest.approx(total_wait, abs=rounding)
    prefill, lpu = pool_replica(fleet.prefill_pool), pool_replica(fleet.decode_pool)
    link = fleet.kv_link_bandwidth_bytes_per_s
    per_call = zero_load_calls(result, prefill, lpu, link, fleet.kv_link_latency_s)
    assert (per_call["transfer_s"][result.trees.output_tokens > 1] > 0).all()
