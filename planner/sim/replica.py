"""One replica's continuous-batching loop, advanced a segment at a time.

A *segment* is a run of batch iterations whose composition does not change: the same decoding
sequences and the same prefill chunk size. It ends at the first of: a sequence finishes, a
prompt's prefill completes, or (when a call arrives that can join) the end of the iteration in
progress. A whole segment costs one SimPy timeout, not one per iteration, and no per-sequence
bookkeeping:

* decode progress is a replica-wide step counter; a sequence that joins at step ``s`` with ``n``
  tokens left finishes at step ``s + n`` (a heap keyed by that step);
* the sum of the decoding sequences' contexts is ``ctx_base + D * step``, kept incrementally;
* prefill is a FIFO token stream: each iteration takes ``min(token_budget - D, left)`` prompt
  tokens (chunked prefill), and a prompt is done when the stream's counter passes its threshold.

Step times vary within a segment as contexts grow; a segment's duration is the exact sum of its
iterations' times, each times its own jitter factor (piecewise arithmetic series weighted by the
replica's factor stream, :mod:`planner.sim.jitter`), so advancing a segment at once gives the
same result as stepping every iteration. Setting ``stepwise`` forces one iteration per segment
(the reference the tests compare against).

KV memory is accounted in whole bytes (Python integers, so no rounding drifts). A prefill
replica reserves a call's prompt (less its prefix-cache hit) and holds it until the KV transfer
to the decode pool lands. Unified and decode replicas page it, as vLLM and SGLang do
(:mod:`planner.sim.paged_kv`): when the next iteration's blocks do not fit, the newest decoding
sequence is preempted (vLLM's default, recompute): its blocks are freed, it goes back to the
front of the replica's queue, and when readmitted it prefills its prompt and the tokens it had
generated, then decodes the rest. The prefix cache is an LRU over prefix groups in a fixed share
of KV memory; a hit skips that part of the prefill and is not charged to the call.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final, Protocol

import simpy
from librt.vecs import append, extend, vec
from mypy_extensions import i64

from planner.perf.gpu_step import GpuStepCoefficients, gpu_step_time_s
from planner.sim import decode_heap
from planner.sim.clock import EventQueue
from planner.sim.jitter import JitterStream
from planner.sim.paged_kv import (
    KV_BLOCK_TOKENS,
    KV_WATERMARK_FRACTION,
    histogram_iterations_kv_allows,
    histogram_new_blocks,
    lone_iterations_kv_allows,
    lone_new_blocks,
    paged_kv_bytes,
)

# Prefill-stream thresholds are sums of integers held as floats; this absorbs rounding.
_EPS = 1e-6
NO_EVENT: Final = -1
"""A replica's ``seg_id`` / ``plan_id`` when no such wake-up is pending (event ids are >= 0)."""
NO_RESERVATION: Final = -1
"""A call's entry in its pool's ``reserved_bytes`` when it holds no KV there."""

PREFILL_CALL: Final = 0
PREFILL_END: Final = 1
PREFILL_START: Final = 2
PREFILL_FIELDS: Final = 3
"""A prefill FIFO record: the call (a double; ids are exact below 2**53), the stream position
at which its prefill completes, and the prefilled-tokens origin when it is the head."""


class ReplicaPool(Protocol):
    """What a replica needs from its pool: limits, call data, and where to report."""

    clock: EventQueue
    max_batch: int
    token_budget: int
    prefills: bool
    decodes: bool
    holds_kv_for_transfer: bool
    stepwise: bool
    kv_capacity_bytes: int
    prefix_cache_tokens: int
    central_queue: deque[int] | None
    reserved_bytes: vec[i64]
    input_tokens: vec[i64]
    output_tokens: vec[i64]
    shared_prefix_tokens: vec[i64]
    prefix_group: vec[i64]
    step_time_fn: Callable[[float, float, float, float], float]
    gpu_step_coefficients: GpuStepCoefficients | None
    prefill_attention_flops: Callable[[float, float], float]
    busy_timeline: vec[float]
    timeline_bin_s: float

    def call_reserve_bytes(self, call: int, cached_tokens: int) -> int:
        """KV bytes an unpaged (prefill) replica reserves for ``call`` on admission."""

    def kv_bytes_for_context(self, context_tokens: float) -> float:
        """KV bytes one sequence of ``context_tokens`` tokens takes (the cost model's)."""

    def record_busy(self, start_s: float, duration_s: float) -> None:
        """Add a busy interval to the pool's utilization timeline, s."""

    def on_admit(self, call: int, replica: ReplicaSim, now: float, hit: int) -> None:
        """``call`` was admitted at ``now`` with ``hit`` prefix tokens cached."""

    def on_first_token(self, call: int, now: float) -> None:
        """``call`` produced its first token at ``now``."""

    def on_prefill_complete(self, call: int, replica: ReplicaSim, now: float) -> None:
        """``call``'s prefill finished and it does not decode here."""

    def on_finish(self, call: int, now: float) -> None:
        """``call`` produced its last token at ``now``."""

    def on_load_change(self, replica: ReplicaSim) -> None:
        """``replica``'s outstanding calls changed (routers index them)."""


class ReplicaSim:
    """Continuous batching on one replica (see the module docstring).

    Args:
        env: The SimPy environment.
        pool: The pool this replica belongs to (shared call data, callbacks, limits).
        index: Replica index within the pool.
        jitter: The replica's step-time factor stream (``None``: no jitter).
    """

    __slots__ = (
        "batch_s",
        "block_bytes",
        "busy_s",
        "cache",
        "cache_capacity_tokens",
        "cache_tokens",
        "clock",
        "ctx_base",
        "decode_tokens",
        "decoding",
        "down",
        "down_since",
        "env",
        "gpu_coefficients",
        "held",
        "hit_tokens",
        "index",
        "jitter",
        "jitter_pos",
        "joined",
        "kv_free_bytes",
        "link_free_s",
        "n_decode",
        "n_hit_tokens",
        "n_prefill",
        "n_resumed",
        "n_waiting",
        "outstanding",
        "paged",
        "phase",
        "plan_id",
        "pool",
        "preemptions",
        "prefill_done",
        "prefill_enqueued",
        "prefill_fifo",
        "prefill_head",
        "prefill_tokens",
        "queued",
        "queued_head",
        "repair_at",
        "resumed",
        "seg_chunk",
        "seg_decode",
        "seg_duration_s",
        "seg_id",
        "seg_position",
        "seg_start",
        "seg_steps",
        "state_bytes",
        "step",
        "wake_slot",
        "watermark_bytes",
    )

    def __init__(
        self,
        env: simpy.Environment,
        pool: ReplicaPool,
        index: int,
        jitter: JitterStream | None,
    ) -> None:
        """Start idle and empty, with all of the pool's KV memory free."""
        self.env = env
        self.clock = pool.clock
        self.wake_slot = pool.clock.wakes.register(self)  # its segment ends' slot in the heap
        self.gpu_coefficients = pool.gpu_step_coefficients
        self.pool = pool
        self.index = index
        self.jitter = jitter
        self.jitter_pos = 0  # this replica's iterations so far (index into its factor stream)
        # Calls waiting for admission here, in order: queued[queued_head:] (flat vectors, so a
        # call's place costs 8 bytes in one buffer, not a deque slot and an int object).
        self.queued: vec[i64] = vec[i64]()
        self.queued_head = 0
        self.n_waiting = 0
        # The prefill FIFO from prefill_head (an offset) on, one record of PREFILL_FIELDS
        # doubles per prompt, in one buffer: its call, the stream position at which its prefill
        # completes (threshold) and the prefilled-tokens origin of the head.
        self.prefill_fifo: vec[float] = vec[float]()
        self.prefill_head = 0
        self.n_prefill = 0
        # The decoding sequences: a heap of flat records by finish step (planner.sim.decode_heap).
        self.decoding: vec[i64] = vec[i64]()
        self.joined = 0  # sequences that joined the batch so far (the records' join order)
        self.held: set[int] = set()  # prefilled calls whose KV waits for its transfer to land
        self.kv_free_bytes = pool.kv_capacity_bytes
        self.link_free_s = 0.0  # when this replica's outgoing KV link is next free
        self.cache: OrderedDict[int, int] = OrderedDict()
        self.cache_tokens = 0
        self.cache_capacity_tokens = pool.prefix_cache_tokens
        self.step = 0
        self.n_decode = 0
        self.ctx_base = 0
        self.prefill_enqueued = 0.0
        self.prefill_done = 0.0
        self.outstanding = 0
        self.seg_id = NO_EVENT  # event id of the live segment end (NO_EVENT: no segment)
        self.seg_start = 0.0
        self.seg_steps = 0
        self.seg_duration_s = 0.0
        self.seg_position = 0.0
        self.seg_chunk = 0.0
        self.seg_decode = 0
        self.plan_id = NO_EVENT  # event id of the pending zero-delay re-plan
        self.busy_s = 0.0
        self.batch_s = 0.0
        self.down = False
        self.down_since = 0.0
        self.repair_at = 0.0
        self.decode_tokens = 0
        self.prefill_tokens = 0.0
        # Paged KV (unified and decode replicas): the histogram of the decoding calls'
        # charged-context offsets (in their records) modulo the block size, kept while two or
        # more decode (all zeros otherwise: a lone sequence's record says it all, and on a
        # large fleet most replicas decode one call at a time), and the calls preempted here
        # with the tokens they had generated.
        self.paged = not pool.holds_kv_for_transfer
        self.state_bytes, self.block_bytes = paged_kv_bytes(pool.kv_bytes_for_context)
        self.phase: vec[i64] = vec[i64]([0] * KV_BLOCK_TOKENS)
        self.resumed: dict[int, int] = {}
        self.hit_tokens: dict[int, int] = {}  # prefix-cache hit of each call being prefilled
        # Their sizes, kept beside the replica's other counters: most calls meet both dicts
        # empty, and on a large fleet a look into one is a cache miss of its own.
        self.n_resumed = 0
        self.n_hit_tokens = 0
        self.preemptions = 0
        self.watermark_bytes = (
            int(KV_WATERMARK_FRACTION * pool.kv_capacity_bytes) if self.paged else 0
        )

    # ------------------------------------------------------------------------------ arrivals
    def submit(self, call: int) -> None:
        """A call placed on this replica by the router."""
        self.queued = append(self.queued, call)
        self.n_waiting += 1
        self.outstanding += 1
        self.pool.on_load_change(self)
        self.wake()

    def has_batch_room(self) -> bool:
        """Whether another sequence may join the batch (KV permitting)."""
        return self.n_decode + self.n_prefill < self.pool.max_batch

    # ----------------------------------------------------------------------- FIFOs as vectors
    def waiting_calls(self) -> list[int]:
        """Calls waiting for admission on this replica, first in line first."""
        return [self.queued[i] for i in range(self.queued_head, len(self.queued))]

    def prefilling_calls(self) -> list[int]:
        """Calls in the prefill FIFO, first in line first."""
        fifo = self.prefill_fifo
        return [int(fifo[i]) for i in range(self.prefill_head, len(fifo), PREFILL_FIELDS)]

    def _pop_waiting(self) -> None:
        """Drop the first waiting call."""
        self.queued_head += 1
        self.n_waiting -= 1
        if not self.n_waiting:
            self.queued = vec[i64]()
            self.queued_head = 0
        elif self.queued_head >= 64 and 2 * self.queued_head >= len(self.queued):
            self.queued = self.queued[self.queued_head :]
            self.queued_head = 0

    def _push_front_waiting(self, call: int) -> None:
        """Put ``call`` first in line."""
        if self.queued_head:
            self.queued_head -= 1
            self.queued[self.queued_head] = call
        else:
            self.queued = extend(vec[i64]([call]), self.queued)
        self.n_waiting += 1

    def _pop_prefill(self) -> None:
        """Drop the head of the prefill FIFO."""
        self.prefill_head += PREFILL_FIELDS
        self.n_prefill -= 1
        if not self.n_prefill:
            self.prefill_fifo = vec[float]()
            self.prefill_head = 0
        elif self.prefill_head >= 64 * PREFILL_FIELDS and 2 * self.prefill_head >= len(
            self.prefill_fifo
        ):
            self.prefill_fifo = self.prefill_fifo[self.prefill_head :]
            self.prefill_head = 0

    def wake(self) -> None:
        """Re-plan at the next iteration boundary because new work may be admissible."""
        if self.down:
            return
        if self.seg_id == NO_EVENT:
            if self.plan_id == NO_EVENT:
                # Plan in a zero-delay event so every call arriving at this instant joins at once.
                self.plan_id = self.clock.schedule_now(self)
            return
        if not self._has_room():
            return
        # Cut the segment at the end of the iteration in progress: the first boundary b with
        # segment_s(b) > elapsed. The mean iteration time gives a guess; without jitter it is a
        # lower bound (iterations lengthen as contexts grow), so a short walk up finds b.
        now = self.clock.now
        elapsed = now - self.seg_start
        steps = self.seg_steps
        boundary = int(elapsed / (self.seg_duration_s / steps) + 1e-9) + 1
        if self.jitter is not None:
            boundary = self._jittered_boundary(elapsed, min(boundary, steps))
        if boundary >= steps:
            return
        duration = self._segment_s(boundary)
        while duration <= elapsed and boundary < steps:
            boundary += 1
            duration = self._segment_s(boundary)
        if boundary >= steps:
            return
        self.seg_steps = boundary
        self.seg_duration_s = duration
        self._schedule(self.seg_start + duration - now)

    def _jittered_boundary(self, elapsed: float, guess: int) -> int:
        """The first boundary b with segment_s(b) > elapsed, searched from ``guess``.

        Jittered iterations are not monotone, so the guess may overshoot: gallop down, then
        bisect.
        """
        if self._segment_s(guess) <= elapsed:
            return guess  # the caller walks up from here
        low, high, gap = 0, guess, 1  # segment_s(low) <= elapsed < segment_s(high)
        while high - gap > low:
            if self._segment_s(high - gap) <= elapsed:
                low = high - gap
                break
            high -= gap
            gap *= 2
        while high - low > 1:
            middle = (low + high) // 2
            if self._segment_s(middle) > elapsed:
                high = middle
            else:
                low = middle
        return high

    def fire(self, event_id: int) -> None:
        """One of this replica's wake-ups is due (the engine's loop calls this; planner.sim.clock).

        Its segment end (from the clock's :class:`~planner.sim.clock.WakeHeap`, which holds only
        the live one) or its zero-delay re-plan (from the clock's FIFO).
        """
        if event_id == self.seg_id:
            self._segment_end()
        elif event_id == self.plan_id:
            self.plan_id = NO_EVENT
            if self.seg_id == NO_EVENT and not self.down:
                self._plan()

    def _has_room(self) -> bool:
        pool = self.pool
        if self.n_decode + self.n_prefill >= pool.max_batch:
            return False
        if self.n_waiting:
            call = self.queued[self.queued_head]
        elif pool.central_queue:
            call = pool.central_queue[0]
        else:
            return False
        return self._reserve_bytes(call, 0) + self._watermark() <= self.kv_free_bytes

    def _watermark(self) -> int:
        """KV bytes admission leaves free: the watermark while other sequences run, else 0."""
        return self.watermark_bytes if self.n_decode or self.n_prefill else 0

    # ----------------------------------------------------------------------------- admission
    def _reserve_bytes(self, call: int, hit: int) -> int:
        """KV bytes ``call`` takes on admission with ``hit`` prefix tokens cached.

        Paged: the blocks of its prompt (and any tokens it generated before a preemption) and of
        its first new token; a prefill replica: its whole prompt (the pool's reservation).
        """
        if not self.paged:
            return self.pool.call_reserve_bytes(call, hit)
        generated = self.resumed.get(call, 0) if self.n_resumed else 0
        tokens = self.pool.input_tokens[call] + generated - hit + 1
        return self.state_bytes + -(-tokens // KV_BLOCK_TOKENS) * self.block_bytes

    def _held_bytes(self, charged: int) -> int:
        """KV bytes a decoding call with ``charged`` offset holds now (paged): state and blocks."""
        blocks = -(-(charged + self.step) // KV_BLOCK_TOKENS)
        return self.state_bytes + blocks * self.block_bytes

    def _admit(self) -> None:
        pool = self.pool
        now = self.clock.now
        central = pool.central_queue
        while self.n_decode + self.n_prefill < pool.max_batch:
            if self.n_waiting:
                call = self.queued[self.queued_head]
            elif central:
                call = central[0]
            else:
                return
            hit = self._cache_lookup(call) if pool.prefills and self.cache_capacity_tokens else 0
            need = self._reserve_bytes(call, hit)
            if need + self._watermark() > self.kv_free_bytes:
                return
            if self.n_waiting:
                self._pop_waiting()
            elif central is not None:
                central.popleft()
                self.outstanding += 1
                pool.on_load_change(self)
            self.kv_free_bytes -= need
            pool.reserved_bytes[call] = need
            generated = self.resumed.get(call, 0) if self.n_resumed else 0
            if not generated:
                pool.on_admit(call, self, now, hit)  # a readmitted call keeps its first admission
            if pool.prefills or generated:  # a preempted call recomputes its KV here
                if hit and self.paged:
                    self.hit_tokens[call] = hit
                    self.n_hit_tokens = len(self.hit_tokens)
                tokens = pool.input_tokens[call] + generated - hit
                tokens = tokens if tokens > 0 else 1  # the first output token needs one pass
                start = self.prefill_enqueued
                self.prefill_enqueued += float(tokens)
                fifo = append(self.prefill_fifo, float(call))  # exact: ids are below 2**53
                fifo = append(fifo, self.prefill_enqueued)
                self.prefill_fifo = append(fifo, float(hit) - start)
                self.n_prefill += 1
                if self.cache_capacity_tokens:  # without a cache the insert is a no-op
                    self._cache_insert(call)
            else:
                self._join_decode(call)

    def _cache_lookup(self, call: int) -> int:
        pool = self.pool
        shared = pool.shared_prefix_tokens[call]
        if not shared or not self.cache_capacity_tokens:
            return 0
        cached = self.cache.get(pool.prefix_group[call], 0)
        return cached if cached < shared else shared

    def _cache_insert(self, call: int) -> None:
        pool = self.pool
        shared = pool.shared_prefix_tokens[call]
        if not shared or shared > self.cache_capacity_tokens:
            return
        cache = self.cache
        group = pool.prefix_group[call]
        held = cache.get(group, 0)
        if held >= shared:
            cache.move_to_end(group)
            return
        cache[group] = shared
        cache.move_to_end(group)
        self.cache_tokens += shared - held
        while self.cache_tokens > self.cache_capacity_tokens:
            _, evicted = cache.popitem(last=False)
            self.cache_tokens -= evicted

    def _join_decode(self, call: int) -> None:
        """Start decoding ``call``: its first token exists, ``output - 1`` remain.

        A call readmitted after a preemption has just recomputed its prompt and the ``g`` tokens
        it had generated and produced one more: ``output - g - 1`` remain.
        """
        pool = self.pool
        generated = 0
        if self.n_resumed:
            generated = self.resumed.pop(call, 0)
            self.n_resumed = len(self.resumed)
        remaining = pool.output_tokens[call] - 1 - generated
        context = pool.input_tokens[call] + 1 + generated
        offset = context - self.step
        charged = 0
        if self.paged:
            # Charged tokens exclude the prefix-cache hit (held in the cache's share).
            charged = offset
            if self.n_hit_tokens:
                charged -= self.hit_tokens.pop(call, 0)
                self.n_hit_tokens = len(self.hit_tokens)
            self._phase_count(charged, 1)
        self.decoding = decode_heap.push(
            self.decoding, self.step + remaining, call, offset, charged, self.joined
        )
        self.joined += 1
        self.ctx_base += offset
        self.n_decode += 1

    # ------------------------------------------------------------------------------ segments
    def _plan(self, admit: bool = True) -> None:
        """Admit what fits (unless a preemption just made room), then start the next segment.

        After a preemption nothing is admitted in the same round (as vLLM's scheduler does), or
        the preempted sequence would come straight back and take the blocks it just gave up.
        """
        if admit:
            self._admit()
        decode = self.n_decode
        left = self.prefill_enqueued - self.prefill_done
        if decode == 0 and left <= _EPS:
            self.seg_id = NO_EVENT
            return
        pool = self.pool
        chunk = 0.0
        steps = 1 << 62
        if left > _EPS:
            chunk = float(pool.token_budget - decode)
            if chunk > left:
                chunk = left
            if chunk > 0:
                # Full chunks only: the iteration that finishes the head prompt may take fewer
                # tokens (when nothing queues behind it), so it gets a segment of its own.
                to_head = self.prefill_fifo[self.prefill_head + PREFILL_END] - self.prefill_done
                steps = 1 if to_head <= chunk + _EPS else int((to_head + _EPS) // chunk)
        if decode:
            to_finish = self.decoding[decode_heap.FINISH_STEP] - self.step
            if to_finish < steps:
                steps = to_finish
            # With a free block per sequence for every KV_BLOCK_TOKENS iterations (plus one) the
            # segment cannot run out of KV: the exact count is only needed below that.
            if (
                self.paged
                and self.block_bytes
                and (
                    self.kv_free_bytes // self.block_bytes < decode * (steps // KV_BLOCK_TOKENS + 1)
                )
            ):
                fit = self._iterations_kv_allows()
                if fit == 0:  # the next iteration's blocks do not fit: make room, plan again
                    self._preempt_newest()
                    self._plan(admit=False)
                    return
                if fit < steps:
                    steps = fit
        if pool.stepwise:
            steps = 1
        self.seg_start = self.clock.now
        self.seg_chunk = chunk
        self.seg_decode = decode
        # Prompt tokens of the head already prefilled (its prefix-cache hit included).
        self.seg_position = (
            self.prefill_fifo[self.prefill_head + PREFILL_START] + self.prefill_done
            if chunk
            else 0.0
        )
        self.seg_steps = steps
        self.seg_duration_s = self._segment_s(steps)
        self._schedule(self.seg_duration_s)

    # ------------------------------------------------------------------------------ paged KV
    def _phase_count(self, charged: int, delta: int) -> None:
        """Add ``delta`` (+1 joining, -1 leaving) to ``phase`` for a sequence of offset ``charged``.

        Called while that sequence is out of the decode heap (before its push, after its
        removal), so ``n_decode`` counts the others. ``phase`` is kept only while two or more
        decode, so with one other the other's own count comes or goes too.
        """
        others = self.n_decode
        if others:
            phase = self.phase
            phase[charged % KV_BLOCK_TOKENS] += delta
            if others == 1:
                phase[self.decoding[decode_heap.CHARGED] % KV_BLOCK_TOKENS] += delta

    def _new_blocks(self, steps: int) -> int:
        """Blocks the decoding sequences take over the next ``steps`` iterations."""
        if self.n_decode == 1:
            return lone_new_blocks(self.decoding[decode_heap.CHARGED] + self.step, steps)
        return histogram_new_blocks(self.phase, self.n_decode, self.step, steps)

    def _iterations_kv_allows(self) -> int:
        """How many iterations from now the free KV memory can feed (``1 << 62``: unbounded)."""
        free_blocks = self.kv_free_bytes // self.block_bytes
        if self.n_decode == 1:
            charged = self.decoding[decode_heap.CHARGED] + self.step
            return lone_iterations_kv_allows(charged, free_blocks)
        return histogram_iterations_kv_allows(self.phase, self.n_decode, self.step, free_blocks)

    def _preempt_newest(self) -> None:
        """Preempt the newest decoding sequence (recompute): free its blocks and queue it first.

        Raises:
            RuntimeError: Only one sequence decodes and nothing else holds KV to free: it cannot
                grow even alone (the engine refuses such calls up front).
        """
        pool = self.pool
        if self.n_decode == 1 and not self.n_prefill and not self.held:
            raise RuntimeError(f"replica {self.index}: a lone sequence outgrew KV memory")
        heap = self.decoding
        position = decode_heap.newest(heap)
        record = position * decode_heap.FIELDS
        call = heap[record + decode_heap.CALL]
        finish_step = heap[record + decode_heap.FINISH_STEP]
        offset = heap[record + decode_heap.OFFSET]
        charged = heap[record + decode_heap.CHARGED]
        self.decoding = decode_heap.remove_at(heap, position)
        self.ctx_base -= offset
        self.n_decode -= 1
        if not self.n_decode:
            self.ctx_base = 0
        self._phase_count(charged, -1)
        self.kv_free_bytes += self._held_bytes(charged)
        pool.reserved_bytes[call] = NO_RESERVATION
        self.resumed[call] = pool.output_tokens[call] - (finish_step - self.step)
        self.n_resumed = len(self.resumed)
        self._push_front_waiting(call)  # still outstanding here: first in line for readmission
        self.preemptions += 1

    def _iteration_s(self, index: int) -> float:
        """Time of iteration ``index`` (0-based) of the current segment, before jitter."""
        decode, chunk = self.seg_decode, self.seg_chunk
        context = float(self.ctx_base + decode * (self.step + index)) if decode else 0.0
        pool = self.pool
        flops = 0.0
        if chunk > 0:
            flops = pool.prefill_attention_flops(chunk, self.seg_position + index * chunk)
        coefficients = self.gpu_coefficients
        if coefficients is not None:  # pool.step_time_fn, called natively (pool.py)
            return gpu_step_time_s(coefficients, decode, context, chunk, flops)
        return pool.step_time_fn(decode, context, chunk, flops)

    def _segment_s(self, steps: int) -> float:
        """Exact total time of the current segment's first ``steps`` iterations, jitter included.

        Within a segment only the attention term changes from one iteration to the next
        (contexts and prefill positions grow by a fixed amount), and it is piecewise linear with
        at most a couple of kinks (memory- to compute-bound, sliding windows filling up). So the
        sum is taken piecewise: where the midpoint lies on the chord the piece is linear and its
        jitter-weighted sum comes from the factor stream's prefix sums; elsewhere the piece is
        split. Linear segments cost three evaluations, kinked ones O(log steps); the result
        equals stepping every iteration with its own factor.
        """
        first = self._iteration_s(0)
        jitter = self.jitter
        if steps == 1:
            return first * jitter.factor(self.jitter_pos) if jitter is not None else first
        last_index = steps - 1
        last = self._iteration_s(last_index)
        if jitter is not None or last_index == 1:
            return self._sum_pieces(0, last_index, first, last)
        # The first level of _sum_pieces without jitter, inlined (same arithmetic).
        middle = last_index // 2
        at_middle = self._iteration_s(middle)
        chord = first + (last - first) * middle / last_index
        if abs(at_middle - chord) <= 1e-12 * abs(at_middle):
            return steps * (first + last) / 2.0
        return (
            self._sum_pieces(0, middle, first, at_middle)
            + self._sum_pieces(middle, last_index, at_middle, last)
            - at_middle
        )

    def _piece(self, low: int, high: int, at_low: float, at_high: float) -> float:
        """Jitter-weighted sum of a linear piece, iterations ``low..high`` inclusive."""
        n = high - low + 1
        jitter = self.jitter
        if jitter is None:
            return n * (at_low + at_high) / 2.0
        slope = (at_high - at_low) / (high - low) if high > low else 0.0
        return jitter.weighted_sum(self.jitter_pos + low, n, at_low, slope)

    def _sum_pieces(self, low: int, high: int, at_low: float, at_high: float) -> float:
        if high - low <= 1:
            return self._piece(low, high, at_low, at_high)
        middle = (low + high) // 2
        at_middle = self._iteration_s(middle)
        chord = at_low + (at_high - at_low) * (middle - low) / (high - low)
        if abs(at_middle - chord) <= 1e-12 * abs(at_middle):
            if self.jitter is None:  # the common case, inlined: an arithmetic series
                return (high - low + 1) * (at_low + at_high) / 2.0
            return self._piece(low, high, at_low, at_high)
        jitter = self.jitter
        shared = at_middle * (
            jitter.factor(self.jitter_pos + middle) if jitter is not None else 1.0
        )
        return (
            self._sum_pieces(low, middle, at_low, at_middle)
            + self._sum_pieces(middle, high, at_middle, at_high)
            - shared
        )

    def _schedule(self, delay_s: float) -> None:
        self.seg_id = self.clock.schedule(self.wake_slot, delay_s if delay_s > 0 else 0.0)

    def _segment_end(self) -> None:
        steps = self.seg_steps
        duration = self.seg_duration_s
        self.busy_s += duration
        self.batch_s += self.seg_decode * duration
        pool = self.pool
        # Utilization timeline: nearly every segment lies within one bin (inlined fast path).
        start = self.seg_start
        timeline = pool.busy_timeline
        index = int(start / pool.timeline_bin_s)
        if index < len(timeline) and start + duration <= (index + 1) * pool.timeline_bin_s:
            timeline[index] += duration
        else:
            pool.record_busy(start, duration)
        if self.paged and self.seg_decode:
            self.kv_free_bytes -= self._new_blocks(steps) * self.block_bytes
        self.step += steps
        self.jitter_pos += steps
        if self.jitter is not None and not self.jitter_pos & 0xFFF:
            self.jitter.forget_before(self.jitter_pos)
        self.decode_tokens += self.seg_decode * steps
        now = self.clock.now
        if self.seg_chunk:
            done = self.prefill_done + self.seg_chunk * steps
            self.prefill_tokens += self.seg_chunk * steps
            self.prefill_done = done
            while (
                self.n_prefill and self.prefill_fifo[self.prefill_head + PREFILL_END] <= done + _EPS
            ):
                call = int(self.prefill_fifo[self.prefill_head + PREFILL_CALL])
                self._pop_prefill()
                if self.n_resumed and call in self.resumed:  # recomputed after a preemption
                    if pool.output_tokens[call] - self.resumed[call] > 1:
                        self._join_decode(call)  # decode on
                        continue
                    del self.resumed[call]  # it had only its last token left: it finishes
                    self.n_resumed = len(self.resumed)
                    self._free_slot(call)
                    self._free_kv(call)
                    pool.on_finish(call, now)
                    continue
                if pool.decodes and pool.output_tokens[call] > 1:
                    pool.on_first_token(call, now)
                    self._join_decode(call)
                    continue
                self._free_slot(call)
                if pool.holds_kv_for_transfer and pool.output_tokens[call] > 1:
                    self.held.add(call)  # KV stays until the transfer lands
                else:
                    self._free_kv(call)
                pool.on_prefill_complete(call, self, now)
            if not self.n_prefill:  # keep the counters small and exact
                self.prefill_done = self.prefill_enqueued = 0.0
        reserved = pool.reserved_bytes
        while self.n_decode and self.decoding[decode_heap.FINISH_STEP] <= self.step:
            heap = self.decoding
            call = heap[decode_heap.CALL]
            self.ctx_base -= heap[decode_heap.OFFSET]
            charged = heap[decode_heap.CHARGED]
            self.decoding = decode_heap.pop_least(heap)
            self.n_decode -= 1
            self.outstanding -= 1  # _free_slot and _free_kv, inlined (once per call)
            pool.on_load_change(self)
            if self.paged:
                self._phase_count(charged, -1)
                blocks = -(-(charged + self.step) // KV_BLOCK_TOKENS)
                self.kv_free_bytes += self.state_bytes + blocks * self.block_bytes
            else:
                self.kv_free_bytes += reserved[call]
            reserved[call] = NO_RESERVATION
            pool.on_finish(call, now)
        if not self.n_decode:
            self.ctx_base = 0
        self._plan()

    # ----------------------------------------------------------------------- KV and transfers
    def release_held(self, call: int) -> None:
        """The KV transfer of ``call`` landed: free its KV here (more calls may now fit)."""
        self.held.remove(call)
        self._free_kv(call)
        self.wake()

    def _free_slot(self, call: int) -> None:
        self.outstanding -= 1
        self.pool.on_load_change(self)

    def _free_kv(self, call: int) -> None:
        reserved = self.pool.reserved_bytes
        self.kv_free_bytes += reserved[call]
        reserved[call] = NO_RESERVATION

    def admitted_calls(self) -> list[int]:
        """Calls holding KV on this replica: prefilling, decoding, or awaiting their transfer."""
        calls = self.prefilling_calls()
        calls += decode_heap.calls(self.decoding)
        calls += sorted(self.held)
        return calls

    def check_invariants(self) -> None:
        """Assert the KV ledger balances: free + held by admitted calls == capacity.

        A prefilling call (or one awaiting its transfer) holds what it reserved on admission; a
        decoding call on a paged replica holds its state and whole blocks of its charged context.
        """
        reserved = self.pool.reserved_bytes
        heap = self.decoding
        fields = decode_heap.FIELDS
        charged_of = {
            heap[i + decode_heap.CALL]: heap[i + decode_heap.CHARGED]
            for i in range(0, len(heap), fields)
        }
        for position in range(1, len(heap) // fields):  # the heap property
            parent = (position - 1) // 2
            assert (heap[parent * fields], heap[parent * fields + decode_heap.CALL]) < (
                heap[position * fields],
                heap[position * fields + decode_heap.CALL],
            ), (self.index, "decode heap order")
        held = 0
        for call in self.admitted_calls():
            assert reserved[call] != NO_RESERVATION, (self.index, call)
            if self.paged and call in charged_of:
                held += self._held_bytes(charged_of[call])
            else:
                held += reserved[call]
        if self.paged:
            phase = [0] * KV_BLOCK_TOKENS
            for charged in charged_of.values():
                assert charged + self.step > 0, (self.index, charged)
                if len(charged_of) > 1:  # kept only while two or more decode
                    phase[charged % KV_BLOCK_TOKENS] += 1
            assert phase == list(self.phase), (self.index, phase, list(self.phase))
            assert not set(self.resumed) & set(charged_of), (self.index, "a resumed call decodes")
        assert self.n_resumed == len(self.resumed), (self.index, "resumed count")
        assert self.n_hit_tokens == len(self.hit_tokens), (self.index, "hit count")
        capacity = self.pool.kv_capacity_bytes
        assert 0 <= self.kv_free_bytes <= capacity, (self.index, self.kv_free_bytes, capacity)
        assert self.kv_free_bytes + held == capacity, (self.index, self.kv_free_bytes, held)
        assert self.n_decode * decode_heap.FIELDS == len(heap), (self.index, self.n_decode)
        assert self.n_waiting == len(self.queued) - self.queued_head, (self.index, "waiting")
        assert self.n_prefill * PREFILL_FIELDS == len(self.prefill_fifo) - self.prefill_head, (
            self.index,
            "fifo",
        )
        assert self.outstanding == self.n_waiting + self.n_prefill + self.n_decode

    # ------------------------------------------------------------------------------ failures
    def fail(self) -> tuple[list[int], list[int]]:
        """Take the replica down: drop its work and return (admitted calls, waiting calls).

        The iteration in progress is lost but its time counts as busy. KV memory, the prefix
        cache, every queue and the outgoing KV link are emptied; the caller re-routes the calls
        (a call whose KV was waiting for its transfer is among the admitted ones: it is lost).
        """
        now = self.clock.now
        if self.seg_id != NO_EVENT:
            self.clock.cancel(self.wake_slot)
            elapsed = now - self.seg_start
            self.busy_s += elapsed
            self.batch_s += self.seg_decode * elapsed
            self.pool.record_busy(self.seg_start, elapsed)
            self.jitter_pos += self.seg_steps
        admitted = self.admitted_calls()
        waiting = self.waiting_calls()
        reserved = self.pool.reserved_bytes
        for call in admitted:
            reserved[call] = NO_RESERVATION
        self.queued = vec[i64]()
        self.queued_head = self.n_waiting = 0
        self.prefill_fifo = vec[float]()
        self.prefill_head = self.n_prefill = 0
        self.decoding = vec[i64]()
        self.held.clear()
        self.phase = vec[i64]([0] * KV_BLOCK_TOKENS)
        self.resumed.clear()  # the failure handler restarts these calls from scratch
        self.hit_tokens.clear()
        self.n_resumed = self.n_hit_tokens = 0
        self.n_decode = 0
        self.ctx_base = 0
        self.prefill_enqueued = self.prefill_done = 0.0
        self.kv_free_bytes = self.pool.kv_capacity_bytes
        self.link_free_s = now
        self.cache.clear()
        self.cache_tokens = 0
        self.outstanding = 0
        self.seg_id = NO_EVENT
        self.down = True
        self.down_since = now
        self.pool.on_load_change(self)
        return admitted, waiting

    def restore(self) -> None:
        """Bring the replica back up, empty."""
        self.down = False
        self.pool.on_load_change(self)
