"""Turn a run's arrays into the summary a capacity review reads (``summary.json`` keys).

Definitions (all times in seconds):

* a call has *arrived* once it is ready to run (its parents finished, its tool delay passed);
  ``arrived = completed + in_flight + failed``, where ``in_flight`` is counted by the engine's
  census (calls found parked, queued, prefilling, in KV transfer or decoding), not defined as
  the difference; ``not_arrived`` counts calls of trees that had arrived but were not yet ready
  (waiting on parents or a tool delay, or abandoned because their tree died);
* ``retries`` counts restarts (a call restarted twice counts twice; the loss that fails a call
  is not a restart);
* ``queue_s`` = admission to its first replica - ready; ``ttft_s`` = first token - ready;
  ``e2e_s`` = finish - ready; ``tpot_s`` = (finish - first token) / (output tokens - 1), for
  calls with more than one output token;
* ``trees.e2e_s`` = last call's finish - the tree's arrival (the critical path plus queueing);
* a pool's ``busy_fraction`` (``utilization``, its deprecated alias) is the time-weighted
  fraction of replica-time spent running batch iterations (with continuous batching one long
  decode keeps a replica busy, so it says nothing about headroom: read ``headroom``, ``mbu``
  and ``mfu``, see :mod:`planner.sim.headroom`); its power is idle plus that fraction of the
  idle-to-max range, per accelerator, including its share of hosts and switches;
* ``trees.latency_budget`` and ``trees.floor_s``: see :mod:`planner.sim.budget`;
* ``slo.attainment`` is the fraction of arrived trees that completed with their end-to-end
  latency, and every call's TTFT and TPOT, within the SLOs (an unfinished tree counts as missed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner.sim.budget import (
    call_floors,
    feasibility,
    floors,
    latency_budget,
    zero_load_calls,
    zero_load_parts,
)
from planner.sim.config import FleetSpec, PoolSpec, SloSpec
from planner.sim.headroom import (
    achieved_fractions,
    interval_timeline,
    knee_rate_per_s,
    kv_per_token,
    stability,
)
from planner.sim.pool import FAIL_POOL_DOWN, FAIL_RETRIES, pool_replica
from planner.sim.results import PoolStats, SimulationResult

PERCENTILES = (50, 90, 99)

IN_FLIGHT_PLACES = ("parked", "queue", "prefill", "transfer", "decode")
"""Census places of a call that is ready and neither finished nor failed."""


def distribution(values: NDArray[np.float64]) -> dict[str, float | None]:
    """``{mean, p50, p90, p99}`` of the finite values (``None`` when there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}}
    quantiles = np.percentile(finite, PERCENTILES)
    return {
        "mean": float(finite.mean()),
        **{f"p{p}": float(q) for p, q in zip(PERCENTILES, quantiles, strict=True)},
    }


def call_latencies(result: SimulationResult) -> dict[str, NDArray[np.float64]]:
    """Per-call latency arrays (NaN where undefined)."""
    output = result.trees.output_tokens.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(
            output > 1, (result.finish_s - result.first_token_s) / (output - 1.0), np.nan
        )
    return {
        "queue_s": result.admit_s - result.ready_s,
        "ttft_s": result.first_token_s - result.ready_s,
        "tpot_s": tpot,
        "e2e_s": result.finish_s - result.ready_s,
    }


def slo_met_per_tree(result: SimulationResult, slo: SloSpec) -> NDArray[np.bool_]:
    """Per tree, whether it completed within every SLO."""
    latencies = call_latencies(result)
    call_ok = ~(latencies["ttft_s"] > slo.ttft_s) & ~(latencies["tpot_s"] > slo.tpot_s)
    call_ok &= np.isfinite(result.finish_s)
    calls_ok_per_tree = (
        np.minimum.reduceat(call_ok.astype(np.int8), result.trees.node_offsets[:-1]) == 1
    )
    tree_e2e = result.tree_finish_s - result.tree_arrival_s
    ok: NDArray[np.bool_] = calls_ok_per_tree & (tree_e2e <= slo.tree_e2e_s)
    return ok


def offered_call_rate_per_s(result: SimulationResult) -> float | None:
    """Calls/s the workload offers: the tree arrival rate x the mean calls per tree.

    The tree rate is ``(n - 1) / (last arrival - first arrival)`` over the trees drawn (the
    unbiased rate estimate of a renewal process); ``None`` with fewer than two trees.
    """
    arrivals = result.tree_arrival_s
    if arrivals.size < 2 or arrivals[-1] <= arrivals[0]:
        return None
    tree_rate = (arrivals.size - 1) / float(arrivals[-1] - arrivals[0])
    return tree_rate * result.trees.n_calls / result.trees.n_trees


def _done_or_failed(result: SimulationResult, times: NDArray[np.float64]) -> NDArray[np.float64]:
    """``times``, or the failure time where a call was given up before reaching them."""
    if result.fail_s is None:
        return times
    return np.where(np.isfinite(times), times, result.fail_s)


def pool_load(
    result: SimulationResult, spec: PoolSpec, stats: PoolStats, slo: SloSpec
) -> dict[str, Any]:
    """A pool's ``headroom``, ``mbu``, ``mfu`` and KV-occupancy / queue-depth timelines."""
    perf = pool_replica(spec)
    trees = result.trees
    inputs = trees.input_tokens.astype(np.float64)
    outputs = trees.output_tokens.astype(np.float64)
    cached = result.cached_tokens.astype(np.float64)
    efficiency = getattr(perf, "efficiency", None)
    overhead_s = float(getattr(efficiency, "request_overhead_s", 0.0))
    isl = float(inputs.mean()) if inputs.size else 0.0
    osl = float(outputs.mean()) if outputs.size else 0.0
    knee = (
        knee_rate_per_s(
            perf, spec.role, stats.replicas, isl, osl, slo, overhead_s, float(cached.mean())
        )
        if inputs.size
        else 0.0
    )
    offered = offered_call_rate_per_s(result)
    landed = result.kv_landed_s
    prefilled = np.isfinite(result.first_token_s) if spec.role != "decode" else np.zeros(0, bool)
    if spec.role == "unified":
        decoded = np.isfinite(result.finish_s)
    elif spec.role == "decode" and landed is not None:
        decoded = np.isfinite(result.finish_s) & np.isfinite(landed)
    else:
        decoded = np.zeros(trees.n_calls, bool)
    mbu, mfu = achieved_fractions(
        spec,
        perf,
        replicas=stats.replicas,
        sim_time_s=result.sim_time_s,
        busy_s=float(stats.busy_s.sum()),
        batch_s=float(stats.batch_s.sum()),
        prefill_tokens=inputs[prefilled] if prefilled.size else inputs[:0],
        prefill_cached=cached[prefilled] if prefilled.size else cached[:0],
        decode_tokens=np.maximum(outputs[decoded] - 1.0, 0.0),
        decode_context=inputs[decoded] + outputs[decoded] / 2.0,
    )
    # KV held (bytes) and calls waiting for admission, over time. Unified and decode replicas
    # page KV: a call holds its prompt until its first token, then grows linearly to prompt +
    # output, counted at its mean (prompt + output / 2) over its decode (preemption gaps are
    # not visible in the per-call times, so they count as held).
    per_token, fixed = kv_per_token(perf), perf.kv_bytes_for_context(0.0)
    finish = _done_or_failed(result, result.finish_s)
    queue: list[float] | None = None
    bins = max(
        1, min(stats.busy_timeline_s.size, int(np.ceil(result.sim_time_s / stats.timeline_bin_s)))
    )
    prompt_kv: NDArray[np.float64] | None = None
    if spec.role == "unified":
        start, end, tokens = result.first_token_s, finish, inputs - cached + outputs / 2.0
        first = _done_or_failed(result, result.first_token_s)
        prompt = per_token * (inputs - cached) + fixed
        prompt_kv = interval_timeline(result.admit_s, first, prompt, stats.timeline_bin_s, bins)
    elif spec.role == "prefill":
        held_until = landed if landed is not None else result.first_token_s
        short = outputs <= 1
        end = _done_or_failed(result, np.where(short, result.first_token_s, held_until))
        start, tokens = result.admit_s, inputs - cached
    else:  # a decode replica reserves a call's KV on admission, not when its transfer lands
        admitted = result.decode_admit_s
        start = admitted if admitted is not None else result.first_token_s
        end, tokens = finish, inputs + outputs / 2.0
    capacity = perf.kv_budget_bytes * stats.replicas
    kv = interval_timeline(start, end, per_token * tokens + fixed, stats.timeline_bin_s, bins)
    if prompt_kv is not None:
        kv = kv + prompt_kv
    # Admission never reserves past the KV budget, so a time average of what is held cannot.
    assert not (kv > capacity * (1.0 + 1e-9)).any(), (spec.name, float(kv.max() / capacity))
    # Calls waiting for admission: from ready (a decode pool: from the KV landing) to admission.
    wait_start: NDArray[np.float64] | None = result.ready_s
    wait_end: NDArray[np.float64] | None = result.admit_s
    if spec.role == "decode":
        wait_start, wait_end = landed, result.decode_admit_s
    if wait_start is not None and wait_end is not None:
        waiting = interval_timeline(
            wait_start,
            _done_or_failed(result, wait_end),
            np.ones(trees.n_calls),
            stats.timeline_bin_s,
            bins,
        )
        queue = [round(float(v), 3) for v in waiting]
    return {
        "headroom": {
            "knee_rate_per_s": knee,
            "offered_rate_per_s": offered,
            "load_fraction": offered / knee if offered is not None and knee > 0 else None,
            "mean_input_tokens": isl,
            "mean_output_tokens": osl,
        },
        "mbu": mbu,
        "mfu": mfu,
        "timeline_bin_s": stats.timeline_bin_s,
        "kv_occupancy": [round(float(v), 4) for v in kv / capacity]
        if np.isfinite(capacity) and capacity > 0
        else None,
        "queue_depth": queue,
    }


def tree_floors(
    result: SimulationResult, fleet: FleetSpec, slo: SloSpec
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per shape, the zero-load floors of its trees and calls.

    The zero-load critical path of its trees and the zero-load TTFT / TPOT of its calls (see
    :mod:`planner.sim.budget`).
    """
    disaggregated = fleet.prefill_pool is not fleet.decode_pool
    prefill, decode = pool_replica(fleet.prefill_pool), pool_replica(fleet.decode_pool)
    link = fleet.kv_link_bandwidth_bytes_per_s if disaggregated else None
    cache = fleet.prefill_pool.batching.prefix_cache_fraction > 0
    budget = fleet.prefill_pool.batching.token_budget
    per_call = zero_load_calls(
        result, prefill, decode, link, fleet.kv_link_latency_s, cache, budget
    )
    parts = zero_load_parts(
        result, prefill, decode, link, fleet.kv_link_latency_s, cache, budget, per_call
    )
    return floors(result, parts, slo.tree_e2e_s), call_floors(result, per_call, slo)


def summarize(
    result: SimulationResult, slo: SloSpec, fleet: FleetSpec | None = None
) -> dict[str, Any]:
    """The run's summary as nested dicts (the public ``summary.json`` layout).

    With ``fleet`` (the spec the run simulated) the summary also carries each pool's headroom,
    MBU/MFU and timelines, each tree shape's zero-load floor and ``slo.feasible``.
    """
    arrived = int(np.isfinite(result.ready_s).sum())
    completed = int(np.isfinite(result.finish_s).sum())
    failed = int(result.failed.sum()) if result.failed is not None else 0
    census = result.census
    in_flight = sum(census.get(p, 0) for p in IN_FLIGHT_PLACES)
    not_arrived = sum(census.get(p, 0) for p in ("not_arrived", "timer", "abandoned"))
    reasons = result.fail_reason if result.fail_reason is not None else np.zeros(0, np.int8)
    latencies = call_latencies(result)
    sim_time = result.sim_time_s if result.sim_time_s > 0 else float("nan")
    tree_done = np.isfinite(result.tree_finish_s)
    tree_arrived = (
        np.arange(result.trees.n_trees) < result.trees_started
        if result.trees_started >= 0
        else result.tree_arrival_s <= result.sim_time_s
    )
    output_done = float(result.trees.output_tokens[np.isfinite(result.finish_s)].sum())

    specs = {p.name: p for p in fleet.pools} if fleet is not None else {}
    pools: dict[str, Any] = {}
    for pool in result.pools:
        utilization = float(pool.busy_s.sum() / (pool.replicas * sim_time))
        power_w = pool.accelerators * (
            pool.idle_power_w + (pool.max_power_w - pool.idle_power_w) * utilization
        )
        pools[pool.name] = {
            "role": pool.role,
            "racks": pool.racks,
            "replicas": pool.replicas,
            "accelerators": pool.accelerators,
            "busy_fraction": utilization,
            "utilization": utilization,  # deprecated alias of busy_fraction (one release)
            "availability": 1.0 - pool.down_s / (pool.replicas * sim_time),
            "failures": pool.failures,
            "preemptions": pool.preemptions,
            "lost_capacity_replica_s": pool.down_s,
            "gave_up_s": pool.gave_up_s,
            "give_up_reason": pool.give_up_reason or None,
            "mean_decode_batch": float(pool.batch_s.sum() / (pool.replicas * sim_time)),
            "tokens_per_s": (pool.decode_tokens + pool.prefill_tokens) / sim_time,
            "output_tokens_per_s": pool.decode_tokens / sim_time,
            "prefill_tokens_per_s": pool.prefill_tokens / sim_time,
            "power_kw_mean": power_w / 1000.0,
            "energy_kwh": power_w * result.sim_time_s / 3.6e6,
            # A transferred efficiency factor or press-only hardware figure must not pass for a
            # fitted one (issue 13): the pool says so.
            "calibrated": pool.calibrated,
            "borrowed_from": pool.borrowed_from or None,
            "hardware_confirmed": pool.hardware_confirmed,
        }
        if pool.name in specs and result.sim_time_s > 0:
            pools[pool.name].update(pool_load(result, specs[pool.name], pool, slo))

    n_tree_arrived = int(tree_arrived.sum())
    met = slo_met_per_tree(result, slo)
    shape_floors, call_floor = tree_floors(result, fleet, slo) if fleet is not None else ({}, {})
    feasible = (
        feasibility(
            shape_floors,
            slo,
            " + ".join(dict.fromkeys(p.system.name for p in fleet.pools)),
            call_floor,
        )
        if fleet is not None
        else {"feasible": None, "infeasible_reason": None}
    )
    return {
        "calls": {
            "arrived": arrived,
            "completed": completed,
            "in_flight": in_flight,
            "failed": failed,
            "failed_retries_exhausted": int((reasons == FAIL_RETRIES).sum()),
            "failed_pool_down": int((reasons == FAIL_POOL_DOWN).sum()),
            "not_arrived": not_arrived,
            "prefix_cached_tokens": int(result.cached_tokens.sum()),
            "trace_zero_output": result.trace_zero_output_calls,
            "retries": int(result.retries.sum()) if result.retries is not None else 0,
            "retried_calls": int((result.retries > 0).sum()) if result.retries is not None else 0,
            "census": dict(census),
            "floor_s": {shape: f["p99"] for shape, f in call_floor.items()},
            "floor_over_slo_fraction": {
                shape: f["over_slo_fraction"] for shape, f in call_floor.items()
            },
            **{name: distribution(values) for name, values in latencies.items()},
        },
        "trees": {
            "arrived": n_tree_arrived,
            "completed": int(tree_done.sum()),
            "calls_per_tree_mean": float(result.trees.calls_per_tree().mean())
            if result.trees.n_trees
            else 0.0,
            "e2e_s": distribution(result.tree_finish_s - result.tree_arrival_s),
            "latency_budget": latency_budget(result),
            "floor_s": {shape: f["floor_s"] for shape, f in shape_floors.items()},
            "floor_parts": {shape: f["parts"] for shape, f in shape_floors.items()},
            "floor_over_slo_fraction": {
                shape: f["over_slo_fraction"] for shape, f in shape_floors.items()
            },
        },
        "pools": pools,
        "throughput": {
            "output_tokens_per_s": output_done / sim_time,
            "calls_per_s": completed / sim_time,
            "trees_per_s": float(tree_done.sum()) / sim_time,
        },
        "slo": {
            "tree_e2e_s": slo.tree_e2e_s,
            "ttft_s": slo.ttft_s,
            "tpot_s": slo.tpot_s,
            "attainment": float(met.sum() / n_tree_arrived) if n_tree_arrived else None,
            **feasible,
        },
        "complete": result.complete,
        "partial": result.stop_reason != "drained",
        "stop_reason": result.stop_reason,
        "stability": stability(result),
        "sim_time_s": result.sim_time_s,
        "wall_time_s": result.wall_time_s,
        "seed": result.seed,
        **({"cells": result.cells} if result.cells is not None else {}),
    }
