"""How much load a pool can still take: its knee, achieved MBU/MFU, KV and queue timelines.

``busy_fraction`` (time a replica spends running iterations) says nothing about headroom: with
continuous batching one decoding sequence keeps a replica busy. These figures do:

* ``headroom.knee_rate_per_s``: the highest call arrival rate at which the pool still meets the
  TPOT and TTFT SLOs, from the static model (:func:`knee_rate_per_s`);
* ``headroom.load_fraction``: the offered call rate over that knee (1.0 = at the knee);
* ``mbu`` / ``mfu``: bytes moved and FLOPs done by the simulated iterations over the pool's peak
  memory bandwidth and peak compute times the simulated time (:func:`achieved_fractions`);
* ``kv_occupancy`` / ``queue_depth`` timelines (:func:`interval_timeline`);
* ``stability``: whether the admission queue kept growing (:func:`stability`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner.perf.replica import Replica, at_concurrency, largest_batch_within
from planner.sim.config import PoolSpec, SloSpec
from planner.sim.results import SimulationResult
from planner.specs.errors import ConfigError


def knee_rate_per_s(
    perf: Replica,
    role: str,
    replicas: int,
    isl: float,
    osl: float,
    slo: SloSpec,
    request_overhead_s: float = 0.0,
    cached_tokens: float = 0.0,
) -> float:
    """Highest call arrival rate (calls/s) at which a pool still meets the TPOT and TTFT SLOs.

    From the static model at the workload's mean input / output lengths ``isl`` / ``osl``
    (tokens per call) with ``cached_tokens`` of each prompt served from the prefix cache as the
    run measured (not prefilled again: agent calls reuse ~86% of their prompt, so ignoring the
    hits put the knee of the default fleet ~10x too low), for ``replicas`` identical replicas
    (the knee scales linearly):

    * ``unified``: :func:`~planner.perf.replica.at_concurrency` (closed-loop steady state with
      interleaved prefill: ``TPOT = step(B) + (B / osl) * prefill(isl)``) at the largest
      concurrency ``C`` whose TPOT <= ``slo.tpot_s`` and TTFT <= ``slo.ttft_s`` (bisection; TPOT
      rises with ``C``); knee = replicas x that point's output tokens/s / ``osl``. By Little's
      law the open-loop arrival rate sustaining ``C`` in flight equals that closed-loop rate.
    * ``prefill``: one prompt at a time per replica: replicas / prefill(isl) (0 when one prefill
      alone exceeds the TTFT SLO).
    * ``decode``: the largest decode batch ``B`` whose step time at mean context
      ``isl + osl / 2`` is <= ``slo.tpot_s``; knee = replicas x ``B / step(B) / osl``.

    Returns 0.0 when not even one call meets the SLOs.
    """
    mean_context = isl + osl / 2.0
    cap = perf.max_batch(mean_context)
    if cap < 1:
        return 0.0
    if role == "prefill":
        prefill_s = perf.prefill_time_s(isl, cached_tokens)
        return replicas / prefill_s if prefill_s <= slo.ttft_s else 0.0
    if role == "decode":

        def step(batch: int) -> float:
            return perf.step_time_s(batch, batch * mean_context)

        batch = largest_batch_within(slo.tpot_s, step, cap)
        return replicas * batch / step(batch) / max(osl, 1.0) if batch else 0.0

    def meets(concurrency: int) -> bool:
        point = at_concurrency(perf, concurrency, isl, osl, request_overhead_s, cached_tokens)
        return point.tpot_s <= slo.tpot_s and point.ttft_s <= slo.ttft_s

    if not meets(1):
        return 0.0
    low, high = 1, 1
    while meets(high * 2) and high < 1 << 20:  # TPOT grows with C: bracket, then bisect
        high *= 2
    low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if meets(mid) else (low, mid)
    point = at_concurrency(perf, low, isl, osl, request_overhead_s, cached_tokens)
    return replicas * point.output_tokens_per_s_per_accelerator * perf.accelerators / osl


def achieved_fractions(
    spec: PoolSpec,
    perf: Replica,
    *,
    replicas: int,
    sim_time_s: float,
    busy_s: float,
    batch_s: float,
    prefill_tokens: NDArray[np.float64],
    prefill_cached: NDArray[np.float64],
    decode_tokens: NDArray[np.float64],
    decode_context: NDArray[np.float64],
) -> tuple[float | None, float | None]:
    """``(mbu, mfu)``: achieved memory-bandwidth and compute fractions of a pool.

    Work done (per call, summed over the calls the pool prefilled / decoded):

    * FLOPs: ``linear_flops_per_token`` x tokens, plus prefill attention over the new prompt
      tokens after the cached prefix, plus decode attention at the call's mean context
      (``input + output / 2``) for each decoded token;
    * bytes: the replica's weights once per iteration, plus each decoded token's read of its KV
      cache at that mean context. Iterations are not counted one by one by the engine, so
      ``iterations = decode tokens x busy_s / batch_s`` (exact when iterations last equally long:
      decode tokens / the time-weighted mean decode batch while busy); a prefill-only pool runs
      ``ceil(prompt / token_budget)`` iterations per prompt. An MoE iteration reads the
      always-read weights and the routed experts its tokens touch (``1 - (1 - k / n) ** t``
      of them for ``t`` tokens per iteration on average, ``k`` of ``n`` experts per token).

    Divided by peak memory bandwidth / peak FLOP/s of the pool's accelerators x ``sim_time_s``.
    ``(None, None)`` when nothing was simulated.
    """
    if sim_time_s <= 0 or replicas < 1:
        return None, None
    model = spec.model
    accel = spec.system.accelerator
    flops = model.linear_flops_per_token * float(prefill_tokens.sum() - prefill_cached.sum())
    new_tokens = prefill_tokens - prefill_cached
    flops += float(np.sum(model.prefill_attention_flops(new_tokens, prefill_cached)))
    flops += model.linear_flops_per_token * float(decode_tokens.sum())
    flops += float(np.sum(decode_tokens * model.decode_attention_flops(decode_context)))
    if batch_s > 0:
        iterations = float(decode_tokens.sum()) * busy_s / batch_s
    else:
        budget = max(spec.batching.token_budget, 1)
        iterations = float(np.ceil((prefill_tokens - prefill_cached) / budget).sum())
    kv_read = float(np.sum(decode_tokens * kv_per_token(perf) * decode_context))
    moved = iterations * _weight_bytes_per_iteration(
        spec, perf, (float(decode_tokens.sum() + new_tokens.sum())) / max(iterations, 1.0)
    )
    moved += kv_read
    chips = replicas * perf.accelerators
    try:
        peak_flops = accel.peak_flops(spec.precision)
    except ConfigError:  # a chip without this precision's peak: no MFU to state
        return None, None
    peak_bytes = accel.memory_bandwidth_bytes_per_s * chips * sim_time_s
    return moved / peak_bytes, flops / (peak_flops * chips * sim_time_s)


def _weight_bytes_per_iteration(spec: PoolSpec, perf: Replica, tokens: float) -> float:
    """Weight bytes one iteration of ``tokens`` tokens reads (all of them for a dense model)."""
    model = spec.model
    if model.moe is None or model.total_params <= 0:
        return perf.weight_bytes
    per_param = perf.weight_bytes / model.total_params
    touched = 1.0 - (1.0 - model.moe.n_active_experts / model.moe.n_routed_experts) ** tokens
    return float(per_param * (model.always_read_params + model.routed_expert_params * touched))


def kv_per_token(perf: Replica) -> float:
    """KV bytes per token of context of one replica (slope of ``kv_bytes_for_context``)."""
    return (perf.kv_bytes_for_context(1000.0) - perf.kv_bytes_for_context(0.0)) / 1000.0


def interval_timeline(
    start_s: NDArray[np.float64],
    end_s: NDArray[np.float64],
    weight: NDArray[np.float64],
    bin_s: float,
    bins: int,
) -> NDArray[np.float64]:
    """Time-averaged sum of ``weight`` over the intervals ``[start, end)`` open in each bin.

    Bin ``i`` covers ``[i * bin_s, (i + 1) * bin_s)``. Intervals with a NaN start are skipped; a
    NaN end means still open at the end of the last bin. Computed from the integral
    ``I(t) = sum_i w_i * (min(t, end_i) - start_i)^+`` at the bin edges with sorted prefix sums,
    so it costs O(n log n + bins) whatever the number of intervals.
    """
    edges = np.arange(bins + 1, dtype=np.float64) * bin_s
    keep = np.isfinite(start_s)
    start, end, w = start_s[keep], end_s[keep], weight[keep]
    end = np.where(np.isfinite(end), end, math.inf)

    def integral(times: NDArray[np.float64]) -> NDArray[np.float64]:
        order = np.argsort(times)
        t, tw = times[order], w[order]
        finite = np.isfinite(t)
        t, tw = t[finite], tw[finite]
        cum_w = np.concatenate(([0.0], np.cumsum(tw)))
        cum_wt = np.concatenate(([0.0], np.cumsum(tw * t)))
        k = np.searchsorted(t, edges, "right")
        return edges * cum_w[k] - cum_wt[k]

    area = integral(start) - integral(end)
    return np.diff(area) / bin_s


QUEUE_GROWTH_MIN_CALLS = 10
"""[A] Growth of the admission queue (calls) below which it counts as noise whatever the load."""

QUEUE_GROWTH_SHARE = 0.1
"""[A] Growth of the admission queue, as a share of the calls that arrived over the second half of
the window, above which arrivals outran service: a queue at load ``rho < 1`` fluctuates by
O(1 / (1 - rho)) calls, not by a fixed share of the arrivals."""


def _count_open(start_s: NDArray[np.float64], end_s: NDArray[np.float64], t_s: float) -> int:
    """Intervals ``[start, end)`` open at ``t_s`` (NaN start: never opened; NaN end: open)."""
    opened = np.isfinite(start_s) & (start_s <= t_s)
    return int((opened & ~(end_s <= t_s)).sum())


def _done_s(result: SimulationResult, times_s: NDArray[np.float64]) -> NDArray[np.float64]:
    """``times_s``, or the failure time where a call was given up before reaching them."""
    if result.fail_s is None:
        return times_s
    return np.where(np.isfinite(times_s), times_s, result.fail_s)


def stability(result: SimulationResult) -> dict[str, Any]:
    """Whether the offered load looked sustainable: did the admission queue keep growing?

    Judged on the calls *waiting for admission* (ready but not yet admitted to a replica, and on
    a disaggregated fleet, KV landed but not yet admitted to a decode replica), not on all calls
    in the system. A replica holds at most ``max_batch`` sequences (and its KV budget), so the
    calls in service are bounded; if arrivals exceed what the fleet serves (``rho > 1``), the
    excess can only pile up in the admission queues, which then grow by ``(lambda - mu) t``.
    The calls in service, in contrast, fill up to ``lambda x E[service time]`` (Little's law)
    over the first service time of a run: a short run of a stable fleet is still filling at its
    end, which a test on the whole backlog mistook for overload (issue 12).

    The queue is read at the middle and at the end of the window simulated under arrivals: from
    the first tree arrival to the last one, or to the stop of the clock if that came first (a
    run stopped by a limit is judged on what it simulated). Overloaded when the queue grew by
    more than :data:`QUEUE_GROWTH_SHARE` of the calls that arrived over the second half and by
    more than :data:`QUEUE_GROWTH_MIN_CALLS` calls. ``backlog_mid`` / ``backlog_end`` (all calls
    ready and neither finished nor failed) are reported alongside.
    """
    ready = result.ready_s
    arrivals = result.tree_arrival_s
    if not np.isfinite(ready).any() or arrivals.size < 2:
        empty = dict.fromkeys(("backlog_mid", "backlog_end", "queue_mid", "queue_end"), 0)
        return {"stable": True, **empty, "window_end_s": None, "reason": "too few calls"}
    finish = _done_s(result, result.finish_s)
    waits = [(ready, _done_s(result, result.admit_s))]
    if result.kv_landed_s is not None and result.decode_admit_s is not None:
        waits.append((result.kv_landed_s, _done_s(result, result.decode_admit_s)))

    def queue(t_s: float) -> int:
        return sum(_count_open(start, end, t_s) for start, end in waits)

    end_t = min(float(arrivals[-1]), result.sim_time_s)
    mid_t = float(arrivals[0] + (end_t - arrivals[0]) / 2.0)
    q_mid, q_end = queue(mid_t), queue(end_t)
    arrived = int(((ready > mid_t) & (ready <= end_t)).sum())
    growing = q_end - q_mid > max(QUEUE_GROWTH_MIN_CALLS, QUEUE_GROWTH_SHARE * arrived)
    reason = (
        f"the admission queue grew from {q_mid:,} to {q_end:,} calls while {arrived:,} arrived "
        "in the second half of the arrivals: arrivals exceed capacity"
        if growing
        else "the admission queue did not keep growing"
    )
    return {
        "stable": not growing,
        "backlog_mid": _count_open(ready, finish, mid_t),
        "backlog_end": _count_open(ready, finish, end_t),
        "queue_mid": q_mid,
        "queue_end": q_end,
        "window_end_s": end_t,
        "reason": reason,
    }
