"""The discrete-event engine: agent trees arriving at a fleet of continuous-batching replicas.

``simulate`` draws the workload (arrival times and agent trees, as flat arrays), builds one
:class:`~planner.sim.pool.PoolRuntime` per pool with its replicas and router, and runs SimPy
until every tree has finished or failed and no call is left in flight, or a limit is reached.
A call becomes *ready* when all its parents have finished and its tool delay has passed; it is
then routed to a replica of the prefill (or unified) pool. In a disaggregated fleet its KV
cache is shipped to the decode pool after prefill, and routed again to a decode replica.

The KV link: each prefill replica has one outgoing link of ``kv_link_bandwidth_bytes_per_s``
and sends its transfers one at a time in FIFO order (a transfer occupies the link for
``bytes / bandwidth``; the latency overlaps the next transfer). One-at-a-time rather than a
bandwidth share because a prefill instance's KV push is a sequence of large RDMA writes from
one NIC, which a FIFO models exactly with one event per transfer; the decode side's ingress is
not modelled. The prefill replica holds the call's KV until the transfer lands.

Per-call timestamps go into preallocated numpy arrays (NaN = not reached). At the end a census
walks the engine's timers, queues, batches and links and finds every call in exactly one place
(:data:`~planner.sim.results.CENSUS_PLACES`).

Module map: ``pool`` (a pool's replicas, router, KV ledger and timeline), ``replica`` (one
replica's batching loop), ``routing`` (strategies), ``faults`` (failures and repairs),
``results`` (the result dataclasses), ``jitter`` (step-time factors), ``workload_draw`` (the
workload spec and drawing it); this module drives them.
"""

from __future__ import annotations

import gc
import heapq
import math
import time
from collections.abc import Callable
from functools import partial
from typing import Final

import numpy as np
import simpy
from numpy.typing import NDArray

from planner.sim import decode_heap
from planner.sim.checks import AFTER_RUN
from planner.sim.clock import (
    SLOT_BITS,
    SLOT_MASK,
    EventQueue,
    WakeHeap,
    float_vector,
    int_vector,
)
from planner.sim.closed_loop import trim_unstarted
from planner.sim.config import FleetSpec
from planner.sim.faults import FailureSpec, FaultInjector
from planner.sim.pool import (
    FAIL_POOL_DOWN,
    FAIL_RETRIES,
    TIMELINE_BINS,
    PoolRuntime,
    pool_replica,
)
from planner.sim.replica import ReplicaSim
from planner.sim.results import CENSUS_PLACES, PoolStats, SimulationResult
from planner.sim.run_scope import collector_paused, numpy_small_pages
from planner.sim.workload_draw import (
    DrawnWorkload,
    WorkloadSpec,
    draw_workload,
)
from planner.specs.errors import ConfigError
from planner.workload.arrivals import ClosedLoop, ClosedLoopArrivals
from planner.workload.tree_factory import TreeBatch

__all__ = [
    "FAIL_POOL_DOWN",
    "FAIL_RETRIES",
    "DrawnWorkload",
    "PoolRuntime",
    "PoolStats",
    "SimulationResult",
    "WorkloadSpec",
    "draw_workload",
    "pool_replica",
    "simulate",
    "simulate_drawn",
]


LINK_FIELDS: Final = 3
"""Integers per call in ``_Engine.call_links``: children start, tree, pending parents."""
LINK_CHILDREN: Final = 0
LINK_TREE: Final = 1
LINK_PENDING: Final = 2
TREE_FIELDS: Final = 2
"""Integers per tree in ``_Engine.tree_state``: calls left, dead (0 or 1)."""
TREE_LEFT: Final = 0
TREE_DEAD: Final = 1


class _Engine:
    """Mutable state of one run (built and driven by :func:`simulate`)."""

    def __init__(
        self,
        fleet: FleetSpec,
        trees: TreeBatch,
        arrival_s: NDArray[np.float64],
        seed_sequence: np.random.SeedSequence,
        stepwise: bool,
        horizon_s: float = math.inf,
    ) -> None:
        self.env = simpy.Environment()
        self.clock = EventQueue(self.env)  # the one view of its heap (planner.sim.clock)
        self.fleet = fleet
        self.trees = trees
        self.stepwise = stepwise
        n_calls = trees.n_calls
        # Per-call and per-tree integers in flat vectors (planner.sim.clock): a read by call id
        # is one load from a contiguous array, not a list slot and the int object it points at.
        self.input_tokens = int_vector(trees.input_tokens)
        self.output_tokens = int_vector(trees.output_tokens)
        self.shared_prefix_tokens = int_vector(trees.shared_prefix_tokens)
        self.call_tree = trees.node_tree()
        self.prefix_group = int_vector(trees.prefix_group[self.call_tree])
        self.delay_s = float_vector(trees.delay_before_s)
        self.node_offsets = int_vector(trees.node_offsets)
        self.tree_arrival_s = arrival_s
        # Closed-loop arrivals are NaN until their request starts: the horizon (or 1 s) sets the
        # first timeline width instead (the timeline widens itself as the clock runs on).
        last_arrival = float(arrival_s[-1]) if len(arrival_s) else 0.0
        if math.isnan(last_arrival):
            last_arrival = horizon_s if math.isfinite(horizon_s) else 0.0
        self.timeline_bin_s = max(last_arrival, 1.0) / TIMELINE_BINS
        self.tree_finish_s = np.full(trees.n_trees, np.nan)
        self.ready_s = np.full(n_calls, np.nan)
        self.admit_s = np.full(n_calls, np.nan)
        self.decode_admit_s = np.full(n_calls, np.nan)  # disaggregated: admitted to decode
        self.first_token_s = np.full(n_calls, np.nan)
        self.finish_s = np.full(n_calls, np.nan)
        self.kv_landed_s = np.full(n_calls, np.nan)  # disaggregated: KV at the decode pool
        self.fail_s = np.full(n_calls, np.nan)
        self.fail_reason = np.zeros(n_calls, dtype=np.int8)
        self.cached_tokens = np.zeros(n_calls, dtype=np.int64)
        self.prefill_replica = np.full(n_calls, -1, dtype=np.int64)
        self.decode_replica = np.full(n_calls, -1, dtype=np.int64)
        self._build_dependencies()
        # One child per pool, as before (so jitter streams do not move); routers get their own.
        pool_seeds = seed_sequence.spawn(len(fleet.pools))
        router_seeds = seed_sequence.spawn(len(fleet.pools))
        self.pools = {
            spec.name: PoolRuntime(spec, self, fleet.router, jitter, np.random.default_rng(route))
            for spec, jitter, route in zip(fleet.pools, pool_seeds, router_seeds, strict=True)
        }
        self.entry = self.pools[fleet.prefill_pool.name]
        self.decode_entry = self.pools[fleet.decode_pool.name]
        self._check_calls_fit()
        self.link_bytes_per_s = fleet.kv_link_bandwidth_bytes_per_s
        self.link_latency_s = fleet.kv_link_latency_s
        self.trees_started = 0
        self.trees_done = 0
        self.trees_failed = 0
        self.active = 0  # ready calls neither finished nor failed
        self.all_settled = trees.n_trees == 0
        self.max_retries = 0
        self.retries = int_vector(np.zeros(n_calls, dtype=np.int64))
        self.failed = np.zeros(n_calls, dtype=bool)
        self.abandoned = np.zeros(n_calls, dtype=bool)
        self.in_timer: set[int] = set()
        self.faults: FaultInjector | None = None
        self.closed_loop: ClosedLoop | None = None  # set by start_closed_loop
        self.events = 0  # SimPy events processed by _run

    def _build_dependencies(self) -> None:
        """Children lists (CSR) and pending-parent counts over global call ids."""
        trees = self.trees
        edge_tree = np.repeat(np.arange(trees.n_trees), np.diff(trees.edge_offsets))
        base = trees.node_offsets[edge_tree]
        src = trees.edge_src + base
        dst = trees.edge_dst + base
        order = np.argsort(src, kind="stable")
        # What finishing a call reads, one record per call (LINK_FIELDS integers; record
        # n_calls ends the last call's children): its children's start in ``children``, its
        # tree and its parents still pending. One record is one cache line's neighbourhood,
        # where three vectors would be three cold lines on a large run.
        links = np.zeros((trees.n_calls + 1, LINK_FIELDS), dtype=np.int64)
        links[:, LINK_CHILDREN] = np.concatenate(
            ([0], np.cumsum(np.bincount(src, minlength=trees.n_calls)))
        )
        links[: trees.n_calls, LINK_TREE] = self.call_tree
        links[: trees.n_calls, LINK_PENDING] = np.bincount(dst, minlength=trees.n_calls)
        self.call_links = int_vector(links.ravel())
        self.children = int_vector(dst[order])
        # Per tree: its calls not yet finished and whether it died (TREE_FIELDS integers).
        tree_state = np.zeros((trees.n_trees, TREE_FIELDS), dtype=np.int64)
        tree_state[:, TREE_LEFT] = trees.calls_per_tree()
        self.tree_state = int_vector(tree_state.ravel())

    def tree_dead(self, tree: int) -> bool:
        """Whether ``tree`` died (one of its calls failed past its retries)."""
        return self.tree_state[tree * TREE_FIELDS + TREE_DEAD] != 0

    def _check_calls_fit(self) -> None:
        """Refuse a workload with a call too large for an empty replica (it could never run)."""
        trees = self.trees
        if trees.n_calls == 0:
            return
        context = trees.input_tokens + trees.output_tokens
        largest = int(np.argmax(context))
        for pool in {self.entry, self.decode_entry}:
            if not pool.fits_one(largest):
                raise ConfigError(
                    "workload",
                    f"a call of {int(context[largest]):,} tokens does not fit the KV memory of one "
                    f"{pool.spec.name} replica ({pool.kv_capacity_bytes / 1e9:.1f} GB for KV); "
                    f"allowed: shorter calls, a larger tp/ep, or a smaller prefix_cache_fraction",
                )

    # ------------------------------------------------------------------------------- trees
    def start_tree(self, tree: int) -> None:
        now = self.clock.now
        self.trees_started = tree + 1
        for call in range(self.node_offsets[tree], self.node_offsets[tree + 1]):
            if self.call_links[call * LINK_FIELDS + LINK_PENDING] == 0:
                self._schedule_ready(call, now)
        self._update_settled()

    def _schedule_ready(self, call: int, now: float) -> None:
        delay = self.delay_s[call]
        if delay > 0:
            self.in_timer.add(call)
            self.env.timeout(delay).callbacks.append(partial(self._timer_fired, call))
        else:
            self.ready(call)

    def _timer_fired(self, call: int, _event: simpy.Event) -> None:
        self.in_timer.discard(call)
        self.ready(call)

    def ready(self, call: int) -> None:
        if self.tree_dead(self.call_links[call * LINK_FIELDS + LINK_TREE]):
            self.abandoned[call] = True  # its tree died: nobody waits for it
            return
        self.ready_s[call] = self.clock.now
        self.active += 1
        self.entry.submit(call)

    def hand_off(self, call: int, replica: ReplicaSim) -> None:
        """Ship a prefilled call's KV cache over ``replica``'s link (FIFO, one at a time)."""
        context = self.input_tokens[call] + 1
        nbytes = (
            self.decode_entry.perf.kv_bytes_per_token * float(context)
            + self.decode_entry.perf.state_bytes_per_sequence
        )
        now = self.clock.now
        start = replica.link_free_s if replica.link_free_s > now else now
        replica.link_free_s = start + nbytes / self.link_bytes_per_s
        landed = replica.link_free_s + self.link_latency_s
        attempt = self.retries[call]
        self.env.timeout(landed - now).callbacks.append(
            partial(self._arrive_at_decode, call, replica, attempt)
        )

    def _arrive_at_decode(
        self, call: int, replica: ReplicaSim, attempt: int, _event: simpy.Event
    ) -> None:
        if self.retries[call] != attempt or self.failed[call] or call not in replica.held:
            return  # the prefill replica failed meanwhile: the call was restarted or failed
        replica.release_held(call)
        self.kv_landed_s[call] = self.clock.now
        self.decode_entry.submit(call)

    def finish(self, call: int, now: float) -> None:
        self.finish_s[call] = now
        self.active -= 1
        children, links = self.children, self.call_links
        record = call * LINK_FIELDS
        for i in range(links[record + LINK_CHILDREN], links[record + LINK_FIELDS + LINK_CHILDREN]):
            child = children[i] * LINK_FIELDS + LINK_PENDING
            links[child] -= 1
            if links[child] == 0:
                self._schedule_ready(children[i], now)
        tree = links[record + LINK_TREE]
        state = self.tree_state
        left = state[tree * TREE_FIELDS + TREE_LEFT] - 1
        state[tree * TREE_FIELDS + TREE_LEFT] = left
        if left == 0 and not state[tree * TREE_FIELDS + TREE_DEAD]:
            self.tree_finish_s[tree] = now
            self.trees_done += 1
            if self.closed_loop is not None:
                self._request_ended(tree, now)
        if not self.active:  # _update_settled, inlined (once per call)
            self.all_settled = self.settled()

    # ---------------------------------------------------------------------------- failures
    def _update_settled(self) -> None:
        # Settling needs no call active, so only then is the full check worth making.
        if not self.active:
            self.all_settled = self.settled()

    def settled(self) -> bool:
        """Whether no work can remain: every tree arrived and finished or died, nothing active."""
        n = self.trees.n_trees
        loop = self.closed_loop
        if loop is not None and loop.claimed == self.trees_started:
            n = self.trees_started  # no user is thinking: once these end, none starts again
        return (
            self.trees_started == n and self.trees_done + self.trees_failed == n and not self.active
        )

    def retry(self, call: int) -> None:
        """Restart a call that lost its replica, or fail it once it has had ``max_retries``."""
        if self.retries[call] >= self.max_retries:
            self.fail_call(call, FAIL_RETRIES)
            return
        self.retries[call] += 1
        self.admit_s[call] = np.nan
        self.decode_admit_s[call] = np.nan
        self.first_token_s[call] = np.nan
        self.kv_landed_s[call] = np.nan
        self.cached_tokens[call] = 0
        self.entry.submit(call)

    def fail_call(self, call: int, reason: int) -> None:
        """Give up a ready call; its tree dies (its other calls drain or are abandoned)."""
        self.failed[call] = True
        self.fail_s[call] = self.clock.now
        self.fail_reason[call] = reason
        self.active -= 1
        tree = self.call_links[call * LINK_FIELDS + LINK_TREE]
        if not self.tree_dead(tree):
            self.tree_state[tree * TREE_FIELDS + TREE_DEAD] = 1
            self.trees_failed += 1
            if self.closed_loop is not None:
                self._request_ended(tree, self.clock.now)
        self._update_settled()

    # --------------------------------------------------------------------------- closed loop
    def start_closed_loop(self, loop: ClosedLoop) -> None:
        """Drive arrivals by closed-loop users: one request per user now, the next on each end."""
        self.closed_loop = loop
        for _ in range(loop.first()):
            self._start_request()
        self.all_settled = self.settled()

    def _start_request(self, _event: simpy.Event | None = None) -> None:
        loop = self.closed_loop
        assert loop is not None
        now = self.clock.now
        tree = loop.take(now)
        self.tree_arrival_s[tree] = now
        self.start_tree(tree)

    def _request_ended(self, tree: int, now: float) -> None:
        """A closed-loop request (tree) finished or died: its user's next one, after thinking."""
        loop = self.closed_loop
        assert loop is not None
        start_s = loop.request_ended(tree, now)
        if start_s is not None:
            self.env.timeout(start_s - now).callbacks.append(self._start_request)

    def arrivals(self) -> simpy.events.ProcessGenerator:
        env = self.env
        for tree, at in enumerate(self.tree_arrival_s.tolist()):
            if at > env.now:
                yield env.timeout(at - env.now)
            self.start_tree(tree)

    # ------------------------------------------------------------------------------ census
    def census(self) -> dict[str, int]:
        """Where every call is, from the engine's own structures (see ``CENSUS_PLACES``).

        Each place lists its calls by walking what holds them (timers, pool and replica queues,
        prefill FIFOs, decode heaps, held KV awaiting transfer, parked lists) or by the flags
        set when a call left the system (finished, failed, abandoned) or had not entered it
        (trees not started, parents pending). ``unaccounted`` and ``double_counted`` count the
        calls found in no place and in more than one.
        """
        n_calls = self.trees.n_calls
        seen = np.zeros(n_calls, dtype=np.int64)
        counts: dict[str, int] = {}

        def add(place: str, calls: NDArray[np.int64] | list[int]) -> None:
            index = np.asarray(calls, dtype=np.int64)
            np.add.at(seen, index, 1)
            counts[place] = counts.get(place, 0) + int(index.size)

        started = np.arange(n_calls) < self.node_offsets[self.trees_started]
        tree_dead = np.asarray(self.tree_state).reshape(-1, TREE_FIELDS)[:, TREE_DEAD] != 0
        dead = tree_dead[self.call_tree]
        links = np.asarray(self.call_links).reshape(-1, LINK_FIELDS)
        pending = links[:n_calls, LINK_PENDING] > 0
        timer = np.zeros(n_calls, dtype=bool)
        timer[list(self.in_timer)] = True
        add("tree_pending", np.flatnonzero(~started))
        add("not_arrived", np.flatnonzero(started & pending & ~dead))
        add("timer", np.flatnonzero(timer & ~dead))
        for pool in self.pools.values():
            add("parked", list(pool.parked))
            add("queue", pool.queued_calls())
            for replica in pool.replicas:
                add("prefill", replica.prefilling_calls())
                add("decode", decode_heap.calls(replica.decoding))
                add("transfer", sorted(replica.held))
        add("finished", np.flatnonzero(np.isfinite(self.finish_s)))
        add("failed", np.flatnonzero(self.failed))
        add("abandoned", np.flatnonzero(self.abandoned | (started & dead & (pending | timer))))
        result = {place: counts.get(place, 0) for place in CENSUS_PLACES}
        result["unaccounted"] = int((seen == 0).sum())
        result["double_counted"] = int((seen > 1).sum())
        return result

    def check_invariants(self) -> None:
        """Assert the KV ledgers balance in every pool and the active count matches the census."""
        for pool in self.pools.values():
            pool.check_invariants()
        census = self.census()
        in_flight = sum(census[p] for p in ("parked", "queue", "prefill", "transfer", "decode"))
        assert in_flight == self.active, (census, self.active)
        assert census["unaccounted"] == 0 and census["double_counted"] == 0, census


CHECK_EVERY_EVENTS = 16384
"""Events between wall-clock and progress checks (a check costs ~1 us; an event ~2 us)."""


def _run(
    engine: _Engine,
    max_sim_time_s: float | None,
    max_wall_s: float | None,
    wall_start: float,
    progress: Callable[[float, float], None] | None,
) -> str:
    """Step the SimPy clock until it drains or a limit is reached; returns the stop reason.

    Stepping here rather than in ``env.run`` lets a wall-clock guard and a progress callback
    look in every ``CHECK_EVERY_EVENTS`` events. The clock stops as soon as no work can remain
    (every tree arrived and finished or died, no call in flight): what is left then (failure
    draws, repairs) is no work, and running on would dilute every time average. Events at
    exactly ``max_sim_time_s`` are processed; the clock then stands at that time.
    """
    env = engine.env
    stop_at = math.inf if max_sim_time_s is None else max_sim_time_s
    deadline = math.inf if max_wall_s is None else wall_start + max_wall_s
    horizon = float(engine.tree_arrival_s[-1]) if len(engine.tree_arrival_s) else 0.0
    if engine.closed_loop is not None:  # arrival times not known in advance
        horizon = engine.closed_loop.horizon_s
    clock = engine.clock
    queue, soon = clock.heap, clock.soon
    wakes = clock.wakes
    pop, pop_soon = heapq.heappop, soon.popleft
    while True:
        for done in range(CHECK_EVERY_EVENTS):
            if engine.all_settled:
                engine.events += done
                return "drained"
            # The next event: the FIFO's head or SimPy's top, by (time, priority, id), then
            # the least segment end if it comes first (planner.sim.clock).
            from_soon = bool(soon) and (not queue or soon[0] < queue[0])
            head = soon[0] if from_soon else (queue[0] if queue else None)
            upcoming = head[0] if head is not None else math.inf
            wake_first = wakes.comes_first(head)
            if wake_first:
                upcoming = wakes.times[0]
            if upcoming > stop_at:
                engine.events += done
                clock.flush_soon()
                if env.now < stop_at:  # SimPy refuses until <= now
                    env.run(until=stop_at)
                    clock.now = env.now
                return "max_sim_time"
            if upcoming == math.inf:
                engine.events += done
                return "stalled"
            if wake_first:  # a replica's segment end
                env._now = clock.now = upcoming
                _fire_segment_end(wakes)
                continue
            # Environment.step of simpy 4.1 (core.py), inlined (planner.sim.clock).
            # Its StopSimulation branch serves env.run(until=...), which this loop never is.
            now, _, event_id, event = pop_soon() if from_soon else pop(queue)
            env._now = clock.now = now
            if isinstance(event, ReplicaSim):  # a replica's zero-delay re-plan (the FIFO's)
                event.fire(event_id)
                continue
            callbacks = event.callbacks
            event.callbacks = None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                failure = type(event._value)(*event._value.args)
                failure.__cause__ = event._value
                raise failure
        engine.events += CHECK_EVERY_EVENTS
        if progress is not None:
            progress(env.now, horizon)
        if time.perf_counter() > deadline:
            return "wall_clock"


def _fire_segment_end(wakes: WakeHeap) -> None:
    """Fire the segment end on top of ``wakes`` (the clock already stands at its time).

    Its entry stays on top while it fires: a replica that plans its next segment re-keys it in
    place (one sift down instead of a pop and a push); otherwise it is popped after.
    """
    tag = wakes.tags[0]
    slot = tag & SLOT_MASK
    replica: ReplicaSim = wakes.owners[slot]
    replica.fire(tag >> SLOT_BITS)
    if wakes.position[slot] == 0 and wakes.tags[0] == tag:
        wakes.pop()


def _closed_loop_growth(engine: _Engine, stop_reason: str) -> int:
    """Requests to draw for a repeat run when a horizon-bounded closed loop ran out; 0: done.

    The next draw extrapolates the rate seen so far to the horizon (+20%), at least doubling.
    """
    loop = engine.closed_loop
    if loop is None or not loop.wanted_more or stop_reason == "wall_clock":
        return 0
    drawn = loop.n_requests
    if loop.last_start_s <= 0 or not math.isfinite(loop.horizon_s):
        return 2 * drawn
    rate_guess = math.ceil(1.2 * drawn * loop.horizon_s / loop.last_start_s)
    return max(2 * drawn, rate_guess)


def simulate(
    fleet: FleetSpec,
    workload: WorkloadSpec,
    *,
    seed: int,
    stepwise: bool = False,
    max_sim_time_s: float | None = None,
    failures: FailureSpec | None = None,
    max_wall_s: float | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> SimulationResult:
    """Run one replication.

    Args:
        fleet: The pools and routing.
        workload: Arrivals and tree shape.
        seed: Root of this replication's random streams (arrivals, trees, each pool's jitter are
            independent children of ``SeedSequence(seed)``, so fleets compared under one seed see
            the same workload: common random numbers).
        stepwise: Advance one batch iteration per event (slow reference mode for tests).
        max_sim_time_s: Stop the clock here; calls still running are reported in flight.
        failures: Accelerator failures to inject (``None``: none). Their random stream is a
            separate child of the seed, so the workload is the same with and without them.
        max_wall_s: Wall-clock guard: stop cleanly after this many seconds of computing; the
            result is marked ``stop_reason == "wall_clock"`` (partial).
        progress: Called now and then with (simulated time, time of the last arrival), s.

    Raises:
        ConfigError: A pool with fewer racks than one replica needs or more replicas than the
            simulator may build, a workload too large to hold, or a call too large for a
            replica's KV memory.
    """
    wall_start = time.perf_counter()
    for spec in fleet.pools:  # refuse an unbuildable fleet before drawing anything
        PoolRuntime.check_size(spec)
    with numpy_small_pages():
        drawn = draw_workload(workload, seed)
        while True:
            result, more_requests = _simulate_drawn(
                fleet,
                drawn,
                seed,
                np.random.SeedSequence(seed),
                stepwise,
                max_sim_time_s,
                failures,
                max_wall_s,
                progress,
                None,
                wall_start,
                workload,
            )
            if result is not None:
                return result
            # A horizon-bounded closed loop used up its drawn requests: draw more, run again.
            drawn = draw_workload(workload, seed, closed_loop_requests=more_requests)


def simulate_drawn(
    fleet: FleetSpec,
    drawn: DrawnWorkload,
    *,
    seed: int,
    streams: np.random.SeedSequence,
    stepwise: bool = False,
    max_sim_time_s: float | None = None,
    failures: FailureSpec | None = None,
    max_wall_s: float | None = None,
    timeline_horizon_s: float | None = None,
) -> SimulationResult:
    """Run an already drawn workload on ``fleet`` (one cell of a region: :mod:`planner.app.cells`).

    Args:
        fleet: The pools and routing.
        drawn: The trees and their arrival times.
        seed: The root seed recorded in the result.
        streams: Whose children 2 and 3 seed the pools (jitter, routers) and the failures, as
            ``SeedSequence(seed)``'s do in :func:`simulate` (children 0 and 1 are unused here).
        stepwise: Advance one batch iteration per event.
        max_sim_time_s: Stop the clock here.
        failures: Accelerator failures to inject (``None``: none).
        max_wall_s: Wall-clock guard, s.
        timeline_horizon_s: Time the utilization timeline's bins span, s (``None``: the last
            arrival): cells of one region pass the region's, so their timelines add up bin by bin.

    Raises:
        ConfigError: As :func:`simulate`.
    """
    wall_start = time.perf_counter()
    for spec in fleet.pools:
        PoolRuntime.check_size(spec)
    with numpy_small_pages():
        result, _ = _simulate_drawn(
            fleet,
            drawn,
            seed,
            streams,
            stepwise,
            max_sim_time_s,
            failures,
            max_wall_s,
            None,
            timeline_horizon_s,
            wall_start,
        )
    assert result is not None  # open-loop arrivals: no closed loop to extend
    return result


def _simulate_drawn(
    fleet: FleetSpec,
    drawn: DrawnWorkload,
    seed: int,
    streams: np.random.SeedSequence,
    stepwise: bool,
    max_sim_time_s: float | None,
    failures: FailureSpec | None,
    max_wall_s: float | None,
    progress: Callable[[float, float], None] | None,
    timeline_horizon_s: float | None,
    wall_start: float,
    workload: WorkloadSpec | None = None,
) -> tuple[SimulationResult | None, int]:
    """Build the engine for a drawn workload, run it and collect the result.

    ``workload`` (``None`` for a region's cell) supplies the horizon and a closed loop.

    Returns:
        The result and 0; or ``None`` and the requests to draw when a horizon-bounded closed
        loop ran out of drawn requests before its horizon.
    """
    # A fresh copy: spawning is stateful, and the children must not depend on earlier spawns.
    fresh = np.random.SeedSequence(streams.entropy, spawn_key=streams.spawn_key)
    arrivals_seed, _, pools_seed, faults_seed = fresh.spawn(4)
    trees, zero_output = drawn.trees, drawn.trace_zero_output_calls
    horizon_s = math.inf
    loop: ClosedLoopArrivals | None = None
    if workload is not None:
        horizon_s = math.inf if workload.horizon_s is None else workload.horizon_s
        if isinstance(workload.arrivals, ClosedLoopArrivals):
            loop = workload.arrivals
    # Building a large fleet allocates millions of containers (each replica's queues and
    # ledgers), which would set off full collections that find nothing to free.
    with collector_paused():
        engine = _Engine(fleet, trees, drawn.arrival_s, pools_seed, stepwise, horizon_s)
    if timeline_horizon_s is not None:  # no busy time is recorded yet: only the width changes
        engine.timeline_bin_s = max(timeline_horizon_s, 1.0) / TIMELINE_BINS
        for pool in engine.pools.values():
            pool.timeline_bin_s = engine.timeline_bin_s
    if loop is None or workload is None:
        engine.env.process(engine.arrivals())
    else:
        rng = np.random.default_rng(arrivals_seed)
        extendable = loop.request_limit(workload.n_trees) is None
        engine.start_closed_loop(ClosedLoop(loop, trees.n_trees, horizon_s, rng, extendable))
    if failures is not None:
        engine.max_retries = failures.max_retries
        engine.faults = FaultInjector(engine, failures, np.random.default_rng(faults_seed))
        engine.faults.start()
    # The run's state is built: freeze it out of the cyclic collector, whose full collections
    # would otherwise walk every replica's containers again and again (~5% of a 10x run's CPU
    # time, when the per-call data were lists too). Nothing is freed differently; the objects
    # are unfrozen (returned to the oldest generation) when the run ends. A caller that froze
    # objects itself (e.g. before forking workers) keeps them frozen: then nothing is frozen
    # here.
    # The collector is also paused while the clock runs: the run makes no reference cycle
    # that outlives its event (SimPy drops an event's callbacks, the only back-reference to a
    # replica, when it fires), so its ~1,300 passes over a 1000x fleet's growing per-replica
    # state (7% of that run) found nothing; a cycle made anyway is freed once it resumes.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        with collector_paused():
            stop_reason = _run(engine, max_sim_time_s, max_wall_s, wall_start, progress)
    finally:
        if freeze:
            gc.unfreeze()
    for check in AFTER_RUN:
        check(engine, stop_reason)
    more_requests = _closed_loop_growth(engine, stop_reason)
    if more_requests:
        return None, more_requests
    complete = engine.trees_done == trees.n_trees
    now = float(engine.env.now)
    if engine.closed_loop is not None and stop_reason == "drained":
        complete = engine.trees_done == engine.trees_started
    bin_s = max(p.timeline_bin_s for p in engine.pools.values())
    result = SimulationResult(
        trees=trees,
        tree_arrival_s=engine.tree_arrival_s,
        tree_finish_s=engine.tree_finish_s,
        call_tree=engine.call_tree,
        ready_s=engine.ready_s,
        admit_s=engine.admit_s,
        first_token_s=engine.first_token_s,
        finish_s=engine.finish_s,
        cached_tokens=engine.cached_tokens,
        prefill_replica=engine.prefill_replica,
        decode_replica=engine.decode_replica,
        pools=tuple(p.stats(now, bin_s) for p in engine.pools.values()),
        prefill_pool=fleet.prefill_pool.name,
        decode_pool=fleet.decode_pool.name,
        sim_time_s=now,
        wall_time_s=time.perf_counter() - wall_start,
        complete=complete,
        seed=seed,
        trace_zero_output_calls=zero_output,
        stop_reason=stop_reason,
        failed=engine.failed if failures is not None else None,
        retries=np.asarray(engine.retries, dtype=np.int64) if failures is not None else None,
        fail_s=engine.fail_s if failures is not None else None,
        fail_reason=engine.fail_reason if failures is not None else None,
        trees_started=engine.trees_started,
        kv_landed_s=engine.kv_landed_s if engine.entry is not engine.decode_entry else None,
        decode_admit_s=engine.decode_admit_s if engine.entry is not engine.decode_entry else None,
        census=engine.census(),
        events=engine.events,
    )
    # A drained closed loop sent all it will: the requests drawn but never sent are no workload.
    return (trim_unstarted(result) if engine.closed_loop is not None and complete else result), 0
