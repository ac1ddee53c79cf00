"""Routing strategies: which replica of a pool a ready call goes to, in O(1) or O(log R).

Every router implements :class:`Router`: ``choose(call)`` returns a live replica (``None`` when
every replica is down) and ``on_change(replica)`` is told whenever a replica's load
(``outstanding``: calls waiting on it, prefilling or decoding) or liveness changes, so that it
can keep its own index instead of scanning the pool per call:

* ``round_robin``: the next live replica in index order (O(1));
* ``least_outstanding``: the live replica with the fewest outstanding calls, lowest index on a
  tie (a lazy-deletion heap of ``(load, index)``: O(log R) amortized);
* ``power_of_two``: the less loaded of two live replicas drawn at random (Mitzenmacher's
  power of two choices; O(1));
* ``prefix_affinity``: consistent hashing of the call's prefix group with bounded loads
  (Mirrokni, Thorup & Zadimoghaddam 2018): the group hashes to a point on a ring of virtual
  nodes and takes the first live replica clockwise whose load stays within ``LOAD_BOUND`` times
  the pool's mean, so a tree's calls share one replica's prefix cache unless it is overloaded;
* ``central_queue``: calls wait in one pool FIFO and replicas take the head when they have room.
  On a submit the router names ONE replica to wake: the least loaded live one (an idle replica
  if there is one); replicas with room that are not woken take from the queue at the end of
  their current segment.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from librt.vecs import append, pop, vec
from mypy_extensions import i64

LOAD_BOUND = 2.0
"""[A] Bounded-load factor of ``prefix_affinity``: a replica takes a call while its load stays
within twice the pool's mean (the factor the earlier affinity router used)."""

VIRTUAL_NODES = 16
"""[A] Points per replica on the consistent-hash ring (spreads groups evenly at small R)."""

_MASK64 = (1 << 64) - 1


class RoutedReplica(Protocol):
    """What a router reads from a replica."""

    index: int
    outstanding: int
    down: bool


class Router(Protocol):
    """A routing strategy (see the module docstring)."""

    def choose(self, call: int) -> RoutedReplica | None:
        """The replica ``call`` goes to (``None``: every replica is down)."""
        ...

    def on_change(self, replica: RoutedReplica) -> None:
        """``replica``'s load or liveness changed."""
        ...


def _mix64(value: int) -> int:
    """SplitMix64 finalizer: a fixed, well-spread 64-bit hash of an integer (no process salt)."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class _LiveList:
    """The live replicas' indices in ascending order (changes only on failures and repairs)."""

    def __init__(self, replicas: Sequence[RoutedReplica]) -> None:
        """Index ``replicas`` (see the class docstring)."""
        self.replicas = replicas
        self.live: list[int] = [r.index for r in replicas if not r.down]
        self.is_live: list[bool] = [not r.down for r in replicas]

    def update(self, replica: RoutedReplica) -> bool:
        """Track ``replica``'s liveness; returns whether it changed."""
        alive = not replica.down
        if alive == self.is_live[replica.index]:
            return False
        self.is_live[replica.index] = alive
        if alive:
            insort(self.live, replica.index)
        else:
            del self.live[bisect_left(self.live, replica.index)]
        return True


class RoundRobin:
    """The next live replica in index order."""

    def __init__(self, replicas: Sequence[RoutedReplica], **_: object) -> None:
        """Index ``replicas`` (see the class docstring)."""
        self._live = _LiveList(replicas)
        self._next = 0

    def choose(self, call: int) -> RoutedReplica | None:
        """The replica for ``call`` (see the class docstring); ``None``: all are down."""
        live = self._live.live
        if not live:
            return None
        self._next = (self._next + 1) % len(live)
        return self._live.replicas[live[self._next]]

    def on_change(self, replica: RoutedReplica) -> None:
        """Update the index after ``replica``'s load or liveness changed."""
        self._live.update(replica)


class KeyHeap:
    """A 4-ary min-heap of integer keys, one entry per slot, re-keyed in place.

    Slots are ``0 .. n - 1``; each knows its position, so a slot's key is set, moved or removed
    in O(log n) and no stale entry is ever left behind. Keys, slots and positions live in flat
    vectors of unboxed integers (``librt.vecs.vec``), so a heap operation on a fleet of
    thousands of replicas touches a few cache lines, not one tuple and two ints per level.
    """

    def __init__(self, slots: int) -> None:
        """An empty heap over ``slots`` slots."""
        self.keys: vec[i64] = vec[i64]()
        self.slots: vec[i64] = vec[i64]()
        self.position: vec[i64] = vec[i64]([-1] * slots)

    def set(self, slot: i64, key: i64) -> None:
        """Give ``slot`` the key ``key``: insert it, or move it."""
        index = self.position[slot]
        if index < 0:
            index = len(self.keys)
            self.keys = append(self.keys, key)
            self.slots = append(self.slots, slot)
            self._up(index, key, slot)
        elif not self._up(index, key, slot):
            self._down(index, key, slot)

    def remove(self, slot: i64) -> None:
        """Drop ``slot``'s entry if it has one."""
        index = self.position[slot]
        if index < 0:
            return
        self.position[slot] = -1
        self.keys, key = pop(self.keys)
        self.slots, moved = pop(self.slots)
        if index < len(self.keys) and not self._up(index, key, moved):
            self._down(index, key, moved)

    def _up(self, index: i64, key: i64, slot: i64) -> bool:
        """Put ``key`` at ``index`` or above it; whether it moved up (fills the hole either way)."""
        keys, slots, position = self.keys, self.slots, self.position
        start = index
        while index > 0:
            parent = (index - 1) >> 2
            parent_key = keys[parent]
            if parent_key < key:
                break
            keys[index] = parent_key
            moved = slots[parent]
            slots[index] = moved
            position[moved] = index
            index = parent
        keys[index] = key
        slots[index] = slot
        position[slot] = index
        return index != start

    def _down(self, index: i64, key: i64, slot: i64) -> None:
        """Put ``key`` at ``index`` or below it, past smaller children."""
        keys, slots, position = self.keys, self.slots, self.position
        size = len(keys)
        first = 4 * index + 1
        while first < size:
            child = first
            child_key = keys[first]
            last = first + 4 if first + 4 < size else size
            for other in range(first + 1, last):
                if keys[other] < child_key:
                    child = other
                    child_key = keys[other]
            if key < child_key:
                break
            keys[index] = child_key
            moved = slots[child]
            slots[index] = moved
            position[moved] = index
            index = child
            first = 4 * index + 1
        keys[index] = key
        slots[index] = slot
        position[slot] = index


class LeastOutstanding:
    """The live replica with the fewest outstanding calls (lowest index on a tie).

    A :class:`KeyHeap` over the live replicas keyed by ``load x R + index`` (R replicas), which
    orders as ``(load, index)``: a load change re-keys the replica's entry, a failure removes
    it and a repair puts it back, so the top is always the answer, in O(log R) per change.
    """

    def __init__(self, replicas: Sequence[RoutedReplica], **_: object) -> None:
        """Index ``replicas`` (see the class docstring)."""
        self.replicas = replicas
        self._count = len(replicas)
        self._heap = KeyHeap(len(replicas))
        for replica in replicas:
            self.on_change(replica)

    def choose(self, call: int) -> RoutedReplica | None:
        """The replica for ``call`` (see the class docstring); ``None``: all are down."""
        heap = self._heap
        if not len(heap.slots):
            return None
        return self.replicas[heap.slots[0]]

    def on_change(self, replica: RoutedReplica) -> None:
        """Update the index after ``replica``'s load or liveness changed."""
        if replica.down:
            self._heap.remove(replica.index)
        else:
            self._heap.set(replica.index, replica.outstanding * self._count + replica.index)


class PowerOfTwo:
    """The less loaded of two distinct live replicas drawn uniformly (the first on a tie)."""

    DRAW_BLOCK = 4096

    def __init__(
        self, replicas: Sequence[RoutedReplica], *, rng: np.random.Generator, **_: object
    ) -> None:
        """Index ``replicas`` (see the class docstring)."""
        self._live = _LiveList(replicas)
        self._rng = rng
        self._draws: list[float] = []

    def _uniform(self) -> float:
        if not self._draws:
            self._draws = self._rng.random(self.DRAW_BLOCK).tolist()
        return self._draws.pop()

    def choose(self, call: int) -> RoutedReplica | None:
        """The replica for ``call`` (see the class docstring); ``None``: all are down."""
        live, replicas = self._live.live, self._live.replicas
        n = len(live)
        if n <= 1:
            return replicas[live[0]] if n else None
        first = int(self._uniform() * n)
        second = int(self._uniform() * (n - 1))
        if second >= first:
            second += 1  # distinct: uniform over the other n - 1
        a, b = replicas[live[first]], replicas[live[second]]
        return b if b.outstanding < a.outstanding else a

    def on_change(self, replica: RoutedReplica) -> None:
        """Update the index after ``replica``'s load or liveness changed."""
        self._live.update(replica)


class PrefixAffinity:
    """Consistent hashing of prefix groups with bounded loads (see the module docstring)."""

    def __init__(
        self, replicas: Sequence[RoutedReplica], *, prefix_group: vec[i64], **_: object
    ) -> None:
        """Index ``replicas`` (see the class docstring)."""
        self.replicas = replicas
        self.prefix_group = prefix_group
        points = sorted(
            (_mix64((r.index << 8) | v), r.index) for r in replicas for v in range(VIRTUAL_NODES)
        )
        self._ring_keys = [p for p, _ in points]
        self._ring_owner = [i for _, i in points]
        self._load = [r.outstanding for r in replicas]
        self._live = [not r.down for r in replicas]
        self._total = sum(self._load)
        self._n_live = sum(self._live)

    def choose(self, call: int) -> RoutedReplica | None:
        """The replica for ``call`` (see the class docstring); ``None``: all are down."""
        if self._n_live == 0:
            return None
        # A replica may take the call if its load after it stays within the bound; the ceiling
        # keeps the least loaded live replica always eligible.
        cap = math.ceil(LOAD_BOUND * (self._total + 1) / self._n_live)
        keys, owners = self._ring_keys, self._ring_owner
        position = bisect_left(keys, _mix64(self.prefix_group[call]))
        size = len(keys)
        for step in range(size):
            index = owners[(position + step) % size]
            if self._live[index] and self._load[index] + 1 <= cap:
                return self.replicas[index]
        raise AssertionError("bounded load: some live replica is always at or below the mean")

    def on_change(self, replica: RoutedReplica) -> None:
        """Update the index after ``replica``'s load or liveness changed."""
        index = replica.index
        alive = not replica.down
        load = replica.outstanding if alive else 0
        if self._live[index] != alive:
            self._n_live += 1 if alive else -1
            self._live[index] = alive
        self._total += load - self._load[index]
        self._load[index] = load


class CentralQueue(LeastOutstanding):
    """One pool FIFO: ``choose`` names the single replica to wake (the least loaded live one)."""


ROUTERS: dict[str, Callable[..., Router]] = {
    "round_robin": RoundRobin,
    "least_outstanding": LeastOutstanding,
    "power_of_two": PowerOfTwo,
    "prefix_affinity": PrefixAffinity,
    "central_queue": CentralQueue,
}
"""The registry: router name (``fleet.router``) -> strategy class."""


def make_router(
    name: str,
    replicas: Sequence[RoutedReplica],
    *,
    rng: np.random.Generator,
    prefix_group: vec[i64],
) -> Router:
    """Build the router ``name`` over ``replicas`` (``rng`` for randomized strategies)."""
    return ROUTERS[name](replicas, rng=rng, prefix_group=prefix_group)
