"""Fewest racks of a fleet option meeting the SLOs: analytic bracket, then the simulator confirms.

An *option* is a fleet template (``FleetSpec``) and the pools whose rack counts are sized. Racks
come in *units*: one rack, or for a replica spanning several racks (an LPU chain) as many racks as
one replica needs, so every candidate fleet adds whole replicas.

1. The analytic estimate sizes each pool from the roofline: a unified pool's per-replica
   throughput under the TPOT SLO, a prefill pool's prompt time, a decode pool's decode
   throughput under the TPOT SLO, each loaded to ``TARGET_LOAD`` so queueing tails stay short.
2. The simulator confirms: one pool is sized by bisection on units between a failing and a
   passing count (doubling from the estimate until one passes); two pools are scaled together
   from the estimate's split, then each is trimmed while the SLOs still hold.

Every candidate is simulated ``replications`` times, replication ``i`` with its own seed (a
child of ``SeedSequence(seed)``; one replication uses ``seed`` itself), and every candidate of a
search sees the same seeds and so the same drawn trees (common random numbers): whether a fleet
passes depends only on the fleet and the demand, so more demand never needs fewer racks and a
looser SLO never needs more (tested). A candidate passes when the upper end of the confidence
interval of each p99 (Student t over the replications' p99s, two-sided at ``confidence``) meets
its SLO and every replication finished every tree; with one replication there is no interval and
the p99 itself must meet the SLO.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from planner.perf.replica import (
    Replica,
    largest_batch_within,
    serving_point,
    steady_state_step_s,
)
from planner.sim.config import FleetSpec, PoolSpec
from planner.sim.engine import SimulationResult, WorkloadSpec, pool_replica, simulate
from planner.sim.faults import FailureSpec
from planner.sim.metrics import call_latencies
from planner.specs.errors import ConfigError, require_positive
from planner.workload.arrivals import GammaArrivals, PoissonArrivals
from planner.workload.tree_factory import TreeFactory

TARGET_LOAD = 0.7
"""Fraction of a replica's throughput the analytic estimate plans to use (queueing headroom)."""

WORKLOAD_STATS_TREES = 2000
"""Trees drawn to measure the workload's mean call shape for the analytic estimate."""

METRICS = ("tree_e2e_s", "ttft_s", "tpot_s")
"""The sized-for p99 figures, in the order the SLOs list them."""

WARMUP_FRACTION = 0.1
"""Share of a sizing run's first-arriving trees left out of its percentiles: the fleet starts
empty, so early trees see shorter queues than steady state."""


@dataclass(frozen=True)
class SizingSlo:
    """Targets a sized fleet must meet, all at the 99th percentile.

    Attributes:
        tree_e2e_p99_s: Agent-tree end-to-end latency, s.
        ttft_p99_s: Per-call time to first token, s.
        tpot_p99_s: Per-call time per output token, s.
    """

    tree_e2e_p99_s: float
    ttft_p99_s: float
    tpot_p99_s: float

    def __post_init__(self) -> None:
        """Refuse a target that is not a positive number (``ConfigError`` naming it)."""
        for name in ("tree_e2e_p99_s", "ttft_p99_s", "tpot_p99_s"):
            require_positive(f"slo.{name}", getattr(self, name))


@dataclass(frozen=True)
class SizingOption:
    """A fleet template and the pools whose racks are sized.

    Attributes:
        name: Option name (e.g. ``gpu_only``).
        fleet: The fleet; racks of the sized pools are replaced by the search.
        sized_pools: Names of the pools to size (the others keep their racks).
    """

    name: str
    fleet: FleetSpec
    sized_pools: tuple[str, ...]

    def __post_init__(self) -> None:
        """Refuse a sized pool the fleet does not have, or none at all."""
        names = {p.name for p in self.fleet.pools}
        for pool in self.sized_pools:
            if pool not in names:
                raise ConfigError(
                    f"sizing.options.{self.name}.sized_pools",
                    f"{pool!r} is not a pool of the fleet; allowed: {', '.join(sorted(names))}",
                )
        if not self.sized_pools:
            raise ConfigError(f"sizing.options.{self.name}.sized_pools", "name at least one pool")


@dataclass(frozen=True)
class FleetCheck:
    """One simulated candidate fleet, over its replications.

    Attributes:
        racks: Racks per pool.
        meets_slo: Whether every replication finished every tree and the upper confidence bound
            of each p99 (the p99 itself with one replication) is within its SLO.
        p99: ``tree_e2e_s``, ``ttft_s``, ``tpot_s``: mean over the replications of each
            replication's 99th percentile, s (``inf`` when a replication left calls unfinished).
        result: The simulation of the first replication (costs and power are read from it).
        replications: Per replication, its three p99 figures, s.
        p99_ci: Per figure, the ``(low, high)`` confidence interval of the mean p99, s
            (``None`` with one replication).
        complete: Whether every replication finished every tree.
    """

    racks: Mapping[str, int]
    meets_slo: bool
    p99: Mapping[str, float]
    result: SimulationResult
    replications: tuple[Mapping[str, float], ...] = ()
    p99_ci: Mapping[str, tuple[float, float]] | None = None
    complete: bool = True

    @property
    def p99_upper(self) -> dict[str, float]:
        """The upper confidence bound of each p99 (the p99 itself with one replication), s."""
        if self.p99_ci is None:
            return dict(self.p99)
        return {name: self.p99_ci[name][1] for name in self.p99}


@dataclass(frozen=True)
class SearchResult:
    """The fewest racks found for one option (``feasible`` False: none within ``max_racks``).

    Attributes:
        option: Option name.
        racks: Racks per pool of the smallest passing fleet (the largest tried if infeasible).
        analytic_racks: The analytic estimate per sized pool.
        feasible: Whether a fleet within ``max_racks`` per pool met the SLOs.
        check: The simulation of the returned fleet.
        simulations: Candidate fleets simulated (each over every replication).
        below: Per sized pool, the check of the returned fleet with that pool one rack unit
            smaller (the margin: it failed, or the search would have chosen it); empty when
            infeasible or the pool is at one unit.
        candidates: Every candidate simulated, by total racks then racks per pool.
        replications: Simulations per candidate.
        confidence: Two-sided confidence level of the p99 intervals.
    """

    option: str
    racks: Mapping[str, int]
    analytic_racks: Mapping[str, int]
    feasible: bool
    check: FleetCheck
    simulations: int
    below: Mapping[str, FleetCheck] = field(default_factory=dict)
    candidates: tuple[FleetCheck, ...] = ()
    replications: int = 1
    confidence: float = 0.95


def workload_at_demand(workload: WorkloadSpec, trees_per_s: float) -> WorkloadSpec:
    """The workload with its arrival rate set to ``trees_per_s`` (Poisson or Gamma arrivals)."""
    require_positive("demand.trees_per_s", trees_per_s)
    arrivals = workload.arrivals
    if not isinstance(arrivals, (PoissonArrivals, GammaArrivals)):
        raise ConfigError(
            "workload.arrivals.kind",
            f"sizing sets the arrival rate, so it needs poisson or gamma; got {arrivals.kind}",
        )
    return replace(workload, arrivals=replace(arrivals, rate_per_s=float(trees_per_s)))


@dataclass(frozen=True)
class CallShape:
    """Mean shape of one call of a workload, for the analytic estimate."""

    calls_per_tree: float
    input_tokens: float
    output_tokens: float
    prefill_tokens: float  # input less the shared prefix expected from cache


def call_shape(workload: WorkloadSpec, seed: int, prefix_caching: bool) -> CallShape:
    """Mean call shape over a sample of the workload's trees.

    With prefix caching, every call of a tree after the first is taken to find the tree's
    shared prefix cached (an upper bound on hits: routing may split a tree over replicas).
    """
    batch = TreeFactory(workload.tree).sample_batch(
        np.random.default_rng(seed), WORKLOAD_STATS_TREES
    )
    calls = batch.calls_per_tree().astype(float)
    inputs = batch.input_tokens.astype(float)
    shared = batch.shared_prefix_tokens.astype(float)
    hit_share = np.repeat((calls - 1) / calls, batch.calls_per_tree()) if prefix_caching else 0.0
    return CallShape(
        calls_per_tree=float(calls.mean()),
        input_tokens=float(inputs.mean()),
        output_tokens=float(batch.output_tokens.mean()),
        prefill_tokens=float(np.maximum(inputs - shared * hit_share, 1.0).mean()),
    )


def rack_unit(pool: PoolSpec) -> int:
    """Racks one replica needs (1 when a rack holds at least one replica)."""
    return max(1, math.ceil(pool_replica(pool).accelerators / pool.system.accelerators_per_rack))


def _replicas_per_unit(pool: PoolSpec) -> int:
    unit = rack_unit(pool)
    return unit * pool.system.accelerators_per_rack // pool_replica(pool).accelerators


def analytic_racks(
    option: SizingOption, shape: CallShape, trees_per_s: float, slo: SizingSlo
) -> dict[str, int]:
    """Racks per sized pool from the roofline at ``TARGET_LOAD`` (at least one unit each)."""
    calls_per_s = trees_per_s * shape.calls_per_tree
    isl, osl = shape.prefill_tokens, max(shape.output_tokens, 1.0)
    out: dict[str, int] = {}
    for pool in option.fleet.pools:
        if pool.name not in option.sized_pools:
            continue
        replica = pool_replica(pool)
        if pool.role == "prefill":
            calls_per_replica = 1.0 / replica.prefill_time_s(isl)
        elif pool.role == "decode":
            context = shape.input_tokens + osl / 2.0

            def decode_step(batch: int, r: Replica = replica, c: float = context) -> float:
                return r.step_time_s(batch, batch * c)

            cap = min(replica.max_batch(shape.input_tokens + osl), pool.batching.max_batch)
            batch = max(largest_batch_within(slo.tpot_p99_s, decode_step, cap), 1)
            calls_per_replica = batch / decode_step(batch) / osl
        else:
            point = serving_point(replica, isl, osl, slo.tpot_p99_s)
            if point.batch < 1:
                point = serving_point(replica, isl, osl)
            batch = min(point.batch, pool.batching.max_batch)
            # A batch capped by the scheduler steps faster than the memory-bound one would.
            step_s = (
                point.step_s
                if batch == point.batch or batch < 1
                else steady_state_step_s(replica, batch, isl, osl)
            )
            calls_per_replica = batch / step_s / osl if batch else 0.0
        replicas = calls_per_s / (calls_per_replica * TARGET_LOAD) if calls_per_replica else 1.0
        units = max(1, math.ceil(replicas / _replicas_per_unit(pool)))
        out[pool.name] = units * rack_unit(pool)
    return out


def p99_figures(result: SimulationResult) -> dict[str, float]:
    """The three sized-for percentiles of a run, after the warm-up trees.

    Trees (and their calls) arriving among the first ``WARMUP_FRACTION`` are left out. A tree
    or call that never finished counts as infinitely late.
    """
    latencies = call_latencies(result)
    first_kept = int(result.trees.n_trees * WARMUP_FRACTION)
    kept_calls = result.call_tree >= first_kept

    def p99(values: np.ndarray) -> float:
        if values.size == 0:
            return math.inf
        # An order statistic (no interpolation), so a tail of unfinished calls reads as inf.
        filled = np.where(np.isnan(values), np.inf, values)
        return float(np.percentile(filled, 99, method="higher"))

    tpot = latencies["tpot_s"][kept_calls]
    tpot = tpot[~(np.isnan(tpot) & np.isfinite(result.finish_s[kept_calls]))]  # 1-token calls
    return {
        "tree_e2e_s": p99((result.tree_finish_s - result.tree_arrival_s)[first_kept:]),
        "ttft_s": p99(latencies["ttft_s"][kept_calls]),
        "tpot_s": p99(tpot),
    }


def meets(p99: Mapping[str, float], slo: SizingSlo) -> bool:
    """Whether the p99 figures are within the SLOs."""
    return (
        p99["tree_e2e_s"] <= slo.tree_e2e_p99_s
        and p99["ttft_s"] <= slo.ttft_p99_s
        and p99["tpot_s"] <= slo.tpot_p99_s
    )


def replication_seeds(seed: int, replications: int) -> list[int]:
    """Root seed of each replication: ``seed`` alone, else children of ``SeedSequence(seed)``.

    Each child's state is drawn as one 63-bit integer, so every replication's random streams
    (arrivals, trees, jitter, failures: children of ``SeedSequence(child seed)`` in the engine)
    are independent of the others' and fixed by ``seed``.
    """
    require_positive("replication.count", replications)
    if replications == 1:
        return [seed]
    children = np.random.SeedSequence(seed).spawn(replications)
    return [int(c.generate_state(1, np.uint64)[0] >> np.uint64(1)) for c in children]


def confidence_interval(values: Sequence[float], confidence: float) -> tuple[float, float] | None:
    """Two-sided Student-t interval of the mean of ``values`` (``None`` for fewer than 2).

    An infinite value (a replication with unfinished calls) gives ``(inf, inf)``.
    """
    n = len(values)
    if n < 2:
        return None
    data = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        return math.inf, math.inf
    # Imported here: scipy.stats costs start-up time (tests/test_startup.py).
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2.0, n - 1)) * float(data.std(ddof=1)) / math.sqrt(n)
    mean = float(data.mean())
    return mean - half, mean + half


class _Search:
    """Simulates candidate fleets of one option, each at most once (over every replication)."""

    def __init__(
        self,
        option: SizingOption,
        workload: WorkloadSpec,
        slo: SizingSlo,
        seed: int,
        failures: FailureSpec | None,
        replications: int = 1,
        confidence: float = 0.95,
        progress: Callable[[FleetCheck], None] | None = None,
    ) -> None:
        self.option, self.workload, self.slo = option, workload, slo
        self.seeds = replication_seeds(seed, replications)
        self.confidence, self.failures, self.progress = confidence, failures, progress
        self.cache: dict[tuple[int, ...], FleetCheck] = {}

    def check(self, racks: Mapping[str, int]) -> FleetCheck:
        key = tuple(racks[p] for p in self.option.sized_pools)
        if key not in self.cache:
            self.cache[key] = self._simulate(racks)
            if self.progress is not None:
                self.progress(self.cache[key])
        return self.cache[key]

    def _simulate(self, racks: Mapping[str, int]) -> FleetCheck:
        pools = tuple(
            replace(p, racks=racks[p.name], replicas=None) if p.name in racks else p
            for p in self.option.fleet.pools
        )
        fleet = replace(self.option.fleet, pools=pools)
        runs: list[dict[str, float]] = []
        first: SimulationResult | None = None
        complete = True
        for seed in self.seeds:
            result = simulate(fleet, self.workload, seed=seed, failures=self.failures)
            first = first or result
            runs.append(p99_figures(result))
            complete = complete and result.complete
            if not complete:  # an unfinished replication fails the candidate whatever follows
                break
        assert first is not None  # at least one seed
        mean = {name: float(np.mean([r[name] for r in runs])) for name in METRICS}
        ci: dict[str, tuple[float, float]] | None = None
        if len(self.seeds) > 1:
            ci = {}
            for name in METRICS:
                interval = confidence_interval([r[name] for r in runs], self.confidence)
                # Stopped early (or one run): the interval is unbounded.
                ci[name] = interval if interval and len(runs) == len(self.seeds) else _UNBOUNDED
        check = FleetCheck(dict(racks), False, mean, first, tuple(runs), ci, complete)
        return replace(check, meets_slo=complete and meets(check.p99_upper, self.slo))


_UNBOUNDED = (math.inf, math.inf)


def _bisect_units(passes: Callable[[int], bool], start: int, max_units: int) -> tuple[int, bool]:
    """Smallest unit count in [1, max_units] that passes, searching from ``start``."""
    high = min(max(start, 1), max_units)
    while not passes(high):
        if high >= max_units:
            return max_units, False
        high = min(2 * high, max_units)
    low = 0  # 0 units always fails (no replica)
    while high - low > 1:
        middle = (low + high) // 2
        if passes(middle):
            high = middle
        else:
            low = middle
    return high, True


def _trim(check: Callable[[dict[str, int]], bool], counts: dict[str, int]) -> dict[str, int]:
    """Take one unit off any pool while the fleet still passes, until none can be taken."""
    trimmed = True
    while trimmed:
        trimmed = False
        for name in counts:
            trial = {**counts, name: counts[name] - 1}
            if counts[name] > 1 and check(trial):
                counts, trimmed = trial, True
    return counts


def size_option(
    option: SizingOption,
    workload: WorkloadSpec,
    trees_per_s: float,
    slo: SizingSlo,
    *,
    seed: int,
    max_racks: int,
    failures: FailureSpec | None = None,
    replications: int = 1,
    confidence: float = 0.95,
    progress: Callable[[FleetCheck], None] | None = None,
) -> SearchResult:
    """The fewest racks of ``option`` meeting ``slo`` at ``trees_per_s`` (see module docstring).

    Args:
        option: The fleet template and the pools to size.
        workload: Arrivals (Poisson or Gamma: the rate is set to ``trees_per_s``) and trees.
        trees_per_s: Demand, trees/s.
        slo: The p99 targets.
        seed: Root seed of the replications' seeds (:func:`replication_seeds`).
        max_racks: Most racks tried per sized pool.
        failures: Accelerator failures injected into every candidate (the fleet found meets the
            SLOs while failures are happening); ``None``: none.
        replications: Simulations per candidate (independent seeds, shared by the candidates).
        confidence: Two-sided level of the p99 confidence intervals (0 < level < 1).
        progress: Called with each candidate once it has been simulated.

    Returns:
        The fewest racks found, the one-unit-smaller fleets that fail (the margin) and every
        candidate simulated.
    """
    require_positive("sizing.max_racks", max_racks)
    if not 0.0 < confidence < 1.0:
        raise ConfigError("replication.confidence", f"must be in (0, 1), got {confidence!r}")
    at_demand = workload_at_demand(workload, trees_per_s)
    prefix_caching = any(p.batching.prefix_cache_fraction > 0 for p in option.fleet.pools)
    shape = call_shape(at_demand, seed, prefix_caching)
    estimate = analytic_racks(option, shape, trees_per_s, slo)
    units = {p.name: rack_unit(p) for p in option.fleet.pools if p.name in option.sized_pools}
    max_units = {name: max(1, max_racks // unit) for name, unit in units.items()}
    search = _Search(option, at_demand, slo, seed, failures, replications, confidence, progress)

    def racks_of(counts: Mapping[str, int]) -> dict[str, int]:
        return {name: counts[name] * units[name] for name in units}

    def passes(counts: Mapping[str, int]) -> bool:
        return search.check(racks_of(counts)).meets_slo

    start = {name: max(1, estimate[name] // units[name]) for name in units}
    if len(units) == 1:
        (name,) = units
        count, feasible = _bisect_units(lambda n: passes({name: n}), start[name], max_units[name])
        counts = {name: count}
    else:
        # Scale every sized pool together from the estimate's split, then trim each pool.
        def scaled(step: int) -> dict[str, int]:
            return {n: min(max_units[n], max(1, math.ceil(start[n] * step / 4))) for n in units}

        top = max(math.ceil(4 * max_units[n] / start[n]) for n in units)
        step, feasible = _bisect_units(lambda s: passes(scaled(s)), 4, top)
        counts = _trim(passes, scaled(step)) if feasible else scaled(step)
    racks = racks_of(counts)
    below = {
        name: search.check(racks_of({**counts, name: counts[name] - 1}))
        for name in units
        if feasible and counts[name] > 1
    }
    return SearchResult(
        option=option.name,
        racks=racks,
        analytic_racks=estimate,
        feasible=feasible,
        check=search.check(racks),
        simulations=len(search.cache),
        below=below,
        candidates=tuple(
            sorted(
                search.cache.values(),
                key=lambda c: (sum(c.racks.values()), tuple(c.racks.values())),
            )
        ),
        replications=replications,
        confidence=confidence,
    )
