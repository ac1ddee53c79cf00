"""Merging the results of a region's cells into the region's result, exactly.

Each cell's per-call and per-tree arrays are scattered back to the region's call and tree ids
(the region drew the trees once, :mod:`planner.app.cells`), so the merged result has the same
layout as a run of one fleet and :func:`planner.sim.metrics.summarize` computes every figure
from the merged tables: percentiles of the merged per-call table, never averages of the cells'.
The rest combines by definition:

* replica ids become region ids (cell ``k``'s replica ``i`` is the region's
  ``i + replicas of cells 0..k-1``), so the per-call table names one replica once;
* pools: replicas, accelerators, busy and batch time per replica (concatenated), tokens,
  down time and failures add up; the busy timelines (bins from t = 0 of the same width in every
  cell, coarsened pairwise by each cell as the run grows) are coarsened to the widest and added;
  racks are the region's; a pool gave up at the first cell's give-up;
* the census adds up place by place and is checked to account for every call of the region;
* the clock: the region's time is the latest cell's (a cell that drained earlier idles to the
  end, which is how a busy fraction over the region's time counts it); the stop reason is the
  worst cell's (``stalled`` > ``wall_clock`` > ``max_sim_time`` > ``drained``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner.sim.config import FleetSpec
from planner.sim.engine import DrawnWorkload
from planner.sim.results import CENSUS_PLACES, PoolStats, SimulationResult

STOP_SEVERITY = ("drained", "max_sim_time", "wall_clock", "stalled")
"""Stop reasons from the mildest to the worst: a region stops for its worst cell's reason."""


def _severity(stop_reason: str) -> int:
    """Rank of a stop reason in :data:`STOP_SEVERITY` (one it does not know ranks worst)."""
    known = STOP_SEVERITY.index(stop_reason) if stop_reason in STOP_SEVERITY else None
    return len(STOP_SEVERITY) if known is None else known


def _scatter(
    size: int,
    index: Sequence[NDArray[np.int64]],
    parts: Sequence[NDArray[Any]],
    fill: float | int | bool,
    dtype: type[Any] | np.dtype[Any],
) -> NDArray[Any]:
    """One array of ``size`` with ``parts[k]`` at positions ``index[k]`` (the rest ``fill``)."""
    out = np.full(size, fill, dtype=dtype)
    for where, values in zip(index, parts, strict=True):
        out[where] = values
    return out


def coarsen_timeline(
    timeline: NDArray[np.float64], bin_s: float, to_bin_s: float
) -> NDArray[np.float64]:
    """A busy timeline of width ``bin_s`` re-binned to ``to_bin_s`` (``bin_s`` x a power of 2).

    Adjacent bins merge pairwise, as the pool does while it runs (the length stays the same, the
    tail fills with zeros), so the result is what the cell would have recorded at that width.

    Raises:
        ValueError: ``to_bin_s`` is not ``bin_s`` times a power of two.
    """
    out = np.asarray(timeline, dtype=np.float64)
    width = bin_s
    while width < to_bin_s * (1 - 1e-9):
        pairs = out[: out.size - out.size % 2].reshape(-1, 2).sum(axis=1)
        if out.size % 2:
            pairs = np.append(pairs, out[-1])
        out = np.concatenate([pairs, np.zeros(out.size - pairs.size)])
        width *= 2.0
    if abs(width - to_bin_s) > 1e-9 * to_bin_s:
        raise ValueError(f"timeline bins of {bin_s} s do not coarsen to {to_bin_s} s")
    return out


def merge_pool(stats: Sequence[PoolStats], racks: int, n_cells: int) -> PoolStats:
    """One pool's totals over the cells (module docstring); ``racks`` are the region's."""
    first = stats[0]
    bin_s = max(s.timeline_bin_s for s in stats)
    timeline = coarsen_timeline(first.busy_timeline_s, first.timeline_bin_s, bin_s)
    for s in stats[1:]:
        timeline = timeline + coarsen_timeline(s.busy_timeline_s, s.timeline_bin_s, bin_s)
    gave_up = [
        (s.gave_up_s, k, s.give_up_reason) for k, s in enumerate(stats) if s.gave_up_s is not None
    ]
    gave_up_s: float | None = None
    reason = ""
    if gave_up:
        gave_up_s, cell, why = min(gave_up)
        others = f" ({len(gave_up)} of {n_cells} cells gave up)" if len(gave_up) > 1 else ""
        reason = why if n_cells == 1 else f"cell {cell} of {n_cells}: {why}{others}"
    combined: dict[str, Any] = dict(
        replicas=sum(s.replicas for s in stats),
        accelerators=sum(s.accelerators for s in stats),
        racks=racks,
        busy_s=np.concatenate([s.busy_s for s in stats]),
        batch_s=np.concatenate([s.batch_s for s in stats]),
        decode_tokens=sum(s.decode_tokens for s in stats),
        prefill_tokens=sum((s.prefill_tokens for s in stats[1:]), first.prefill_tokens),
        busy_timeline_s=timeline,
        timeline_bin_s=bin_s,
        down_s=sum((s.down_s for s in stats[1:]), first.down_s),
        failures=sum(s.failures for s in stats),
        preemptions=sum(s.preemptions for s in stats),
        gave_up_s=gave_up_s,
        give_up_reason=reason,
    )
    # Every other field describes the pool, not its run: equal in every cell. A field added to
    # PoolStats that differs between cells stops the merge here instead of being dropped.
    for name in (f.name for f in fields(PoolStats) if f.name not in combined):
        values = [getattr(s, name) for s in stats]
        if any(not np.array_equal(v, values[0]) for v in values[1:]):
            raise RuntimeError(
                f"PoolStats.{name} differs between cells and merge_pool does not combine it"
            )
    return replace(first, **combined)


def merge_census(censuses: Sequence[dict[str, int]], n_calls: int) -> dict[str, int]:
    """The cells' censuses added place by place, checked to account for the region's calls.

    Raises:
        RuntimeError: The places do not add up to ``n_calls`` although no cell reported a
            call lost or double counted (the merge lost or duplicated a call).
    """
    keys = list(
        dict.fromkeys(
            [*CENSUS_PLACES, "unaccounted", "double_counted", *(key for c in censuses for key in c)]
        )
    )
    total = {key: sum(c.get(key, 0) for c in censuses) for key in keys}
    placed = sum(total[p] for p in CENSUS_PLACES)
    if total["unaccounted"] == 0 and total["double_counted"] == 0 and placed != n_calls:
        raise RuntimeError(f"the cells' census places {placed} calls of the region's {n_calls}")
    return total


def _replica_ids(
    results: Sequence[SimulationResult], pool: str, field: str
) -> list[NDArray[np.int64]]:
    """Per cell, its calls' replica ids of ``pool`` (``field``) as region ids (-1 stays -1)."""
    out = []
    offset = 0
    for result in results:
        ids = getattr(result, field)
        out.append(np.where(ids >= 0, ids + offset, ids))
        offset += next(p.replicas for p in result.pools if p.name == pool)
    return out


def merge_cells(
    cells_info: dict[str, Any],
    fleet: FleetSpec,
    drawn: DrawnWorkload,
    cell_trees: Sequence[NDArray[np.int64]],
    results: Sequence[SimulationResult],
    *,
    seed: int,
    wall_start_s: float,
) -> SimulationResult:
    """The region's result from its cells' results.

    Args:
        cells_info: The split (``cells`` of the summary); each cell's own figures are added.
        fleet: The region's fleet (its racks are reported).
        drawn: The region's trees and arrival times.
        cell_trees: Per cell, the region ids of its trees (ascending).
        results: Per cell, its result (its trees in the order of ``cell_trees``).
        seed: The region's seed.
        wall_start_s: ``time.perf_counter()`` when the region's run began.
    """
    trees = drawn.trees
    n_calls, n_trees = trees.n_calls, trees.n_trees
    tree_cell = np.zeros(n_trees, dtype=np.int64)
    for k, ids in enumerate(cell_trees):
        tree_cell[ids] = k
    call_cell = tree_cell[trees.node_tree()]
    cell_calls = [np.flatnonzero(call_cell == k) for k in range(len(results))]
    for k, result in enumerate(results):
        if result.trees.n_calls != cell_calls[k].size:
            raise RuntimeError(
                f"cell {k} returned {result.trees.n_calls} calls, not {cell_calls[k].size}"
            )

    def calls(field: str, fill: float | int | bool, dtype: type[Any]) -> NDArray[Any]:
        return _scatter(n_calls, cell_calls, [getattr(r, field) for r in results], fill, dtype)

    def optional(field: str, fill: float | int | bool, dtype: type[Any]) -> NDArray[Any] | None:
        return None if getattr(results[0], field) is None else calls(field, fill, dtype)

    n_cells = len(results)
    racks = {p.name: p.racks for p in fleet.pools}
    pools = tuple(
        merge_pool([r.pools[i] for r in results], racks[results[0].pools[i].name], n_cells)
        for i in range(len(results[0].pools))
    )
    first = results[0]
    stop_reason = max((r.stop_reason for r in results), key=_severity)
    cells_info = {
        **cells_info,
        "per_cell": [
            {
                "trees": int(r.trees.n_trees),
                "calls": int(r.trees.n_calls),
                "trees_completed": int(np.isfinite(r.tree_finish_s).sum()),
                "sim_time_s": r.sim_time_s,
                "stop_reason": r.stop_reason,
            }
            for r in results
        ],
    }
    merged: dict[str, Any] = dict(
        trees=trees,
        tree_arrival_s=drawn.arrival_s,
        tree_finish_s=_scatter(
            n_trees, cell_trees, [r.tree_finish_s for r in results], np.nan, np.float64
        ),
        call_tree=trees.node_tree(),
        ready_s=calls("ready_s", np.nan, np.float64),
        admit_s=calls("admit_s", np.nan, np.float64),
        first_token_s=calls("first_token_s", np.nan, np.float64),
        finish_s=calls("finish_s", np.nan, np.float64),
        cached_tokens=calls("cached_tokens", 0, np.int64),
        prefill_replica=_scatter(
            n_calls,
            cell_calls,
            _replica_ids(results, first.prefill_pool, "prefill_replica"),
            -1,
            np.int64,
        ),
        decode_replica=_scatter(
            n_calls,
            cell_calls,
            _replica_ids(results, first.decode_pool, "decode_replica"),
            -1,
            np.int64,
        ),
        pools=pools,
        prefill_pool=first.prefill_pool,
        decode_pool=first.decode_pool,
        sim_time_s=max(r.sim_time_s for r in results),
        wall_time_s=time.perf_counter() - wall_start_s,
        complete=all(r.complete for r in results),
        seed=seed,
        trace_zero_output_calls=drawn.trace_zero_output_calls,
        stop_reason=stop_reason,
        failed=optional("failed", False, np.bool_),
        retries=optional("retries", 0, np.int64),
        fail_s=optional("fail_s", np.nan, np.float64),
        fail_reason=optional("fail_reason", 0, np.int8),
        # Trees arrive in index order within each cell; summaries use the count only.
        trees_started=sum(r.trees_started for r in results),
        kv_landed_s=optional("kv_landed_s", np.nan, np.float64),
        decode_admit_s=optional("decode_admit_s", np.nan, np.float64),
        census=merge_census([r.census for r in results], n_calls),
        events=sum(r.events for r in results),
        cells=cells_info,
    )
    missing = [f.name for f in fields(SimulationResult) if f.name not in merged]
    if missing:  # a field added to SimulationResult must be merged, not left at its default
        raise RuntimeError(f"merge_cells does not merge SimulationResult.{', '.join(missing)}")
    return SimulationResult(**merged)
