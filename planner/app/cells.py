"""Region scale: a fleet split into independent cells, run in parallel and merged exactly.

A region is often built as *cells*: self-contained copies of the serving stack, each with its own
racks, routers and queues, behind a regional load balancer that sends every user session to one
cell. ``run.cells=N`` simulates that:

* **The split of the fleet** (:func:`plan_cells`): every pool's racks are dealt out as whole
  racks, as evenly as they go (the first ``racks % N`` cells get one more), and each cell runs
  the replicas its racks hold (a pool with an explicit ``replicas`` deals those out in
  proportion to what each cell's racks hold). A replica never spans two cells, so a replica that
  straddles two racks of different cells is not built (``cells.pools.<name>.replicas_lost``).
  A pool whose racks cannot give every cell at least one replica is refused.
* **The split of the load** (:func:`assign_trees`): the region draws its tree stream once,
  exactly as a run without cells does (same seed, same trees, same arrival times), and the
  balancer sends each tree, with all its calls, to one cell by *independent thinning*: cell
  ``k`` with probability equal to its share of the replicas (the mean over pools). Thinning,
  not round-robin, because a balancer that hashes a session or user id is what regional
  balancers do, and because independent thinning of a Poisson stream gives each cell an
  independent Poisson stream of the same burstiness per unit of capacity, whereas round-robin
  would smooth each cell's arrivals (Erlang-N gaps) and understate its queueing tail.
* **Seeds**: cell ``k`` draws its jitter, routing and failures from child ``k`` of
  ``SeedSequence(seed).spawn(N)`` and the balancer from the next child (``N``), so the result
  does not depend on the backend or on how many workers run the cells. One cell is the region
  itself: ``run.cells=1`` uses the run's own streams and equals the run without cells.
* **Running**: each cell is an ordinary engine run (:func:`planner.sim.engine.simulate_drawn`)
  on ``joblib`` worker processes (default), as Ray tasks (``ray``; Ray is imported only then and
  started locally unless already initialised or ``RAY_ADDRESS`` names a cluster) or ``serial``.
* **Merging** (:mod:`planner.app.cells_merge`): the per-call and per-tree tables are put back
  into the region's order and the summary is computed from them as for one fleet, so every
  percentile is a percentile of the merged table (never an average of the cells'); census
  counts are summed and checked; pool totals are combined by their definitions.

What cells do not capture (by construction): no load balancing or spill-over between cells (a
hot cell queues while its neighbour idles); no prefix cache shared across cells; failures,
repairs and a pool giving up are independent per cell; each cell's clock stops when it drains
(the region's time is the latest cell's); ``run.max_wall_s`` applies to each cell on its own.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner.app.cells_merge import merge_cells
from planner.config.options import RunOptions
from planner.sim.config import FleetSpec, PoolSpec
from planner.sim.engine import (
    DrawnWorkload,
    SimulationResult,
    WorkloadSpec,
    draw_workload,
    pool_replica,
    simulate,
    simulate_drawn,
)
from planner.sim.faults import FailureSpec
from planner.sim.pool import PoolRuntime
from planner.specs.errors import ConfigError
from planner.workload.arrivals import ClosedLoopArrivals
from planner.workload.tree_factory import _take_trees

BACKENDS = ("joblib", "ray", "serial")
"""How cells run: local worker processes, Ray tasks, or one after another in this process."""

BALANCER = "independent thinning (each tree to cell k with probability = its share of replicas)"
"""How the regional balancer splits the tree stream (reported as ``cells.balancer``)."""


@dataclass(frozen=True)
class CellPlan:
    """How a region splits into cells.

    Attributes:
        fleet: The region's fleet.
        cells: Per cell, its fleet (every pool with the cell's racks and replicas).
        replicas: Per pool name, the replicas of each cell.
        racks: Per pool name, the racks of each cell.
        weights: Per cell, its share of the tree stream (sums to 1).
    """

    fleet: FleetSpec
    cells: tuple[FleetSpec, ...]
    replicas: dict[str, tuple[int, ...]]
    racks: dict[str, tuple[int, ...]]
    weights: NDArray[np.float64]

    @property
    def count(self) -> int:
        """Number of cells."""
        return len(self.cells)


def _even(total: int, parts: int) -> list[int]:
    """``total`` dealt into ``parts`` integers differing by at most one (larger ones first)."""
    return [total // parts + (1 if k < total % parts else 0) for k in range(parts)]


def _proportional(total: int, capacity: list[int]) -> list[int]:
    """``total`` dealt in proportion to ``capacity`` by largest remainders (ties: lower index).

    No part exceeds its capacity when ``total <= sum(capacity)`` (a quota never exceeds its
    capacity, and an integer capacity bounds the quota's rounding up).
    """
    whole = sum(capacity)
    parts = [total * c // whole for c in capacity]
    order = sorted(range(len(capacity)), key=lambda k: (-(total * capacity[k] % whole), k))
    for k in order[: total - sum(parts)]:
        parts[k] += 1
    return parts


def _split_pool(spec: PoolSpec, n_cells: int) -> tuple[list[int], list[int]] | None:
    """Per cell, (racks, replicas) of ``spec`` in ``n_cells`` cells (``None``: one gets none)."""
    if spec.racks < n_cells:
        return None
    per_replica = pool_replica(spec).accelerators
    per_rack = spec.system.accelerators_per_rack
    racks = _even(spec.racks, n_cells)
    held = [r * per_rack // per_replica for r in racks]
    replicas = held if spec.replicas is None else _proportional(spec.replicas, held)
    if sum(held) == 0 or any(r > h for r, h in zip(replicas, held, strict=True)):
        return None
    return (racks, replicas) if min(replicas) >= 1 else None


def _most_cells(spec: PoolSpec, n_cells: int) -> int:
    """The most cells (< ``n_cells``) ``spec`` splits into, each with at least one replica."""
    per_replica = pool_replica(spec).accelerators
    racks_per_replica = -(-per_replica // spec.system.accelerators_per_rack)
    bound = min(n_cells - 1, spec.racks // racks_per_replica)
    if spec.replicas is not None:
        bound = min(bound, spec.replicas)
    for candidate in range(bound, 0, -1):
        if _split_pool(spec, candidate) is not None:
            return candidate
    return 1


def plan_cells(fleet: FleetSpec, n_cells: int) -> CellPlan:
    """Split every pool of ``fleet`` into ``n_cells`` cells of whole racks (module docstring).

    Raises:
        ConfigError: A pool that cannot give every cell at least one replica (field
            ``run.cells``, naming the pool and the most cells it allows), or a pool the
            simulator refuses on its own (its racks hold no replica, too many replicas).
    """
    if isinstance(n_cells, bool) or not isinstance(n_cells, int) or n_cells < 1:
        raise ConfigError("run.cells", f"must be an integer >= 1, got {n_cells!r}")
    for spec in fleet.pools:  # the region's own refusals first (e.g. racks below one replica)
        PoolRuntime.check_size(spec)
    if n_cells == 1:  # one cell is the region itself
        region = {p.name: PoolRuntime.check_size(p) for p in fleet.pools}
        return CellPlan(
            fleet=fleet,
            cells=(fleet,),
            replicas={name: (n,) for name, n in region.items()},
            racks={p.name: (p.racks,) for p in fleet.pools},
            weights=np.ones(1),
        )
    racks: dict[str, tuple[int, ...]] = {}
    replicas: dict[str, tuple[int, ...]] = {}
    for spec in fleet.pools:
        split = _split_pool(spec, n_cells)
        if split is None:
            # The most cells every pool allows (the first that all pools split into).
            allowed = next(
                n
                for n in range(_most_cells(spec, n_cells), 0, -1)
                if all(_split_pool(p, n) is not None for p in fleet.pools)
            )
            raise ConfigError(
                "run.cells",
                f"pool {spec.name} ({spec.racks} racks, {PoolRuntime.check_size(spec)} "
                f"replicas) cannot be split into {n_cells} cells of whole racks with at least one "
                f"replica each; allowed: run.cells <= {allowed} (or more racks in pool "
                f"{spec.name})",
            )
        racks[spec.name], replicas[spec.name] = tuple(split[0]), tuple(split[1])
    cells = tuple(
        replace(
            fleet,
            pools=tuple(
                replace(p, racks=racks[p.name][k], replicas=replicas[p.name][k])
                for p in fleet.pools
            ),
        )
        for k in range(n_cells)
    )
    shares = np.array([np.asarray(r, dtype=np.float64) / sum(r) for r in replicas.values()])
    return CellPlan(fleet, cells, replicas, racks, shares.mean(axis=0))


def cell_streams(seed: int, n_cells: int) -> list[np.random.SeedSequence]:
    """Per cell, the root of its engine's streams (jitter, routers, failures).

    ``SeedSequence(seed).spawn(n_cells)``; one cell is the region and keeps ``SeedSequence(seed)``.
    """
    if n_cells == 1:
        return [np.random.SeedSequence(seed)]
    return np.random.SeedSequence(seed).spawn(n_cells)


def assign_trees(n_trees: int, weights: NDArray[np.float64], seed: int) -> NDArray[np.int64]:
    """Per tree, the cell the balancer sends it to (independent thinning by ``weights``).

    The draws come from child ``len(weights)`` of ``SeedSequence(seed)`` (the one after the
    cells' own); one cell takes every tree and draws nothing.
    """
    n_cells = len(weights)
    if n_cells == 1:
        return np.zeros(n_trees, dtype=np.int64)
    balancer = np.random.SeedSequence(seed).spawn(n_cells + 1)[n_cells]
    rng = np.random.default_rng(balancer)
    return rng.choice(n_cells, size=n_trees, p=weights).astype(np.int64)


@dataclass(frozen=True)
class CellTask:
    """Everything one cell's run needs (pickled to a worker process or a Ray task).

    Attributes:
        index: The cell's number.
        fleet: The cell's fleet.
        drawn: The cell's trees and their arrival times.
        seed: The region's seed (recorded in the result).
        streams: Root of the cell's engine streams.
        stepwise: Advance one batch iteration per event.
        max_sim_time_s: Stop the clock here, s.
        failures: Accelerator failures (``None``: none).
        max_wall_s: Wall-clock guard of this cell, s.
        timeline_horizon_s: The region's timeline span (the last arrival of the region), s.
    """

    index: int
    fleet: FleetSpec
    drawn: DrawnWorkload
    seed: int
    streams: np.random.SeedSequence
    stepwise: bool
    max_sim_time_s: float | None
    failures: FailureSpec | None
    max_wall_s: float | None
    timeline_horizon_s: float


@dataclass(frozen=True)
class CellRefused:
    """A cell's run refused its input (the ConfigError's parts, re-raised by the caller)."""

    field: str
    problem: str


def run_cell(task: CellTask) -> SimulationResult | CellRefused:
    """Run one cell (a module-level function: joblib and Ray call it in worker processes).

    Bad input comes back as a :class:`CellRefused` value rather than an exception, so every
    backend reports it the same way (Ray would wrap the exception in its own type).
    """
    try:
        return simulate_drawn(
            task.fleet,
            task.drawn,
            seed=task.seed,
            streams=task.streams,
            stepwise=task.stepwise,
            max_sim_time_s=task.max_sim_time_s,
            failures=task.failures,
            max_wall_s=task.max_wall_s,
            timeline_horizon_s=task.timeline_horizon_s,
        )
    except ConfigError as error:
        return CellRefused(error.field, error.problem)


def run_tasks(
    tasks: Sequence[CellTask], backend: str, n_jobs: int | None = None
) -> list[SimulationResult]:
    """Run the cells on ``backend``; results in cell order (the same on every backend).

    Args:
        tasks: One per cell.
        backend: ``joblib`` (local worker processes), ``ray`` (Ray tasks) or ``serial``.
        n_jobs: joblib workers (``None``: one per cell, at most one per CPU).

    Raises:
        ConfigError: An unknown backend, Ray not installed, or a cell's bad input.
    """
    if backend not in BACKENDS:
        raise ConfigError(
            "run.cells_backend", f"must be one of {', '.join(BACKENDS)}; got {backend!r}"
        )
    outcomes: list[SimulationResult | CellRefused]
    if backend == "serial" or len(tasks) <= 1:
        outcomes = [run_cell(task) for task in tasks]
    elif backend == "joblib":
        import joblib  # lazily: only a region of cells pays for it

        workers = n_jobs or min(len(tasks), os.cpu_count() or 1)
        outcomes = joblib.Parallel(n_jobs=workers)(joblib.delayed(run_cell)(t) for t in tasks)
    else:
        outcomes = _ray_tasks(tasks)
    results = []
    for outcome in outcomes:
        if isinstance(outcome, CellRefused):
            raise ConfigError(outcome.field, outcome.problem)
        results.append(outcome)
    return results


def _ray_tasks(tasks: Sequence[CellTask]) -> list[SimulationResult | CellRefused]:
    """The cells as Ray tasks; a Ray instance started here is shut down on return."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "run.cells_backend",
            "ray is not installed; allowed: joblib, serial (or pip install 'planner[ray]')",
        ) from None
    started_here = not ray.is_initialized()
    if started_here:  # a local instance, or the cluster RAY_ADDRESS names
        # Ray's start-up INFO lines would be the only noise on a run's stderr.
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        remote = ray.remote(run_cell)
        outcomes: list[SimulationResult | CellRefused] = ray.get(
            [remote.remote(task) for task in tasks]
        )
        return outcomes
    finally:
        if started_here:
            ray.shutdown()


def _cell_workload(drawn: DrawnWorkload, trees: NDArray[np.int64]) -> DrawnWorkload:
    """The region's trees ``trees`` (ascending region indices) as a cell's workload."""
    return DrawnWorkload(_take_trees(drawn.trees, trees), drawn.arrival_s[trees], 0)


def simulate_cells(
    fleet: FleetSpec,
    workload: WorkloadSpec,
    *,
    seed: int,
    cells: int,
    backend: str = "joblib",
    stepwise: bool = False,
    max_sim_time_s: float | None = None,
    failures: FailureSpec | None = None,
    max_wall_s: float | None = None,
    n_jobs: int | None = None,
) -> SimulationResult:
    """Simulate ``fleet`` as ``cells`` independent cells and merge them into one result.

    The arguments shared with :func:`planner.sim.engine.simulate` mean the same; the result
    is the region's (per-call and per-tree arrays in the region's order, pools combined) and
    carries ``cells`` (the split and each cell's figures). ``run.cells=1`` equals ``simulate``.

    Raises:
        ConfigError: A pool that cannot be split (``run.cells``), a bad backend, or any input
            :func:`~planner.sim.engine.simulate` refuses.
    """
    wall_start = time.perf_counter()
    if backend not in BACKENDS:
        raise ConfigError(
            "run.cells_backend", f"must be one of {', '.join(BACKENDS)}; got {backend!r}"
        )
    if cells > 1 and isinstance(workload.arrivals, ClosedLoopArrivals):
        # Its users wait on their own completions: a cell cannot be handed a share in advance.
        raise ConfigError(
            "run.cells",
            f"closed_loop arrivals run in one cell; allowed: run.cells=1, got {cells}",
        )
    plan = plan_cells(fleet, cells)
    drawn = draw_workload(workload, seed)
    tree_cell = assign_trees(drawn.trees.n_trees, plan.weights, seed)
    cell_trees = [np.flatnonzero(tree_cell == k) for k in range(plan.count)]
    horizon_s = float(drawn.arrival_s[-1]) if len(drawn.arrival_s) else 0.0
    streams = cell_streams(seed, plan.count)
    tasks = [
        CellTask(
            index=k,
            fleet=plan.cells[k],
            drawn=drawn if plan.count == 1 else _cell_workload(drawn, cell_trees[k]),
            seed=seed,
            streams=streams[k],
            stepwise=stepwise,
            max_sim_time_s=max_sim_time_s,
            failures=failures,
            max_wall_s=max_wall_s,
            timeline_horizon_s=horizon_s,
        )
        for k in range(plan.count)
    ]
    results = run_tasks(tasks, backend, n_jobs)
    return merge_cells(
        plan_summary(plan),
        fleet,
        drawn,
        cell_trees,
        results,
        seed=seed,
        wall_start_s=wall_start,
    )


def plan_summary(plan: CellPlan) -> dict[str, Any]:
    """The split as reported under ``cells`` (before the cells' own figures are added)."""
    return {
        "count": plan.count,
        "balancer": BALANCER,
        "weights": [float(w) for w in plan.weights],
        "pools": {
            p.name: {
                "racks": list(plan.racks[p.name]),
                "replicas": list(plan.replicas[p.name]),
                "replicas_lost": PoolRuntime.check_size(p) - sum(plan.replicas[p.name]),
            }
            for p in plan.fleet.pools
        },
    }


def cells_simulator(run: RunOptions) -> Callable[..., SimulationResult]:
    """``simulate``'s stand-in for ``run.cells`` > 1 (same keywords, no progress hook)."""
    if run.cells == 1:
        return simulate
    return partial(simulate_cells, cells=run.cells, backend=run.cells_backend)


__all__ = [
    "BACKENDS",
    "BALANCER",
    "CellPlan",
    "CellRefused",
    "CellTask",
    "assign_trees",
    "cell_streams",
    "cells_simulator",
    "plan_cells",
    "run_cell",
    "run_tasks",
    "simulate_cells",
]
