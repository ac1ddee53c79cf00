"""Engine behaviour: segment advance vs stepping, determinism, conservation, capacity, fan-out."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from planner.sim.config import FleetSpec, PoolSpec, SloSpec
from planner.sim.engine import WorkloadSpec, simulate
from planner.sim.metrics import summarize
from planner.specs.errors import ConfigError
from planner.workload import (
    CallLengths,
    ChatShape,
    DelayLaw,
    FanoutShape,
    LengthLaw,
    PoissonArrivals,
    SharedPrefix,
)
from planner.workload.trees import MIXED_AGENT_SHAPE
from tests.conftest import load_efficiency, load_model, load_system
from tests.sim_helpers import (
    chat_workload,
    checked_engine,  # noqa: F401 (autouse: census after every run)
    gpu_fleet,
    lpu_llama70b_pool,
    queue_pool,
    tree_workload,
)

CHAT = ChatShape()


def _without_wall_time(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "wall_time_s"}


def test_segments_give_the_same_latencies_as_stepping_every_iteration() -> None:
    """Advancing between batch changes without an event per iteration changes nothing (< 0.1%)."""
    fleet = gpu_fleet(replicas=4, max_batch=32)
    workload = tree_workload(3.0, 400, CHAT)
    fast = simulate(fleet, workload, seed=5)
    slow = simulate(fleet, workload, seed=5, stepwise=True)
    for name in ("first_token_s", "finish_s"):
        a = getattr(fast, name) - fast.ready_s
        b = getattr(slow, name) - slow.ready_s
        np.testing.assert_allclose(a, b, rtol=1e-3, err_msg=name)
    assert fast.pools[0].busy_s.sum() == pytest.approx(slow.pools[0].busy_s.sum(), rel=1e-3)


def test_segments_match_stepping_for_agent_trees_with_prefix_sharing() -> None:
    fleet = gpu_fleet(replicas=3, max_batch=32, router="prefix_affinity")
    workload = tree_workload(0.05, 30, MIXED_AGENT_SHAPE)
    fast = simulate(fleet, workload, seed=2)
    slow = simulate(fleet, workload, seed=2, stepwise=True)
    np.testing.assert_allclose(
        fast.finish_s - fast.ready_s, slow.finish_s - slow.ready_s, rtol=1e-3
    )
    assert fast.cached_tokens.sum() == slow.cached_tokens.sum() > 0


def test_same_seed_same_summary_different_seed_different() -> None:
    fleet = gpu_fleet(replicas=4, jitter_cv=0.1)
    workload = tree_workload(0.05, 40, MIXED_AGENT_SHAPE)
    runs = [summarize(simulate(fleet, workload, seed=s), SloSpec()) for s in (7, 7, 8)]
    assert _without_wall_time(runs[0]) == _without_wall_time(runs[1])
    assert runs[0]["calls"]["e2e_s"] != runs[2]["calls"]["e2e_s"]


@pytest.mark.parametrize("cut_s", [20.0, 200.0, None])
def test_conservation_arrived_equals_completed_plus_in_flight_plus_failed(
    cut_s: float | None,
) -> None:
    workload = tree_workload(0.2, 60, MIXED_AGENT_SHAPE)
    result = simulate(gpu_fleet(replicas=2), workload, seed=1, max_sim_time_s=cut_s)
    calls = summarize(result, SloSpec())["calls"]
    assert calls["arrived"] == calls["completed"] + calls["in_flight"] + calls["failed"]
    census = calls["census"]
    assert calls["arrived"] + calls["not_arrived"] + census["tree_pending"] == result.trees.n_calls
    if cut_s == 20.0:
        assert calls["in_flight"] > 0 and not result.complete
    if cut_s is None:
        assert calls["in_flight"] == 0 and calls["not_arrived"] == 0 and result.complete
    finished = np.isfinite(result.finish_s)
    assert (result.finish_s[finished] >= result.ready_s[finished]).all()


def test_utilization_and_power_are_within_physical_bounds() -> None:
    result = simulate(gpu_fleet(replicas=4), tree_workload(4.0, 300, CHAT), seed=0)
    pool = summarize(result, SloSpec())["pools"]["gpu"]
    assert 0.0 < pool["utilization"] <= 1.0
    accelerators = pool["accelerators"]
    per_accel_w = pool["power_kw_mean"] * 1000 / accelerators
    stats = result.pools[0]
    assert stats.idle_power_w <= per_accel_w <= stats.max_power_w


def test_more_replicas_never_raise_mean_latency() -> None:
    """Common random numbers: the same workload on 2, 3, 4, 8 replicas."""
    workload = tree_workload(6.0, 600, CHAT)
    means = []
    for replicas in (2, 3, 4, 8):
        result = simulate(gpu_fleet(replicas=replicas), workload, seed=21)
        means.append(float(np.nanmean(result.finish_s - result.ready_s)))
    for fewer, more in itertools.pairwise(means):
        assert more <= fewer * 1.02, means


def test_fifty_way_fanout_amplifies_the_tail_more_than_ten_way() -> None:
    """Tree p99 / call p99 grows with fan-out at equal utilization.

    A 50-way join waits for the slowest of 50 concurrently batched branches. Mean over three seeds.
    """
    calls_per_s, n_trees = 20.0, 400
    fleet = gpu_fleet(replicas=4, max_batch=128, prefix_cache_fraction=0.0)
    short = CallLengths(LengthLaw.fixed(500), LengthLaw.fixed(20))
    branch = CallLengths(
        LengthLaw.lognormal(1000, sigma=0.5), LengthLaw.lognormal(150, sigma=1.0, max_value=20_000)
    )

    def ratio_and_utilization(fanout: int, seed: int) -> tuple[float, float]:
        shape = FanoutShape(
            n_subcalls=LengthLaw.fixed(fanout),
            waves=1,
            planner=short,
            subcall=branch,
            aggregate=short,
            tool_delay=DelayLaw.fixed(0.0),
            append_parent_outputs=False,
            shared_prefix=SharedPrefix(),
        )
        workload = tree_workload(calls_per_s / (fanout + 2), n_trees, shape)
        result = simulate(fleet, workload, seed=seed)
        call_p99 = np.percentile(result.finish_s - result.ready_s, 99)
        tree_p99 = np.percentile(result.tree_finish_s - result.tree_arrival_s, 99)
        utilization = result.pools[0].busy_s.sum() / (4 * result.sim_time_s)
        return float(tree_p99 / call_p99), float(utilization)

    runs = {
        fanout: [ratio_and_utilization(fanout, seed) for seed in (1, 2, 3)] for fanout in (10, 50)
    }
    ratio = {f: np.mean([r for r, _ in v]) for f, v in runs.items()}
    utilization = {f: np.mean([u for _, u in v]) for f, v in runs.items()}
    assert utilization[50] == pytest.approx(utilization[10], abs=0.1)
    assert ratio[50] > ratio[10]


def test_disaggregated_prefill_on_gpu_decode_on_lpu() -> None:
    prefill = PoolSpec(
        name="prefill",
        role="prefill",
        system=load_system("gb200_nvl72"),
        model=load_model("llama3_70b"),
        efficiency=load_efficiency("nvidia_gpu"),
        racks=1,
        precision="fp8",
        kv_precision="fp8",
        tp=8,
        replicas=2,
    )
    decode = lpu_llama70b_pool("decode", "decode", prefix_cache_fraction=0.0)
    fleet = FleetSpec(pools=(prefill, decode), router="least_outstanding")
    result = simulate(fleet, tree_workload(1.0, 200, CHAT), seed=0)
    summary = summarize(result, SloSpec())
    assert summary["calls"]["completed"] == 200
    multi = result.trees.output_tokens > 1
    # Decoding happened on the LPU chain: deterministic, so every call's TPOT is the same
    # whenever no more sequences are in flight than the chain has chips.
    tpot = (result.finish_s - result.first_token_s)[multi] / (result.trees.output_tokens[multi] - 1)
    assert tpot.std() / tpot.mean() < 0.05
    assert (result.decode_replica[multi] == 0).all()
    assert summary["pools"]["decode"]["output_tokens_per_s"] > 0
    assert summary["pools"]["prefill"]["prefill_tokens_per_s"] > 0


def test_a_call_too_large_for_a_replica_is_refused() -> None:
    shape = ChatShape(call=CallLengths(LengthLaw.fixed(2_000_000), LengthLaw.fixed(10)))
    with pytest.raises(ConfigError) as error:
        simulate(
            gpu_fleet(replicas=1), WorkloadSpec(PoissonArrivals(1.0), shape, n_trees=3), seed=0
        )
    assert error.value.field == "workload"


def test_queue_pool_with_per_replica_routers_still_conserves_calls() -> None:
    for router in ("round_robin", "least_outstanding", "prefix_affinity"):
        result = simulate(
            queue_pool(3, 0.002, router=router),
            chat_workload(5.0, 500, LengthLaw("geometric", mean_value=50)),
            seed=9,
        )
        assert np.isfinite(result.finish_s).all(), router


def test_trace_replay_uses_each_rows_arrival_and_token_counts() -> None:
    from pathlib import Path

    from planner.workload import read_azure_trace
    from planner.workload.arrivals import TraceArrivals

    trace = read_azure_trace(Path(__file__).parent / "data" / "synthetic_azure_format.csv")
    workload = WorkloadSpec(TraceArrivals(trace), CHAT, n_trees=trace.n_requests)
    result = simulate(gpu_fleet(replicas=2), workload, seed=0)
    np.testing.assert_array_equal(result.trees.input_tokens, trace.context_tokens)
    np.testing.assert_array_equal(result.trees.output_tokens, np.maximum(trace.generated_tokens, 1))
    np.testing.assert_allclose(result.tree_arrival_s, trace.arrival_s)
    assert result.trace_zero_output_calls == int((trace.generated_tokens == 0).sum())
    assert np.isfinite(result.finish_s).all()


def test_an_overloaded_fleet_is_reported_unstable_and_a_light_one_stable() -> None:
    over = summarize(
        simulate(gpu_fleet(replicas=1), tree_workload(40.0, 1500, CHAT), seed=0), SloSpec()
    )
    assert not over["stability"]["stable"]
    assert "exceed capacity" in over["stability"]["reason"]
    light = summarize(
        simulate(gpu_fleet(replicas=8), tree_workload(2.0, 600, CHAT), seed=0), SloSpec()
    )
    assert light["stability"]["stable"]


def test_wall_clock_guard_stops_cleanly_with_partial_results() -> None:
    workload = tree_workload(0.5, 3000, MIXED_AGENT_SHAPE)
    calls_seen: list[tuple[float, float]] = []
    result = simulate(
        gpu_fleet(),
        workload,
        seed=0,
        max_wall_s=0.05,
        progress=lambda t, h: calls_seen.append((t, h)),
    )
    summary = summarize(result, SloSpec())
    assert result.stop_reason == "wall_clock" and summary["partial"]
    assert not result.complete
    calls = summary["calls"]
    assert calls["arrived"] == calls["completed"] + calls["in_flight"] + calls["failed"]
    assert calls["in_flight"] + calls["not_arrived"] > 0
    assert calls_seen and all(h == pytest.approx(result.tree_arrival_s[-1]) for _, h in calls_seen)


def test_a_drained_run_is_not_partial() -> None:
    summary = summarize(
        simulate(gpu_fleet(replicas=4), tree_workload(2.0, 100, CHAT), seed=0), SloSpec()
    )
    assert summary["stop_reason"] == "drained" and not summary["partial"]
