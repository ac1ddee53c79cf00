"""The typed run summary: what ``planner`` writes as ``summary.json``, as frozen dataclasses.

:class:`RunSummary` has one section per concern - the call census (``calls``), the trees, each
pool, the throughput, the SLO outcome, the stability check, the cost, the fleet and the verdict -
so code that reads a run (the report, sweeps, notebooks) can see the contract. ``to_json()``
gives exactly the ``summary.json`` layout the README documents and ``from_json`` reads it back,
refusing a missing or unknown key, so the two cannot drift apart unnoticed.

Units follow the key names (``_s`` seconds, ``_kw`` kilowatts, ``_usd`` US dollars). Deep,
shape-keyed tables (latency budgets, timelines) stay plain mappings inside their section.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

Json = dict[str, Any]


def _plain(value: Any) -> Any:
    """A section as its JSON mapping; mappings copied; other values unchanged."""
    if isinstance(value, Section):
        return value.to_json()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


class Section:
    """Base of the summary's sections: strict ``from_json`` and the matching ``to_json``.

    ``NESTED`` maps a field to the converter of its value; ``EXTRA`` names a field that holds
    the keys a section may or may not have (merged into the same level of the JSON);
    ``OPTIONAL`` names fields present only in some runs (``None`` and left out when absent).
    """

    NESTED: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    EXTRA: ClassVar[str | None] = None
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> Json:
        """The section as the nested mapping ``summary.json`` holds."""
        out: Json = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = _plain(getattr(self, f.name))
            if f.name in self.OPTIONAL and value is None:
                continue
            if f.name == self.EXTRA:
                out.update(value)
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Read a section from its JSON mapping.

        Raises:
            ValueError: A key the section defines is missing, or an unknown key is present
                (and the section keeps no extra keys).
        """
        names = [f.name for f in fields(cls) if f.name != cls.EXTRA]  # type: ignore[arg-type]
        missing = [n for n in names if n not in data and n not in cls.OPTIONAL]
        unknown = [str(k) for k in data if k not in names]
        if missing or (unknown and cls.EXTRA is None):
            raise ValueError(f"{cls.__name__}: missing {missing}, unknown {unknown}")
        values = {n: cls.NESTED.get(n, _identity)(data[n]) if n in data else None for n in names}
        if cls.EXTRA is not None:
            values[cls.EXTRA] = {k: data[k] for k in unknown}
        return cls(**values)


def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Distribution(Section):
    """Mean and percentiles of a latency (s); ``None`` when nothing was measured."""

    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


_DIST = Distribution.from_json


@dataclass(frozen=True)
class CallCensus(Section):
    """Every call accounted for (``arrived = completed + in_flight + failed``), and latencies."""

    NESTED: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "queue_s": _DIST,
        "ttft_s": _DIST,
        "tpot_s": _DIST,
        "e2e_s": _DIST,
    }

    arrived: int
    completed: int
    in_flight: int
    failed: int
    failed_retries_exhausted: int
    failed_pool_down: int
    not_arrived: int
    prefix_cached_tokens: int
    trace_zero_output: int
    retries: int
    retried_calls: int
    census: Mapping[str, int]
    queue_s: Distribution
    ttft_s: Distribution
    tpot_s: Distribution
    e2e_s: Distribution
    floor_s: Mapping[str, Mapping[str, float]]
    floor_over_slo_fraction: Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class TreeStats(Section):
    """Agent trees: counts, end-to-end latency (s), latency budget and zero-load floors (s)."""

    NESTED: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"e2e_s": _DIST}

    arrived: int
    completed: int
    calls_per_tree_mean: float
    e2e_s: Distribution
    latency_budget: Mapping[str, Any]
    floor_s: Mapping[str, float]
    floor_parts: Mapping[str, Mapping[str, float]]
    floor_over_slo_fraction: Mapping[str, float]


@dataclass(frozen=True)
class PoolStats(Section):
    """One pool over the run: occupancy, failures, throughput (tokens/s), power (kW).

    ``load`` holds what only a run with its fleet spec has: ``headroom``, ``mbu``, ``mfu`` and
    the KV-occupancy / queue-depth timelines (``timeline_bin_s``).
    """

    EXTRA: ClassVar[str | None] = "load"

    role: str
    racks: int
    replicas: int
    accelerators: int
    busy_fraction: float
    utilization: float
    availability: float
    failures: int
    lost_capacity_replica_s: float
    gave_up_s: float | None
    give_up_reason: str | None
    mean_decode_batch: float
    tokens_per_s: float
    output_tokens_per_s: float
    prefill_tokens_per_s: float
    power_kw_mean: float
    energy_kwh: float
    calibrated: bool
    borrowed_from: str | None
    hardware_confirmed: bool
    load: Mapping[str, Any]


@dataclass(frozen=True)
class Throughput(Section):
    """Completed work per second of simulated time."""

    output_tokens_per_s: float
    calls_per_s: float
    trees_per_s: float


@dataclass(frozen=True)
class SloOutcome(Section):
    """The SLO limits (s), the share of trees meeting all of them, and static feasibility."""

    tree_e2e_s: float
    ttft_s: float
    tpot_s: float
    attainment: float | None
    feasible: bool | None
    infeasible_reason: str | None


@dataclass(frozen=True)
class Stability(Section):
    """Whether the backlog kept growing over the second half of the arrivals."""

    stable: bool
    backlog_mid: int
    backlog_end: int
    queue_mid: int
    queue_end: int
    window_end_s: float | None
    reason: str


@dataclass(frozen=True)
class HeadlineCost(Section):
    """The cost the workload is judged by (:func:`planner.app.verdict.headline_cost`)."""

    metric: str
    usd: float | None
    unit: str
    why: str


@dataclass(frozen=True)
class CostSummary(Section):
    """Capex (USD), yearly costs (USD/year) and per-unit costs (USD), and each pool's parts."""

    NESTED: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"headline": HeadlineCost.from_json}

    capex_usd: float
    opex_usd_per_year: float
    depreciation_usd_per_year: float
    usd_per_year: float
    energy_usd_per_year: float
    usd_per_million_output_tokens: float | None
    usd_per_tree: float | None
    usd_per_million_tokens_processed: float | None
    headline: HeadlineCost
    pools: Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class FleetPool(Section):
    """What a pool was built from: role, hardware, model, racks and the serving mapping."""

    role: str
    hardware: str
    model: str
    racks: int
    precision: str
    tp: int
    ep: int
    stack: str | None


@dataclass(frozen=True)
class Verdict:
    """The verdict as one sentence (:func:`planner.app.verdict.verdict`)."""

    text: str


def _pools(data: Mapping[str, Any]) -> dict[str, PoolStats]:
    return {str(k): PoolStats.from_json(v) for k, v in data.items()}


def _fleet(data: Mapping[str, Any]) -> dict[str, FleetPool]:
    return {str(k): FleetPool.from_json(v) for k, v in data.items()}


@dataclass(frozen=True)
class RunSummary(Section):
    """A ``planner`` run, section by section; ``to_json()`` is ``summary.json``."""

    NESTED: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "calls": CallCensus.from_json,
        "trees": TreeStats.from_json,
        "pools": _pools,
        "throughput": Throughput.from_json,
        "slo": SloOutcome.from_json,
        "stability": Stability.from_json,
        "cost": CostSummary.from_json,
        "fleet": _fleet,
        "verdict": Verdict,
    }

    calls: CallCensus
    trees: TreeStats
    pools: Mapping[str, PoolStats]
    throughput: Throughput
    slo: SloOutcome
    stability: Stability
    cost: CostSummary
    fleet: Mapping[str, FleetPool]
    verdict: Verdict
    scenario: str
    fleet_name: str | None
    seed: int
    complete: bool
    partial: bool
    stop_reason: str
    sim_time_s: float
    wall_time_s: float
    cells: Mapping[str, Any] | None = None
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"cells"})

    def to_json(self) -> Json:
        """``summary.json``: the sections' mappings, the verdict as its sentence."""
        out = super().to_json()
        out["verdict"] = self.verdict.text
        return out
