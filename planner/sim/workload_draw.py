"""What a run simulates: the workload spec and the trees and arrival times drawn from it.

Kept apart from :mod:`planner.sim.engine` (which re-exports every name here) because these are
plain data that cross process boundaries (a region's cells are pickled to their workers), while
``make`` compiles the engine with mypyc (:mod:`planner.native`), whose native classes do not
unpickle frozen dataclasses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NoReturn

import numpy as np
from numpy.typing import NDArray

from planner.specs.errors import ConfigError
from planner.workload.arrivals import ArrivalProcess, ClosedLoopArrivals, TraceArrivals
from planner.workload.tree_factory import TreeBatch, TreeFactory
from planner.workload.trees import ChatShape, TreeShape

BYTES_PER_CALL = 600
"""[M] State per call, bytes: tracemalloc over building the engine for 39,793 agent-tree calls
gave 415 B resident and 478 B at the peak (timestamps, token lists, dependency lists); rounded
up for the tree arrays and the summary's copies. Bounds a run's memory before it is built."""

MAX_CALLS_BYTES = 8 * 1024**3
"""[A] Most per-call state a run may build (8 GiB): a larger workload is refused up front."""


@dataclass(frozen=True)
class WorkloadSpec:
    """What arrives: an arrival process of agent trees and the trees' shape.

    With ``trace`` arrivals and the ``chat`` shape, every call replays its trace row: prompt
    tokens from ``ContextTokens``, output from ``GeneratedTokens``. With any other shape the
    trace gives the arrival times only and the shape's laws the tokens.

    Attributes:
        arrivals: When trees (user queries) arrive.
        tree: The shape every tree is drawn from (a one-node ``chat`` shape for plain chat).
        n_trees: Stop arrivals after this many trees (``None``: no count limit).
        horizon_s: Stop arrivals after this time, s (``None``: no time limit).
    """

    arrivals: ArrivalProcess
    tree: TreeShape
    n_trees: int | None = None
    horizon_s: float | None = None

    def __post_init__(self) -> None:
        """Refuse a workload with no end (no tree count, horizon or closed-loop request count)."""
        counted = isinstance(self.arrivals, ClosedLoopArrivals) and self.arrivals.requests
        if self.n_trees is None and self.horizon_s is None and not counted:
            raise ConfigError(
                "workload.n_trees",
                "set n_trees or horizon_s (or both; closed_loop arrivals: or their requests)",
            )


def check_workload_size(workload: WorkloadSpec) -> None:
    """Refuse, before drawing it, a workload whose calls could not be held (>= 1 per tree)."""
    trees = math.inf if workload.n_trees is None else float(workload.n_trees)
    if isinstance(workload.arrivals, ClosedLoopArrivals):
        limit = workload.arrivals.request_limit(workload.n_trees)
        trees = float(workload.arrivals.users if limit is None else limit)  # grown as it runs
    elif workload.horizon_s is not None:
        rate = workload.arrivals.mean_rate_per_s
        if math.isfinite(rate):
            trees = min(trees, rate * workload.horizon_s)
    if trees * BYTES_PER_CALL > MAX_CALLS_BYTES:
        field = "workload.n_trees" if workload.n_trees is not None else "workload.horizon_s"
        _refuse_size(field, f"about {trees:,.0f} trees (at least one call each)", "at least", trees)


def _refuse_size(field: str, what: str, bound: str, calls: float) -> NoReturn:
    """Raise the one refusal of a workload whose ``calls`` need more than MAX_CALLS_BYTES."""
    raise ConfigError(
        field,
        f"{what} would need {bound} {calls * BYTES_PER_CALL / 1e9:,.1f} GB of simulator state; "
        f"allowed: at most {MAX_CALLS_BYTES // BYTES_PER_CALL:,} calls per run "
        f"({MAX_CALLS_BYTES / 1e9:.1f} GB)",
    )


CLOSED_LOOP_FIRST_REQUESTS = 32
"""Requests per user drawn for a first closed-loop run bounded only by a horizon; a run that
uses them up before the horizon is repeated with more
(``planner.sim.engine._closed_loop_growth``)."""


@dataclass(frozen=True)
class DrawnWorkload:
    """A workload as drawn for one run: the trees and their arrival times.

    Attributes:
        trees: The trees, in arrival order.
        arrival_s: Per tree, its arrival time, s (non-decreasing).
        trace_zero_output_calls: Replayed trace rows with ``GeneratedTokens = 0``.
    """

    trees: TreeBatch
    arrival_s: NDArray[np.float64]
    trace_zero_output_calls: int = 0


def draw_workload(
    workload: WorkloadSpec, seed: int, closed_loop_requests: int | None = None
) -> DrawnWorkload:
    """The trees and arrival times a run with ``seed`` simulates, as ``simulate`` draws them.

    Drawn from the arrivals and trees children of ``SeedSequence(seed)``. Closed-loop requests
    have no arrival time until their user sends them (NaN here); ``closed_loop_requests``
    overrides how many are drawn (a horizon-bounded loop that ran out is drawn again, larger).

    Raises:
        ConfigError: A workload too large to hold.
    """
    arrivals_seed, trees_seed, _, _ = np.random.SeedSequence(seed).spawn(4)
    check_workload_size(workload)
    loop = workload.arrivals if isinstance(workload.arrivals, ClosedLoopArrivals) else None
    if loop is None:
        arrival_s = workload.arrivals.sample(
            np.random.default_rng(arrivals_seed),
            horizon_s=workload.horizon_s,
            max_count=workload.n_trees,
        )
    else:
        limit = loop.request_limit(workload.n_trees)
        first = limit if limit is not None else CLOSED_LOOP_FIRST_REQUESTS * loop.users
        arrival_s = np.full(closed_loop_requests or first, np.nan)
    trees = TreeFactory(workload.tree).sample_batch(
        np.random.default_rng(trees_seed), len(arrival_s)
    )
    if trees.n_calls * BYTES_PER_CALL > MAX_CALLS_BYTES:
        field = "workload.horizon_s" if loop is not None else "workload.n_trees"
        _refuse_size(field, f"{trees.n_calls:,} calls", "about", trees.n_calls)
    zero_output = 0
    if isinstance(workload.arrivals, TraceArrivals) and isinstance(workload.tree, ChatShape):
        trace = workload.arrivals.trace
        generated = trace.generated_tokens[: trees.n_calls].astype(np.int64)
        zero_output = int((generated == 0).sum())
        trees = replace(
            trees,
            input_tokens=trace.context_tokens[: trees.n_calls].astype(np.int64),
            output_tokens=np.maximum(generated, 1),
        )
    return DrawnWorkload(trees, np.asarray(arrival_s, dtype=np.float64), zero_output)
