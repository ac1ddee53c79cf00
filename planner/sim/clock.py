"""SimPy's event heap as the compiled engine drives it: replica wake-ups pushed and popped directly.

SimPy 4's ``Environment`` keeps its pending events in a binary heap of ``(time, priority, id,
event)`` entries (``env._queue``, ids from ``env._eid``) and its clock in ``env._now``;
``Environment.step`` pops the least entry, sets the clock and calls the event's callbacks. The
engine's hot path does exactly that itself (``planner.sim.engine._run``), and a replica's own
wake-ups (its segment ends, its re-planning) are entries whose fourth element is the replica
itself, pushed through :class:`EventQueue` with SimPy's id counter: the loop hands such an entry
to the replica with its id (``ReplicaSim.fire``), which tells a live wake-up from one it has
superseded by that id. No event object, callback list or bound method is made per wake-up
(measured with ``benchmarks/run.py --only engine``: the reference run 103,800 -> 118,000
sub-calls/s, the 1000x fleet 47,800 -> 54,800 calls/s). The order of events is SimPy's own
(same keys, same id counter), so results are those of ``env.timeout``. This module is the
only one that touches SimPy's private state; pyproject pins simpy below 5, and
:class:`EventQueue` refuses a SimPy without it.

The engine reads the time from :attr:`EventQueue.now`, which the loop sets beside
``env._now`` (``env.now`` is a Python property, too slow for a read every few microseconds), so
nothing but the engine's loop may step the clock.

Zero-delay wake-ups (a replica re-planning at the current instant) skip the heap: they wait in
a FIFO (:meth:`EventQueue.schedule_now`) that the engine's loop merges with the heap by the same
``(time, priority, id)`` key, so they fire in SimPy's order at O(1) instead of two O(log n) heap
operations on a heap of one entry per busy replica (16,000 at 1000x). Only the engine's loop
steps replica entries: SimPy itself runs only to a time limit, after every pending entry's time
(:meth:`EventQueue.flush_soon` moves the FIFO into the heap before it does).

A replica's segment ends do not go into SimPy's heap at all: each replica has a slot in
:class:`WakeHeap`, which orders the slots' pending segment ends by ``(time, id)`` in flat
vectors (~400 KB for 16,000 replicas, within a core's L2 cache), so the ~14 levels a heap
operation walks at 1000x no longer miss on a tuple and its float spread over the run's memory.
A cut re-keys the replica's entry in place instead of leaving a superseded entry behind, so
the heap holds at most one entry per replica; and the entry of a segment end stays on top while
it fires, so the next segment's end re-keys it there (one sift down, not a pop and a push).
The engine's loop merges this heap with SimPy's and the FIFO by the same key (a segment end has
SimPy's ``NORMAL`` priority and takes its id from SimPy's counter), so every event fires in the
order it did before.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from typing import Any, Final

import numpy as np
import simpy
from librt.vecs import append, pop, vec
from mypy_extensions import i64
from numpy.typing import NDArray
from simpy.events import NORMAL


def int_vector(values: NDArray[np.integer[Any]]) -> vec[i64]:
    """A flat vector of 64-bit integers holding ``values`` (a 1-D array)."""
    return vec[i64](np.ascontiguousarray(values, dtype=np.int64).data)


def float_vector(values: NDArray[np.floating[Any]]) -> vec[float]:
    """A flat vector of doubles holding ``values`` (a 1-D array)."""
    return vec[float](np.ascontiguousarray(values, dtype=np.float64).data)


SLOT_BITS: Final = 24
"""Low bits of a :class:`WakeHeap` tag that hold the slot (up to 16.7 million replicas)."""
SLOT_MASK: Final = (1 << SLOT_BITS) - 1
MAX_EVENT_ID: Final = 1 << (63 - SLOT_BITS)
"""Event ids a tag can hold (5.5e11: far beyond any run's events)."""


class WakeHeap:
    """A 4-ary min-heap of the replicas' segment ends by ``(time, id)``, re-keyed in place.

    Each replica registers once (:meth:`register`) and gets a slot; the heap holds at most one
    entry per slot, and each slot knows its position, so an entry is pushed, moved or removed in
    O(log n) and the heap never holds a stale entry. The entries live in flat vectors
    (``librt.vecs.vec``, which mypyc compiles to C arrays): its due time in one and a *tag*
    ``id << SLOT_BITS | slot`` in the other, so a level of the heap reads two contiguous arrays
    instead of following a tuple and a float. Ids are unique, so tags order as ids and the
    order is total. Four children per node halve the levels a pop walks (7 for 16,000 entries
    instead of 14), and a node's children are adjacent in memory.

    Attributes:
        times: Due time of the entry at each heap position, s.
        tags: ``event id << SLOT_BITS | slot`` of the entry at each heap position.
        owners: The replica registered at each slot.
    """

    def __init__(self) -> None:
        self.times: vec[float] = vec[float]()
        self.tags: vec[i64] = vec[i64]()
        self.position: vec[i64] = vec[i64]()  # heap position of each slot's entry; -1: none
        self.owners: list[Any] = []

    def register(self, owner: Any) -> i64:
        """A new slot for ``owner`` (no entry pending); returns its index.

        Raises:
            RuntimeError: More slots than a tag holds (``2 ** SLOT_BITS``).
        """
        if len(self.position) >= 1 << SLOT_BITS:
            raise RuntimeError(f"more than {1 << SLOT_BITS:,} replicas in one run")
        self.owners.append(owner)
        self.position = append(self.position, -1)
        return len(self.position) - 1

    def set(self, slot: i64, at_s: float, event_id: i64) -> None:
        """Give ``slot``'s entry the due time ``at_s`` and id ``event_id``: push it, or move it.

        Raises:
            RuntimeError: An id beyond what a tag holds (:data:`MAX_EVENT_ID`).
        """
        if event_id >= MAX_EVENT_ID:
            raise RuntimeError(f"more than {MAX_EVENT_ID:,} events in one run")
        tag = event_id << SLOT_BITS | slot
        index = self.position[slot]
        if index < 0:
            index = len(self.times)
            self.times = append(self.times, at_s)
            self.tags = append(self.tags, tag)
            self._up(index, at_s, tag)
        elif not self._up(index, at_s, tag):
            self._down(index, at_s, tag)

    def top_id(self) -> i64:
        """Event id of the least entry (the heap must not be empty)."""
        return self.tags[0] >> SLOT_BITS

    def comes_first(self, head: tuple[float, int, int, Any] | None) -> bool:
        """Whether the least entry is due before ``head``, a SimPy heap entry (``None``: none).

        By SimPy's key ``(time, priority, id)``; a segment end has ``NORMAL`` priority.
        """
        if not len(self.times):
            return False
        if head is None:
            return True
        at_s = self.times[0]
        head_s = head[0]
        if at_s != head_s:
            return at_s < head_s
        return head[1] > NORMAL or (head[1] == NORMAL and self.top_id() < head[2])

    def pop(self) -> i64:
        """Remove the least entry (the heap must not be empty); returns its slot."""
        top = self.tags[0] & SLOT_MASK
        self._take(0)
        return top

    def remove(self, slot: i64) -> None:
        """Drop ``slot``'s entry if it has one."""
        index = self.position[slot]
        if index >= 0:
            self._take(index)

    def _take(self, index: i64) -> None:
        """Remove the entry at ``index``: the last entry fills the hole and moves to its place."""
        self.position[self.tags[index] & SLOT_MASK] = -1
        self.times, at_s = pop(self.times)
        self.tags, tag = pop(self.tags)
        if index < len(self.times) and not self._up(index, at_s, tag):
            self._down(index, at_s, tag)

    def _up(self, index: i64, at_s: float, tag: i64) -> bool:
        """Put the entry at ``index`` or above it, past larger parents; whether it moved up.

        The hole at ``index`` is filled either way.
        """
        times, tags, position = self.times, self.tags, self.position
        start = index
        while index > 0:
            parent = (index - 1) >> 2
            parent_s = times[parent]
            if parent_s < at_s or (parent_s == at_s and tags[parent] < tag):
                break
            times[index] = parent_s
            moved = tags[parent]
            tags[index] = moved
            position[moved & SLOT_MASK] = index
            index = parent
        times[index] = at_s
        tags[index] = tag
        position[tag & SLOT_MASK] = index
        return index != start

    def _down(self, index: i64, at_s: float, tag: i64) -> None:
        """Put the entry at ``index`` or below it, past smaller children."""
        times, tags, position = self.times, self.tags, self.position
        size = len(times)
        first = 4 * index + 1
        while first < size:
            # The least of up to four children (adjacent, so one or two cache lines).
            child = first
            child_s = times[first]
            last = first + 4 if first + 4 < size else size
            for other in range(first + 1, last):
                other_s = times[other]
                if other_s < child_s or (other_s == child_s and tags[other] < tags[child]):
                    child = other
                    child_s = other_s
            if at_s < child_s or (at_s == child_s and tag < tags[child]):
                break
            times[index] = child_s
            moved = tags[child]
            tags[index] = moved
            position[moved & SLOT_MASK] = index
            index = child
            first = 4 * index + 1
        times[index] = at_s
        tags[index] = tag
        position[tag & SLOT_MASK] = index


class EventQueue:
    """SimPy's event heap and clock, for direct pushes (:meth:`schedule`) and pops (the engine).

    Args:
        env: The environment whose heap this is.

    Raises:
        RuntimeError: A SimPy without the heap, id counter and clock described above.
    """

    def __init__(self, env: simpy.Environment) -> None:
        heap = getattr(env, "_queue", None)
        ids = getattr(env, "_eid", None)
        if not isinstance(heap, list) or ids is None or not hasattr(env, "_now"):
            raise RuntimeError(
                f"simpy {simpy.__version__} has no Environment._queue/_eid/_now, which planner's "
                "engine drives directly (planner.sim.clock); install simpy>=4.1,<5"
            )
        self.env = env
        self.heap: list[tuple[float, int, int, Any]] = heap
        self.ids: Iterator[int] = ids
        self.soon: deque[tuple[float, int, int, Any]] = deque()
        self.wakes = WakeHeap()
        # The clock's time, s, kept beside SimPy's by the engine's loop: ``env.now`` is a Python
        # property, a frame and two dict look-ups per read, and the engine reads it ~6 times a
        # call.
        self.now: float = float(env.now)

    def schedule(self, slot: i64, delay_s: float) -> i64:
        """Set ``slot``'s wake-up ``delay_s`` seconds (``>= 0``) from now, ordered as a timeout.

        A wake-up the slot already had is replaced (its entry is re-keyed in :attr:`wakes`).

        Returns:
            The wake-up's event id, which the engine's loop hands back to the slot's owner.
        """
        event_id: i64 = next(self.ids)
        self.wakes.set(slot, self.now + delay_s, event_id)
        return event_id

    def cancel(self, slot: i64) -> None:
        """Drop ``slot``'s pending wake-up, if it has one."""
        self.wakes.remove(slot)

    def schedule_now(self, target: Any) -> int:
        """Wake ``target`` at the current time, after what is already due now (the FIFO).

        Returns:
            The wake-up's event id, as :meth:`schedule`'s.
        """
        event_id = next(self.ids)
        self.soon.append((self.now, NORMAL, event_id, target))
        return event_id

    def flush_soon(self) -> None:
        """Move the FIFO's wake-ups into SimPy's heap (same keys) before SimPy runs on its own.

        SimPy then runs only to a time limit earlier than every pending entry, so it never steps
        a replica's entry (which has no callbacks).
        """
        while self.soon:
            heapq.heappush(self.heap, self.soon.popleft())
