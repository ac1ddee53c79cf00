"""One replica's decoding sequences as a binary heap in a flat vector of integers.

A replica finishes its decoding sequences in order of the step at which each produces its last
token. They used to be ``(finish step, call, offset)`` tuples in a :mod:`heapq` list, and the
charged context of each in a dict by call; on a fleet of thousands of replicas every one of
those tuples, ints and dict entries is a separate object that is cold by the time its sequence
finishes. Here each sequence is one record of :data:`FIELDS` integers, packed one after the
other in a ``librt.vecs.vec[i64]`` (which mypyc compiles to a C array): a heap operation reads
and moves plain integers within one buffer, and nothing is allocated or freed per sequence.

The heap is ordered by ``(finish step, call)`` (calls are unique, so the order is total), and
its operations are :mod:`heapq`'s own algorithms (``heappush``, ``heappop``, ``heapify``)
step for step, so the records sit in the same positions as the tuples did: a replica that
fails hands its calls back in the same order, and results are bit-equal.

Record fields (offsets within a record): :data:`FINISH_STEP` (the replica step at which the
sequence produces its last token), :data:`CALL`, :data:`OFFSET` (context tokens = offset +
step), :data:`CHARGED` (paged KV: charged tokens = charged + step, the prefix-cache hit
excluded) and :data:`JOINED` (the replica's join counter when it joined: the newest sequence
is the one preempted first).
"""

from __future__ import annotations

from typing import Final

from librt.vecs import append, pop, vec
from mypy_extensions import i64

FIELDS: Final = 5
"""Integers per record."""
FINISH_STEP: Final = 0
CALL: Final = 1
OFFSET: Final = 2
CHARGED: Final = 3
JOINED: Final = 4


def _less(heap: vec[i64], a: i64, b: i64) -> bool:
    """Whether the record at ``a`` (an index into ``heap``) orders before the one at ``b``."""
    step_a, step_b = heap[a], heap[b]
    return step_a < step_b or (step_a == step_b and heap[a + CALL] < heap[b + CALL])


def _copy(heap: vec[i64], target: i64, source: i64) -> None:
    """Copy the record at ``source`` over the one at ``target`` (indices into ``heap``)."""
    for field in range(FIELDS):
        heap[target + field] = heap[source + field]


def _sift_down(
    heap: vec[i64],
    start: i64,
    position: i64,
    step: i64,
    call: i64,
    offset: i64,
    charged: i64,
    joined: i64,
) -> None:
    """``heapq._siftdown``: put the record given by its fields at ``position`` or above it."""
    while position > start:
        parent = (position - 1) >> 1
        parent_step = heap[parent * FIELDS]
        if not (
            step < parent_step or (step == parent_step and call < heap[parent * FIELDS + CALL])
        ):
            break
        _copy(heap, position * FIELDS, parent * FIELDS)
        position = parent
    index = position * FIELDS
    heap[index] = step
    heap[index + CALL] = call
    heap[index + OFFSET] = offset
    heap[index + CHARGED] = charged
    heap[index + JOINED] = joined


def _sift_up(heap: vec[i64], position: i64) -> None:
    """``heapq._siftup``: move the record at ``position`` to a leaf by smaller children, then up."""
    end = len(heap) // FIELDS
    start = position
    index = position * FIELDS
    step, call, offset = heap[index], heap[index + CALL], heap[index + OFFSET]
    charged, joined = heap[index + CHARGED], heap[index + JOINED]
    child = 2 * position + 1
    while child < end:
        right = child + 1
        if right < end and not _less(heap, child * FIELDS, right * FIELDS):
            child = right
        _copy(heap, position * FIELDS, child * FIELDS)
        position = child
        child = 2 * position + 1
    _sift_down(heap, start, position, step, call, offset, charged, joined)


def push(
    heap: vec[i64], finish_step: i64, call: i64, offset: i64, charged: i64, joined: i64
) -> vec[i64]:
    """``heapq.heappush`` of one record; returns the heap (reassign it: vectors grow by value)."""
    for _ in range(FIELDS):
        heap = append(heap, 0)
    _sift_down(heap, 0, len(heap) // FIELDS - 1, finish_step, call, offset, charged, joined)
    return heap


def _drop_last(heap: vec[i64]) -> vec[i64]:
    """The heap without its last record."""
    for _ in range(FIELDS):
        heap, _value = pop(heap)
    return heap


def pop_least(heap: vec[i64]) -> vec[i64]:
    """``heapq.heappop`` without the value: read the least record (index 0) first."""
    last = len(heap) - FIELDS
    if last > 0:
        _copy(heap, 0, last)
    heap = _drop_last(heap)
    if len(heap):
        _sift_up(heap, 0)
    return heap


def remove_at(heap: vec[i64], position: i64) -> vec[i64]:
    """Drop record ``position``: the last record takes its place, then ``heapq.heapify``.

    As the replica's preemption always did it (``heap[i] = heap[-1]; heap.pop(); heapify``).
    """
    last = len(heap) - FIELDS
    if position * FIELDS != last:
        _copy(heap, position * FIELDS, last)
    heap = _drop_last(heap)
    for index in range(len(heap) // FIELDS // 2 - 1, -1, -1):
        _sift_up(heap, index)
    return heap


def calls(heap: vec[i64]) -> list[int]:
    """The records' calls, in heap order."""
    return [heap[index + CALL] for index in range(0, len(heap), FIELDS)]


def newest(heap: vec[i64]) -> i64:
    """The record (its position) that joined last; the heap must not be empty."""
    best = 0
    for position in range(1, len(heap) // FIELDS):
        if heap[position * FIELDS + JOINED] > heap[best * FIELDS + JOINED]:
            best = position
    return best
