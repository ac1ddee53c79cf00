"""Closed-loop runs bounded by a horizon: keep only the requests the users actually sent.

A closed loop's request count is not known before the run when only a horizon bounds it: the
engine draws a generous number of requests up front and the users start as many as the service
lets them before the horizon. The ones never started are not part of the workload, so
:func:`trim_unstarted` cuts them from the result (requests are numbered in start order and
their calls come last in the call arrays, so this is a prefix cut; they held no simulator state).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import numpy as np

from planner.sim.results import SimulationResult
from planner.workload.tree_factory import TreeBatch


def first_trees(batch: TreeBatch, n_trees: int) -> TreeBatch:
    """The batch's first ``n_trees`` trees (a prefix of every flat array).

    Raises:
        ValueError: ``n_trees`` is negative or more than the batch holds.
    """
    if not 0 <= n_trees <= batch.n_trees:
        raise ValueError(f"n_trees must be in [0, {batch.n_trees}], got {n_trees}")
    calls = int(batch.node_offsets[n_trees])
    edges = int(batch.edge_offsets[n_trees])
    return TreeBatch(
        tree_shape=batch.tree_shape[:n_trees],
        prefix_group=batch.prefix_group[:n_trees],
        node_offsets=batch.node_offsets[: n_trees + 1],
        kind=batch.kind[:calls],
        input_tokens=batch.input_tokens[:calls],
        output_tokens=batch.output_tokens[:calls],
        shared_prefix_tokens=batch.shared_prefix_tokens[:calls],
        delay_before_s=batch.delay_before_s[:calls],
        edge_offsets=batch.edge_offsets[: n_trees + 1],
        edge_src=batch.edge_src[:edges],
        edge_dst=batch.edge_dst[:edges],
    )


_Array = TypeVar("_Array", bound=np.ndarray)


def _cut(array: _Array | None, calls: int) -> _Array | None:
    return None if array is None else array[:calls]  # type: ignore[return-value]


def trim_unstarted(result: SimulationResult) -> SimulationResult:
    """``result`` without the trees that never started (their calls were all ``tree_pending``).

    Raises:
        ValueError: A trimmed call is counted anywhere but ``tree_pending`` (it would be lost).
    """
    started = result.trees_started
    trees = result.trees
    if started < 0 or started >= trees.n_trees:
        return result
    calls = int(trees.node_offsets[started])
    dropped = trees.n_calls - calls
    census = dict(result.census)
    if census.get("tree_pending", 0) != dropped:
        raise ValueError(f"{dropped} unstarted calls but census {census}")
    census["tree_pending"] = 0

    return replace(
        result,
        trees=first_trees(trees, started),
        tree_arrival_s=result.tree_arrival_s[:started],
        tree_finish_s=result.tree_finish_s[:started],
        call_tree=result.call_tree[:calls],
        ready_s=result.ready_s[:calls],
        admit_s=result.admit_s[:calls],
        first_token_s=result.first_token_s[:calls],
        finish_s=result.finish_s[:calls],
        cached_tokens=result.cached_tokens[:calls],
        prefill_replica=result.prefill_replica[:calls],
        decode_replica=result.decode_replica[:calls],
        failed=_cut(result.failed, calls),
        retries=_cut(result.retries, calls),
        fail_s=_cut(result.fail_s, calls),
        fail_reason=_cut(result.fail_reason, calls),
        kv_landed_s=_cut(result.kv_landed_s, calls),
        census=census,
    )
