"""SimPy's event heap as the compiled engine drives it: light events, pushed and stepped directly.

SimPy 4's ``Environment`` keeps its pending events in a binary heap of ``(time, priority, id,
event)`` entries (``env._queue``, ids from ``env._eid``) and its clock in ``env._now``;
``Environment.step`` pops the least entry, sets the clock and calls the event's callbacks. The
engine's hot path does exactly that itself (``planner.sim.engine._run``) and schedules a
replica's segment ends as :class:`Wakeup` entries through :class:`EventQueue`, which saves a
``simpy.Timeout`` (a Python constructor) and two Python-level calls per event (measured: a
1000x run 12.6 s -> 12.1 s; the 1x reference run within its noise). The order of events is
SimPy's own (same keys, same id counter), so results are those of ``env.timeout``. This module
is the only one that touches SimPy's private state; pyproject pins simpy below 5, and
:class:`EventQueue` refuses a SimPy without it.

Zero-delay wake-ups (a replica re-planning at the current instant) skip the heap: they wait in
a FIFO (:meth:`EventQueue.schedule_now`) that the engine's loop merges with the heap by the same
``(time, priority, id)`` key, so they fire in SimPy's order at O(1) instead of two O(log n) heap
operations on a heap of one entry per busy replica (16,000 at 1000x). Only the engine's loop
steps them: :meth:`EventQueue.flush_soon` moves them into the heap before SimPy steps on its own.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import simpy
from simpy.events import NORMAL


class Wakeup:
    """A callback at a simulated time: what ``Environment.step`` reads of an event.

    The step reads ``callbacks`` (setting it to ``None`` as it fires) and ``_ok``.
    """

    def __init__(self, callback: Callable[[Wakeup], None]) -> None:
        self.callbacks: list[Callable[[Wakeup], None]] | None = [callback]
        self._ok = True


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

    def schedule(self, event: Wakeup, delay_s: float) -> None:
        """Fire ``event`` after ``delay_s`` seconds (``>= 0``), ordered as ``env.timeout``."""
        heapq.heappush(self.heap, (self.env._now + delay_s, NORMAL, next(self.ids), event))

    def schedule_now(self, event: Wakeup) -> None:
        """Fire ``event`` at the current time, after what is already due now (the FIFO)."""
        self.soon.append((self.env._now, NORMAL, next(self.ids), event))

    def flush_soon(self) -> None:
        """Move the FIFO's wake-ups into SimPy's heap (same keys), for SimPy to step them."""
        while self.soon:
            heapq.heappush(self.heap, self.soon.popleft())
