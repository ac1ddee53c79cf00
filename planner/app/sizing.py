"""``run_sizing``: the fewest racks of each fleet option meeting the SLOs, with its margin.

For every option of a :class:`SizingSpec` the search of :mod:`planner.econ.sizing` finds the
fewest racks whose p99s (tree end-to-end, TTFT, TPOT) meet the SLOs, deciding each candidate on
``replications`` seeded simulations (the upper confidence bound of each p99 must meet its SLO).
The result names, per option, the chosen fleet and the one a rack unit smaller with their p99s
and confidence intervals, every candidate simulated (the p99-against-racks curve), the model and
serving stack, power (MW) and floor space (racks), and the costs. Nothing here writes files or
imports Hydra: the CLI (``planner-size``) and notebooks call :func:`run_sizing` alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner import config
from planner.app.provenance import all_calibrated, fleet_provenance
from planner.econ.sizing import (
    METRICS,
    FleetCheck,
    SearchResult,
    SizingOption,
    SizingSlo,
    size_option,
)
from planner.econ.tco import EconomicsSpec, cost_summary, pool_cost
from planner.perf.efficiency import DEFAULT_STACK
from planner.sim.config import PoolSpec, SloSpec
from planner.sim.engine import WorkloadSpec
from planner.sim.faults import FailureSpec
from planner.sim.metrics import summarize

SLO_KEYS = {"tree_e2e_s": "tree_e2e_p99_s", "ttft_s": "ttft_p99_s", "tpot_s": "tpot_p99_s"}
"""Each p99 figure and the SLO field it is held to."""


@dataclass(frozen=True)
class SizingSpec:
    """Everything one sizing study needs.

    Attributes:
        workload: Arrivals (Poisson or Gamma; the rate is set to the demand) and tree shape.
        trees_per_s: Demand, trees (user queries) per second.
        slo: The p99 targets, s.
        options: Fleet options to size.
        max_racks: Most racks tried per sized pool.
        economics: Prices, PUE and depreciation for the costs.
        failures: Accelerator failures injected into every candidate (``None``: none).
        seed: Root seed (every replication's seed descends from it).
        replications: Simulations per candidate fleet (independent seeds).
        confidence: Two-sided level of the p99 confidence intervals.
        scenario: Scenario name, for the summary.
    """

    workload: WorkloadSpec
    trees_per_s: float
    slo: SizingSlo
    options: tuple[SizingOption, ...]
    max_racks: int = 256
    economics: EconomicsSpec = field(default_factory=EconomicsSpec)
    failures: FailureSpec | None = None
    seed: int = 0
    replications: int = 3
    confidence: float = 0.95
    scenario: str = "size"


@dataclass(frozen=True)
class CandidateProgress:
    """One candidate fleet simulated, as reported to the progress callback.

    Attributes:
        option: Option name.
        option_index: Position of the option (0-based).
        options_total: Options in the study.
        check: The candidate and its p99s over the replications.
        slo: The targets it was held to.
    """

    option: str
    option_index: int
    options_total: int
    check: FleetCheck
    slo: SizingSlo

    def line(self) -> str:
        """One line: option, racks, each p99's upper bound against its SLO, pass or fail."""
        racks = ", ".join(f"{pool} {n}" for pool, n in self.check.racks.items())
        upper = self.check.p99_upper
        figures = " ".join(
            f"{name.removesuffix('_s')} {_seconds(upper[name])}/{getattr(self.slo, key):g}s"
            for name, key in SLO_KEYS.items()
        )
        verdict = "meets" if self.check.meets_slo else "misses"
        bound = "p99 upper bound" if self.check.p99_ci is not None else "p99"
        return (
            f"[{self.option_index + 1}/{self.options_total}] {self.option}: {racks} racks -> "
            f"{bound} {figures}: {verdict} the SLOs"
        )


Progress = Callable[[CandidateProgress], None]
"""Called once per candidate fleet simulated."""


def _racks(count: int) -> str:
    return f"{count} rack{'' if count == 1 else 's'}"


def _seconds(value: float) -> str:
    return "inf" if not math.isfinite(value) else f"{value:.3g}"


def _finite(value: float) -> float | None:
    """``value``, or ``None`` where JSON cannot hold it (an unfinished run's infinite p99)."""
    return value if math.isfinite(value) else None


def check_json(check: FleetCheck) -> dict[str, Any]:
    """A candidate in ``summary.json``: racks, mean p99s, their intervals and upper bounds."""
    return {
        "racks": dict(check.racks),
        "racks_total": sum(check.racks.values()),
        "meets_slo": check.meets_slo,
        "complete": check.complete,
        "p99": {name: _finite(v) for name, v in check.p99.items()},
        "p99_ci": None
        if check.p99_ci is None
        else {name: [_finite(lo), _finite(hi)] for name, (lo, hi) in check.p99_ci.items()},
        "p99_upper": {name: _finite(v) for name, v in check.p99_upper.items()},
        "p99_replications": [
            {name: _finite(v) for name, v in run.items()} for run in check.replications
        ],
    }


def pool_stack(pool: PoolSpec) -> str:
    """The serving stack of a pool's efficiency profile (``compiler`` for a compiled LPU)."""
    family = pool.efficiency.family
    return pool.stack or pool.efficiency.stack or DEFAULT_STACK.get(family, "compiler")


@dataclass(frozen=True)
class OptionSizing:
    """One option's answer.

    Attributes:
        name: Option name.
        search: The search (racks, margin, candidates).
        model: Model(s) served, by name.
        stack: Serving stack per pool.
        hardware: System per pool.
        accelerators: Accelerators of the chosen fleet.
        power_mw: Mean IT power at the demand (simulated busy fraction), MW.
        power_mw_peak: IT power with every accelerator at full load (hosts and switches
            included), MW: what the floor's power feed must carry.
        facility_power_mw_peak: ``power_mw_peak`` x PUE, MW.
        costs: :func:`planner.econ.tco.cost_summary` of the chosen fleet at the demand.
        provenance: Per pool, whether its figures are calibrated / confirmed.
    """

    name: str
    search: SearchResult
    model: str
    stack: Mapping[str, str]
    hardware: Mapping[str, str]
    accelerators: int
    power_mw: float
    power_mw_peak: float
    facility_power_mw_peak: float
    costs: Mapping[str, Any]
    provenance: Mapping[str, Any]

    @property
    def racks(self) -> dict[str, int]:
        """Racks per pool of the chosen fleet (sized pools as found, the others as given)."""
        return {p.name: p.racks for p in self.search.check.result.pools}

    def to_json(self) -> dict[str, Any]:
        """The option's entry in ``summary.json`` (``options.<name>``)."""
        racks = self.racks
        return {
            "racks": racks,
            "racks_total": sum(racks.values()),
            "floor_space_racks": sum(racks.values()),
            "analytic_racks": dict(self.search.analytic_racks),
            "feasible": self.search.feasible,
            "model": self.model,
            "stack": dict(self.stack),
            "hardware": dict(self.hardware),
            "accelerators": self.accelerators,
            "power_mw": self.power_mw,
            "power_mw_peak": self.power_mw_peak,
            "facility_power_mw_peak": self.facility_power_mw_peak,
            "capex_usd": self.costs["capex_usd"],
            "opex_usd_per_year": self.costs["opex_usd_per_year"],
            "usd_per_year": self.costs["usd_per_year"],
            "usd_per_million_output_tokens": self.costs["usd_per_million_output_tokens"],
            **{
                key: value for key, value in check_json(self.search.check).items() if key != "racks"
            },
            "below": {pool: check_json(c) for pool, c in self.search.below.items()},
            "candidates": [check_json(c) for c in self.search.candidates],
            "simulations": self.search.simulations,
            "replications": self.search.replications,
            "pools": dict(self.provenance),
        }


@dataclass(frozen=True)
class SizingResult:
    """The answer of a sizing study.

    Attributes:
        spec: What was asked.
        options: Per option, its answer, in the order of ``spec.options``.
        answer: One sentence: the cheapest option meeting the SLOs, its margin, the others.
    """

    spec: SizingSpec
    options: tuple[OptionSizing, ...]
    answer: str

    def to_json(self) -> dict[str, Any]:
        """``summary.json`` of ``planner-size`` (keys documented in the README)."""
        slo = self.spec.slo
        return {
            "scenario": self.spec.scenario,
            "answer": self.answer,
            "demand_trees_per_s": self.spec.trees_per_s,
            "slo": {key: getattr(slo, key) for key in SLO_KEYS.values()},
            "failures": self.spec.failures is not None,
            "replications": self.spec.replications,
            "confidence": self.spec.confidence,
            "options": {o.name: o.to_json() for o in self.options},
            "seed": self.spec.seed,
        }


def option_sizing(
    search: SearchResult, option: SizingOption, economics: EconomicsSpec
) -> OptionSizing:
    """Costs, power, model and stack of the fleet a search chose."""
    result = search.check.result
    run = summarize(result, SloSpec())
    pools = {p.name: p for p in option.fleet.pools}
    racks = {p.name: p.racks for p in result.pools}
    costs = cost_summary(
        [
            pool_cost(
                name,
                pools[name].system,
                racks[name],
                run["pools"][name]["power_kw_mean"],
                economics,
            )
            for name in pools
        ],
        output_tokens_per_s=run["throughput"]["output_tokens_per_s"],
        trees_per_s=run["throughput"]["trees_per_s"],
        economics=economics,
    )
    peak_w = sum(p.accelerators * p.max_power_w for p in result.pools)
    return OptionSizing(
        name=option.name,
        search=search,
        model=" + ".join(dict.fromkeys(p.model.name for p in option.fleet.pools)),
        stack={name: pool_stack(p) for name, p in pools.items()},
        hardware={name: p.system.name for name, p in pools.items()},
        accelerators=sum(run["pools"][n]["accelerators"] for n in pools),
        power_mw=sum(run["pools"][n]["power_kw_mean"] for n in pools) / 1000.0,
        power_mw_peak=peak_w / 1e6,
        facility_power_mw_peak=peak_w / 1e6 * economics.pue,
        costs=costs,
        provenance=fleet_provenance(option.fleet),
    )


def _margin(option: OptionSizing, slo: SizingSlo) -> str:
    """What one rack unit fewer does: which p99 (upper bound) misses its SLO, or the floor."""
    if not option.search.below:
        return "the smallest fleet possible"
    parts = []
    for pool, check in option.search.below.items():
        upper = check.p99_upper
        worst = max(SLO_KEYS, key=lambda m: upper[m] / getattr(slo, SLO_KEYS[m]))
        parts.append(
            f"{pool} {_racks(check.racks[pool])} misses {worst.removesuffix('_s')} "
            f"({_seconds(upper[worst])} s > {getattr(slo, SLO_KEYS[worst]):g} s)"
            if not check.meets_slo
            else f"{pool} {_racks(check.racks[pool])} also meets them"
        )
    return "; ".join(parts)


def sizing_answer(options: tuple[OptionSizing, ...], spec: SizingSpec) -> str:
    """One sentence: the cheapest option meeting the SLOs, its margin, the others' costs."""
    feasible = sorted(
        (o for o in options if o.search.feasible), key=lambda o: o.costs["usd_per_year"]
    )
    demand = f"{spec.trees_per_s:g} trees/s{' with failures' if spec.failures else ''}"
    if not feasible:
        return f"No option meets the SLOs at {demand} within {spec.max_racks} racks per pool."
    best = feasible[0]
    parts = [
        f"{o.name}: {_racks(sum(o.racks.values()))}, {o.power_mw_peak:.2f} MW peak, "
        f"${o.costs['usd_per_year'] / 1e6:,.2f} M/year"
        for o in feasible
    ]
    text = (
        f"At {demand}, {best.name} ({best.model}) meets the SLOs at the lowest yearly cost "
        f"(depreciation + opex) with {_racks(sum(best.racks.values()))} "
        f"({_margin(best, spec.slo)}); " + "; ".join(parts)
    )
    infeasible = [o.name for o in options if not o.search.feasible]
    if infeasible:
        text += f". Not feasible within {spec.max_racks} racks per pool: {', '.join(infeasible)}"
    borrowed = [o.name for o in options if not all_calibrated(dict(o.provenance))]
    if borrowed:
        text += f". calibrated: false for {', '.join(borrowed)} (borrowed efficiency factors)"
    return text + "."


def sizing_spec(data: Mapping[str, Any], base_dir: Path | None = None) -> SizingSpec:
    """A :class:`SizingSpec` from ``planner-size``'s config as plain mappings.

    Keys: ``demand``, ``workload``, ``slo``, ``sizing``, ``replication``, ``economics``,
    ``failures``, ``seed``, ``scenario`` (``conf/size.yaml``'s layout).

    Args:
        data: The config.
        base_dir: Directory a relative trace path is resolved against.

    Raises:
        ConfigError: A value is invalid (names the dotted field and what is allowed).
    """
    demand = config.demand_options(data.get("demand") or {})
    workload = config.workload(data.get("workload"), base_dir=base_dir)
    targets = config.sizing_slo(data.get("slo") or {})
    max_racks, options = config.sizing_options(data.get("sizing"))
    replication = config.replication_options(data.get("replication") or {})
    return SizingSpec(
        workload=type(workload)(workload.arrivals, workload.tree, n_trees=demand.n_trees),
        trees_per_s=demand.trees_per_s,
        slo=SizingSlo(targets.tree_e2e_p99_s, targets.ttft_p99_s, targets.tpot_p99_s),
        options=tuple(options),
        max_racks=max_racks,
        economics=config.economics(data.get("economics") or {}),
        failures=config.failures(data.get("failures") or {}),
        seed=config.seed(data.get("seed")),
        replications=replication.count,
        confidence=replication.confidence,
        scenario=str(data.get("scenario", "size")),
    )


def run_sizing(spec: SizingSpec, progress: Progress | None = None) -> SizingResult:
    """Size every option of ``spec`` (see the module docstring).

    Args:
        spec: The study.
        progress: Called once per candidate fleet simulated (e.g. to print a line).

    Returns:
        The typed result; ``to_json()`` gives ``summary.json``.
    """
    workload = spec.workload
    answers = []
    for index, option in enumerate(spec.options):

        def report(check: FleetCheck, i: int = index, name: str = option.name) -> None:
            if progress is not None:
                progress(CandidateProgress(name, i, len(spec.options), check, spec.slo))

        search = size_option(
            option,
            workload,
            spec.trees_per_s,
            spec.slo,
            seed=spec.seed,
            max_racks=spec.max_racks,
            failures=spec.failures,
            replications=spec.replications,
            confidence=spec.confidence,
            progress=report,
        )
        answers.append(option_sizing(search, option, spec.economics))
    options = tuple(answers)
    return SizingResult(spec, options, sizing_answer(options, spec))


__all__ = [
    "METRICS",
    "CandidateProgress",
    "OptionSizing",
    "SizingResult",
    "SizingSpec",
    "run_sizing",
]
