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

Zero-delay wake-ups (a replica re-planning at the current instant) skip the heap: they wait in
a FIFO (:meth:`EventQueue.schedule_now`) that the engine's loop merges with the heap by the same
``(time, priority, id)`` key, so they fire in SimPy's order at O(1) instead of two O(log n) heap
operations on a heap of one entry per busy replica (16,000 at 1000x). Only the engine's loop
steps replica entries: SimPy itself runs only to a time limit, after every pending entry's time
(:meth:`EventQueue.flush_soon` moves the FIFO into the heap before it does).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from typing import Any

import simpy
from simpy.events import NORMAL


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

    def schedule(self, target: Any, delay_s: float) -> int:
        """Wake ``target`` after ``delay_s`` seconds (``>= 0``), ordered as ``env.timeout``.

        Returns:
            The wake-up's event id, which the engine's loop hands back to ``target.fire``.
        """
        event_id = next(self.ids)
        heapq.heappush(self.heap, (self.env._now + delay_s, NORMAL, event_id, target))
        return event_id

    def schedule_now(self, target: Any) -> int:
        """Wake ``target`` at the current time, after what is already due now (the FIFO).

        Returns:
            The wake-up's event id, as :meth:`schedule`'s.
        """
        event_id = next(self.ids)
        self.soon.append((self.env._now, NORMAL, event_id, target))
        return event_id

    def flush_soon(self) -> None:
        """Move the FIFO's wake-ups into SimPy's heap (same keys) before SimPy runs on its own.

        SimPy then runs only to a time limit earlier than every pending entry, so it never steps
        a replica's entry (which has no callbacks).
        """
        while self.soon:
            heapq.heappush(self.heap, self.soon.popleft())
