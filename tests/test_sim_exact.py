"""Exact event logs: tiny deterministic runs whose every timestamp is computed by hand.

Fixed-step replicas (every iteration takes 0.5 s, so all times are exact binary fractions) and
replayed single-call trees with 1-token prompts: a call's prompt takes one iteration (its first
token), then each remaining output token one iteration. Times are asserted with ``==``.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from planner.sim.config import BatchingSpec, FleetSpec
from planner.sim.engine import _Engine, _run, simulate
from planner.sim.results import SimulationResult
from planner.workload import ChatShape, TreeFactory
from tests.sim_helpers import (
    assert_census,
    checked_engine,  # noqa: F401 (autouse: census after every run)
    fixed_pool,
    gpu_fleet,
    llama70b_pool,
    trace_workload,
    tree_workload,
)

STEP = 0.5


def test_one_slot_serves_two_calls_back_to_back() -> None:
    """max_batch 1: the second call waits for the first (prefill 1 step + 3 decode steps each)."""
    result = simulate(
        fixed_pool(1, STEP, max_batch=1, token_budget=1),
        trace_workload([0.0, 0.0], [1, 1], [4, 4]),
        seed=0,
    )
    assert result.ready_s.tolist() == [0.0, 0.0]
    assert result.admit_s.tolist() == [0.0, 2.0]
    assert result.first_token_s.tolist() == [0.5, 2.5]
    assert result.finish_s.tolist() == [2.0, 4.0]
    assert result.tree_finish_s.tolist() == [2.0, 4.0]
    assert result.sim_time_s == 4.0
    pool = result.pools[0]
    assert pool.busy_s.tolist() == [4.0]
    assert pool.decode_tokens == 6 and pool.prefill_tokens == 2.0
    assert result.stop_reason == "drained"
    assert assert_census(result)["finished"] == 2


def test_the_run_counts_its_events_one_segment_per_batch_change() -> None:
    """The two back-to-back calls above, counted by hand.

    The arrival process starts and ends (2 events), one plan wakes the idle replica (both calls
    arrive at t=0), then per call one segment for its prefill and one for its 3 decode steps (4).
    Stepwise, each decode step is an event of its own (2 x 3 instead of 2 x 1).
    """
    fleet, workload = (
        fixed_pool(1, STEP, max_batch=1, token_budget=1),
        trace_workload([0.0, 0.0], [1, 1], [4, 4]),
    )
    assert simulate(fleet, workload, seed=0).events == 2 + 1 + 2 * 2
    assert simulate(fleet, workload, seed=0, stepwise=True).events == 2 + 1 + 2 * (1 + 3)


def test_two_calls_share_one_prefill_iteration_and_decode_together() -> None:
    result = simulate(
        fixed_pool(1, STEP, max_batch=2, token_budget=2),
        trace_workload([0.0, 0.0], [1, 1], [3, 5]),
        seed=0,
    )
    assert result.admit_s.tolist() == [0.0, 0.0]
    assert result.first_token_s.tolist() == [0.5, 0.5]
    assert result.finish_s.tolist() == [1.5, 2.5]
    assert result.pools[0].busy_s.tolist() == [2.5]
    # Batch-seconds: two decoding from 0.5 to 1.5, one from 1.5 to 2.5 (prefill holds none).
    assert result.pools[0].batch_s.tolist() == [2 * 1.0 + 1 * 1.0]


def test_a_call_arriving_mid_segment_joins_at_the_next_iteration_boundary() -> None:
    """A call arriving mid-segment joins at the next iteration boundary.

    Call 0 decodes 8 tokens from 0.5 to 4.5; call 1 arrives at 1.25, joins at the boundary 1.5,
    prefills alongside call 0's decode (1.5-2.0), decodes its last token (2.0-2.5).
    """
    result = simulate(
        fixed_pool(1, STEP, max_batch=2, token_budget=2),
        trace_workload([0.0, 1.25], [1, 1], [9, 2]),
        seed=0,
    )
    assert result.ready_s.tolist() == [0.0, 1.25]
    assert result.admit_s.tolist() == [0.0, 1.5]
    assert result.first_token_s.tolist() == [0.5, 2.0]
    assert result.finish_s.tolist() == [4.5, 2.5]
    assert result.pools[0].busy_s.tolist() == [4.5]
    assert result.pools[0].decode_tokens == 8 + 1


def test_two_replicas_round_robin_in_parallel() -> None:
    result = simulate(
        fixed_pool(2, STEP, max_batch=1, token_budget=1, router="round_robin"),
        trace_workload([0.0, 0.0, 0.25], [1, 1, 1], [2, 2, 2]),
        seed=0,
    )
    # Round robin from replica 1: calls 0 and 2 go to replica 1, call 1 to replica 0.
    assert result.prefill_replica.tolist() == [1, 0, 1]
    assert result.admit_s.tolist() == [0.0, 0.0, 1.0]
    assert result.first_token_s.tolist() == [0.5, 0.5, 1.5]
    assert result.finish_s.tolist() == [1.0, 1.0, 2.0]


def test_an_event_exactly_at_the_time_limit_stops_cleanly() -> None:
    """Call 0 finishes at exactly 2.0 = max_sim_time_s (SimPy refuses ``until <= now``)."""
    result = simulate(
        fixed_pool(1, STEP, max_batch=1, token_budget=1),
        trace_workload([0.0, 0.0], [1, 1], [4, 4]),
        seed=0,
        max_sim_time_s=2.0,
    )
    assert result.stop_reason == "max_sim_time"
    assert result.sim_time_s == 2.0
    assert result.finish_s[0] == 2.0 and np.isnan(result.finish_s[1])
    assert result.admit_s[1] == 2.0
    census = assert_census(result)
    assert census["finished"] == 1 and census["prefill"] == 1


def test_kv_transfers_share_one_link_per_prefill_replica_in_fifo_order() -> None:
    """Two calls prefilled at once on one replica: the second transfer waits for the first."""
    prefill = llama70b_pool("prefill", "prefill")
    decode = llama70b_pool("decode", "decode", batching=BatchingSpec(prefix_cache_fraction=0.0))
    fleet = FleetSpec(pools=(prefill, decode), kv_link_bandwidth_bytes_per_s=1e9)
    trees = TreeFactory(ChatShape()).sample_batch(np.random.default_rng(0), 2)
    engine = _Engine(fleet, trees, np.array([0.0, 0.0]), np.random.SeedSequence(0), False)
    replica = engine.entry.replicas[0]
    for call in (0, 1):  # as if both prompts had just been prefilled: KV held for the transfer
        need = engine.entry.call_reserve_bytes(call, 0)
        engine.entry.reserved_bytes[call] = need
        replica.kv_free_bytes -= need
        replica.held.add(call)
    engine.hand_off(0, replica)
    engine.hand_off(1, replica)
    # The engine's own loop (it keeps the clock the engine reads); the decode pool then runs
    # both calls, which this test does not look at.
    assert _run(engine, None, None, 0.0, None) == "stalled"
    perf = engine.decode_entry.perf
    sizes = [
        perf.kv_bytes_per_token * (trees.input_tokens[c] + 1) + perf.state_bytes_per_sequence
        for c in (0, 1)
    ]
    first_done = 0.0 + sizes[0] / 1e9
    second_done = first_done + sizes[1] / 1e9
    latency = fleet.kv_link_latency_s
    landed = [engine.kv_landed_s[c] for c in (0, 1)]
    assert landed == [first_done + latency, second_done + latency]
    assert replica.kv_free_bytes == engine.entry.kv_capacity_bytes and not replica.held


def test_prefill_pool_reserves_the_prompt_only() -> None:
    prefill = llama70b_pool("prefill", "prefill", batching=BatchingSpec(prefix_cache_fraction=0.0))
    decode = llama70b_pool("decode", "decode", batching=BatchingSpec(prefix_cache_fraction=0.0))
    fleet = FleetSpec(pools=(prefill, decode))
    trees = TreeFactory(ChatShape()).sample_batch(np.random.default_rng(0), 1)
    engine = _Engine(fleet, trees, np.array([0.0]), np.random.SeedSequence(0), False)
    prompt, output = int(trees.input_tokens[0]), int(trees.output_tokens[0])
    kv = engine.entry.perf.kv_bytes_for_context
    assert engine.entry.call_reserve_bytes(0, 0) == int(np.ceil(kv(prompt)))
    assert engine.decode_entry.call_reserve_bytes(0, 0) == int(np.ceil(kv(prompt + output)))
    assert isinstance(engine.entry.kv_capacity_bytes, int)


def test_jittered_segments_and_stepping_draw_the_same_tpot_distribution() -> None:
    """Issue 11: per-iteration jitter.

    At cv 0.3 a two-sample KS test cannot tell segment mode from stepwise mode apart (p > 0.01), and
    per-call latencies agree closely.
    """
    fleet = gpu_fleet(replicas=4, max_batch=32, jitter_cv=0.3)
    workload = tree_workload(3.0, 400, ChatShape())
    fast = simulate(fleet, workload, seed=5)
    slow = simulate(fleet, workload, seed=5, stepwise=True)

    def tpot(result: SimulationResult) -> NDArray[np.float64]:
        out = result.trees.output_tokens
        multi = out > 1
        return ((result.finish_s - result.first_token_s)[multi] / (out[multi] - 1)).astype(float)

    a, b = tpot(fast), tpot(slow)
    assert stats.ks_2samp(a, b, method="asymp").pvalue > 0.01
    cv_fast, cv_slow = a.std() / a.mean(), b.std() / b.mean()
    assert cv_fast == pytest.approx(cv_slow, rel=0.05)
    np.testing.assert_allclose(
        fast.finish_s - fast.ready_s, slow.finish_s - slow.ready_s, rtol=1e-3
    )


def test_jitter_is_per_iteration_not_per_segment() -> None:
    """A lone call decoding 2,000 tokens in one segment.

    With a factor per iteration its TPOT's spread across calls is about cv / sqrt(iterations), not
    cv (one factor per segment).
    """
    fleet = gpu_fleet(replicas=1, max_batch=1, jitter_cv=0.3, prefix_cache_fraction=0.0)
    workload = trace_workload([100.0 * i for i in range(30)], [100] * 30, [2000] * 30)
    result = simulate(fleet, workload, seed=3)
    tpot = (result.finish_s - result.first_token_s) / 1999
    assert tpot.std() / tpot.mean() < 0.3 / np.sqrt(1999) * 2.0


def test_the_census_check_runs_after_every_simulation(checked_engine: list[int]) -> None:  # noqa: F811
    simulate(fixed_pool(1, STEP, 1, 1), trace_workload([0.0], [1], [2]), seed=0)
    assert checked_engine == [1]
