"""The flat decode heap is heapq, record for record (planner.sim.decode_heap).

The replica relies on it: a failed replica hands its decoding calls back in heap order, so the
records must sit where heapq's tuples would.
"""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st
from librt.vecs import vec
from mypy_extensions import i64

from planner.sim import decode_heap

# Operations: ("push", finish step) or ("pop",) or ("remove", which): calls are unique.
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 40)),
        st.tuples(st.just("pop"), st.just(0)),
        st.tuples(st.just("remove"), st.integers(0, 1000)),
    ),
    max_size=120,
)


def _records(heap: vec[i64]) -> list[tuple[int, int, int]]:
    fields = decode_heap.FIELDS
    return [
        (
            heap[i + decode_heap.FINISH_STEP],
            heap[i + decode_heap.CALL],
            heap[i + decode_heap.OFFSET],
        )
        for i in range(0, len(heap), fields)
    ]


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_flat_heap_matches_heapq_position_for_position(operations: list[tuple[str, int]]) -> None:
    reference: list[tuple[int, int, int]] = []
    joined: list[int] = []  # reference join order (calls)
    heap = vec[i64]()
    next_call = 0
    for name, value in operations:
        if name == "push":
            call, offset = next_call, 7 * next_call + 1
            next_call += 1
            heapq.heappush(reference, (value, call, offset))
            joined.append(call)
            heap = decode_heap.push(heap, value, call, offset, -call, call)  # joined: a counter
        elif name == "pop" and reference:
            expected = heapq.heappop(reference)
            assert (heap[0], heap[decode_heap.CALL], heap[decode_heap.OFFSET]) == expected
            assert heap[decode_heap.CHARGED] == -expected[1]
            joined.remove(expected[1])
            heap = decode_heap.pop_least(heap)
        elif name == "remove" and reference:
            # The replica's preemption: the newest record goes, as it did with heapq.
            newest_call = joined.pop()
            index = next(i for i, entry in enumerate(reference) if entry[1] == newest_call)
            reference[index] = reference[-1]
            reference.pop()
            heapq.heapify(reference)
            position = decode_heap.newest(heap)
            assert heap[position * decode_heap.FIELDS + decode_heap.CALL] == newest_call
            heap = decode_heap.remove_at(heap, position)
        assert _records(heap) == reference
        assert decode_heap.calls(heap) == [call for _, call, _ in reference]
