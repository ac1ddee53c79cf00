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
* a pool's ``utilization`` is the time-weighted fraction of replica-time spent running batch
  iterations (with continuous batching one long decode keeps a replica busy, so read it with
  ``mean_decode_batch``, the time-averaged number of sequences decoding per replica); its
  power is idle plus that fraction of the idle-to-max range, per accelerator, including its
  share of hosts and switches;
* ``slo.attainment`` is the fraction of arrived trees that completed with their end-to-end
  latency, and every call's TTFT and TPOT, within the SLOs (an unfinished tree counts as missed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner.sim.config import SloSpec
from planner.sim.pool import FAIL_POOL_DOWN, FAIL_RETRIES
from planner.sim.results import SimulationResult

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
    return calls_ok_per_tree & (tree_e2e <= slo.tree_e2e_s)


def stability(result: SimulationResult) -> dict[str, Any]:
    """Whether the offered load looked sustainable: did the backlog keep growing?

    The backlog (calls ready but neither finished nor failed) is read at the middle and at the
    end of the window actually simulated under arrivals: from the first arrival to the last one,
    or to the stop of the clock if that came first (a run stopped by a limit is judged on what
    it simulated, never on times after the stop). A stable fleet's backlog fluctuates around a
    level; an overloaded one's grows with every arrival it cannot serve. If the backlog grew by
    more than 10% of the calls that arrived over the second half (and by more than 10 calls),
    arrivals outran capacity: with more arrivals the queues would grow without bound.
    """
    ready = np.sort(result.ready_s[np.isfinite(result.ready_s)])
    done = result.finish_s
    if result.fail_s is not None:
        done = np.where(np.isfinite(result.fail_s), result.fail_s, done)
    finished = np.sort(done[np.isfinite(done)])
    arrivals = result.tree_arrival_s
    if ready.size == 0 or arrivals.size < 2:
        return {
            "stable": True, "backlog_mid": 0, "backlog_end": 0, "window_end_s": None,
            "reason": "too few calls",
        }  # fmt: skip

    def backlog(t: float) -> int:
        return int(np.searchsorted(ready, t, "right") - np.searchsorted(finished, t, "right"))

    end_t = min(float(arrivals[-1]), result.sim_time_s)
    mid_t = float(arrivals[0] + (end_t - arrivals[0]) / 2.0)
    mid, end = backlog(mid_t), backlog(end_t)
    arrived = int(np.searchsorted(ready, end_t, "right") - np.searchsorted(ready, mid_t, "right"))
    growing = end - mid > max(10, 0.1 * arrived)
    reason = (
        f"backlog grew from {mid:,} to {end:,} calls while {arrived:,} arrived in the second "
        "half of the arrivals: arrivals exceed capacity"
        if growing
        else "backlog did not keep growing"
    )
    return {
        "stable": not growing, "backlog_mid": mid, "backlog_end": end, "window_end_s": end_t,
        "reason": reason,
    }  # fmt: skip


def summarize(result: SimulationResult, slo: SloSpec) -> dict[str, Any]:
    """The run's summary as nested dicts (the public ``summary.json`` layout)."""
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
            "utilization": utilization,
            "availability": 1.0 - pool.down_s / (pool.replicas * sim_time),
            "failures": pool.failures,
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

    n_tree_arrived = int(tree_arrived.sum())
    met = slo_met_per_tree(result, slo)
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
            **{name: distribution(values) for name, values in latencies.items()},
        },
        "trees": {
            "arrived": n_tree_arrived,
            "completed": int(tree_done.sum()),
            "calls_per_tree_mean": float(result.trees.calls_per_tree().mean())
            if result.trees.n_trees
            else 0.0,
            "e2e_s": distribution(result.tree_finish_s - result.tree_arrival_s),
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
        },
        "complete": result.complete,
        "partial": result.stop_reason != "drained",
        "stop_reason": result.stop_reason,
        "stability": stability(result),
        "sim_time_s": result.sim_time_s,
        "wall_time_s": result.wall_time_s,
        "seed": result.seed,
    }
