"""Return on an inference-ASIC option against a GPU-only baseline meeting the same demand and SLO.

Year ``t`` (0 .. horizon-1) of one future:

* load: ``base_demand x ((1 + demand_growth) (1 + fanout_growth) / (1 + efficiency_gain))^t``
  trees/s in units of today's workload. Volume and fan-out growth scale the work a tree brings;
  a more efficient model (MoE active-parameter ratio, attention mix) divides it. The capacity
  curves were measured on today's workload, so this is the modelling assumption: work scales
  the racks needed as demand does.
* racks: each option owns, per pool, the most racks any year so far needed (racks are bought,
  never sold), looked up on its capacity (a :class:`Capacity`: a measured curve, or the static
  curves whose variant and context scale each future draws) at the year's load;
* capex: racks bought that year x rack price x ``<kind>_price_factor`` (optional input, default
  1: today's list price) x (1 + price change of its accelerator kind)^t x (1 + networking) +
  facility per kW of added IT power;
* opex: (power at the year's load + idle power of surplus racks) x PUE x hours x electricity
  price + maintenance on the hardware owned.

The candidate's yearly saving is baseline cost - candidate cost. NPV discounts the savings
(capex at the start of a year, opex during it, both at ``t``); IRR is numpy-financial's on the
same series (NaN where the savings never change sign); payback is the first (interpolated) year
in which cumulative savings reach 0 (inf if never within the horizon). No salvage value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy_financial as npf
from numpy.typing import NDArray

from planner.econ.capacity import PriceArrays
from planner.econ.sizing import SizingOption, SizingSlo, size_option
from planner.econ.tco import EconomicsSpec
from planner.sim.engine import WorkloadSpec
from planner.specs.errors import ConfigError, require_positive

INPUT_NAMES = (
    "base_demand_trees_per_s",
    "demand_growth_per_year",
    "fanout_growth_per_year",
    "efficiency_gain_per_year",
    "gpu_price_change_per_year",
    "lpu_price_change_per_year",
    "electricity_usd_per_kwh",
    "pue",
    "discount_rate",
)
"""The quantities a future is drawn over (each fixed or a distribution in config)."""

OPTIONAL_INPUTS = ("context_scale", "gpu_price_factor", "lpu_price_factor")
"""Inputs a study may add (default 1): the prompt-length multiplier the static curves are read
at, and today's rack price of each accelerator kind as a multiple of its list price. Discrete
inputs (``roi.choices``) are named by the study."""


class Capacity(Protocol):
    """What the ROI model needs from an option's capacity (measured or static curves)."""

    @property
    def option(self) -> str:
        """The option's name."""
        ...

    def pool_names(self) -> tuple[str, ...]:
        """The sized pools."""
        ...

    def kind(self, pool: str) -> str:
        """Accelerator kind of ``pool`` (selects its price inputs)."""
        ...

    def racks_for(
        self, pool: str, loads: NDArray[np.float64], inputs: Mapping[str, NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        """Racks needed per future and year."""
        ...

    def power_kw_for(
        self, pool: str, loads: NDArray[np.float64], inputs: Mapping[str, NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        """Mean IT power of the racks needed per future and year, kW."""
        ...

    def rack_prices_for(self, pool: str, inputs: Mapping[str, NDArray[np.float64]]) -> PriceArrays:
        """Rack capex and power per future."""
        ...


@dataclass(frozen=True)
class OptionCosts:
    """One option's yearly costs and fleet per future, all shape (futures, years).

    Attributes:
        capex_usd: Racks bought (with networking and facility), USD.
        opex_usd: Energy and maintenance, USD.
        racks: Racks owned (all pools): the floor space.
        power_mw: Provisioned IT power of the racks owned (rack maximum), MW.
        accelerators: Accelerators in the racks owned.
    """

    capex_usd: NDArray[np.float64]
    opex_usd: NDArray[np.float64]
    racks: NDArray[np.float64]
    power_mw: NDArray[np.float64]
    accelerators: NDArray[np.float64]

    @property
    def total_usd(self) -> NDArray[np.float64]:
        """Capex + opex, USD."""
        return self.capex_usd + self.opex_usd


@dataclass(frozen=True)
class RoiModel:
    """The two options' curves and the fixed economics.

    Attributes:
        baseline: Capacity of the GPU-only baseline.
        candidate: Capacity of the ASIC option.
        economics: Prices and lives not drawn per future (networking, facility, maintenance).
        horizon_years: Years compared.
    """

    baseline: Capacity
    candidate: Capacity
    economics: EconomicsSpec
    horizon_years: int

    def __post_init__(self) -> None:
        """Check the horizon (1..30 years)."""
        if not 1 <= self.horizon_years <= 30:
            raise ConfigError("roi.horizon_years", f"must be 1..30, got {self.horizon_years!r}")

    def loads(self, inputs: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        """Load per future and year, shape (futures, years), trees/s of today's workload."""
        years = np.arange(self.horizon_years, dtype=float)
        ratio = (
            (1.0 + inputs["demand_growth_per_year"])
            * (1.0 + inputs["fanout_growth_per_year"])
            / (1.0 + inputs["efficiency_gain_per_year"])
        )
        return inputs["base_demand_trees_per_s"][:, None] * ratio[:, None] ** years[None, :]

    def option_costs(
        self, capacity: Capacity, inputs: Mapping[str, NDArray[np.float64]]
    ) -> OptionCosts:
        """Capex, opex, racks and power of one option per future and year."""
        econ = self.economics
        loads = self.loads(inputs)
        futures, years = loads.shape
        t = np.arange(years, dtype=float)[None, :]
        capex, opex = np.zeros((futures, years)), np.zeros((futures, years))
        racks, power_mw = np.zeros((futures, years)), np.zeros((futures, years))
        accelerators = np.zeros((futures, years))
        for pool in capacity.pool_names():
            kind = capacity.kind(pool)
            prices = capacity.rack_prices_for(pool, inputs)
            needed = capacity.racks_for(pool, loads, inputs)
            owned = np.maximum.accumulate(needed, axis=1)
            bought = np.diff(owned, axis=1, prepend=0.0)
            change = inputs[f"{kind}_price_change_per_year"][:, None]
            factor = inputs.get(f"{kind}_price_factor", np.ones(futures))[:, None]
            price = prices.rack_capex_usd[:, None] * factor * (1.0 + change) ** t
            hardware = bought * price
            capex += hardware * (1.0 + econ.networking_capex_fraction)
            capex += bought * prices.rack_max_power_kw[:, None] * econ.facility_capex_usd_per_kw
            idle_kw = (owned - needed) * prices.rack_idle_power_kw[:, None]
            power_kw = capacity.power_kw_for(pool, loads, inputs) + idle_kw
            opex += (
                power_kw
                * inputs["pue"][:, None]
                * econ.hours_per_year
                * inputs["electricity_usd_per_kwh"][:, None]
            )
            opex += np.cumsum(hardware, axis=1) * econ.maintenance_fraction_per_year
            racks += owned
            power_mw += owned * prices.rack_max_power_kw[:, None] / 1000.0
            accelerators += owned * prices.accelerators_per_rack[:, None]
        return OptionCosts(capex, opex, racks, power_mw, accelerators)

    def yearly_costs(
        self, capacity: Capacity, inputs: Mapping[str, NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        """Cost of one option per future and year (capex + opex), USD, shape (futures, years)."""
        return self.option_costs(capacity, inputs).total_usd

    def savings(self, inputs: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        """Baseline cost - candidate cost per future and year, USD."""
        return self.yearly_costs(self.baseline, inputs) - self.yearly_costs(self.candidate, inputs)

    def npv_usd(self, inputs: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        """NPV of the candidate's savings per future, USD (the Monte Carlo output)."""
        savings = self.savings(inputs)
        years = np.arange(savings.shape[1], dtype=float)
        discount = (1.0 + inputs["discount_rate"][:, None]) ** years[None, :]
        npv: NDArray[np.float64] = (savings / discount).sum(axis=1)
        return npv


def irr(savings: NDArray[np.float64]) -> NDArray[np.float64]:
    """IRR of each future's savings series (NaN where undefined), per year."""
    out = np.full(savings.shape[0], np.nan)
    for i, series in enumerate(savings):
        if series.min() < 0 < series.max():
            out[i] = float(npf.irr(series))
    return out


def payback_years(savings: NDArray[np.float64]) -> NDArray[np.float64]:
    """First year (interpolated within the year) cumulative savings reach 0; inf if never.

    A future whose first year already saves pays back at 0.
    """
    cumulative = np.cumsum(savings, axis=1)
    out = np.full(savings.shape[0], np.inf)
    for i, series in enumerate(cumulative):
        reached = np.nonzero(series >= 0)[0]
        if reached.size == 0:
            continue
        year = int(reached[0])
        if year == 0:
            out[i] = 0.0
            continue
        before, after = series[year - 1], series[year]
        out[i] = year - 1 + (-before) / (after - before)
    return out


def check_inputs(inputs: Mapping[str, NDArray[np.float64]]) -> None:
    """Every required input present and within range (growth rates > -1, prices > 0)."""
    for name in INPUT_NAMES:
        if name not in inputs:
            raise ConfigError(f"mc.inputs.{name}", "is required (a number or a distribution)")
    for name in INPUT_NAMES:
        values = inputs[name]
        if name.endswith("_per_year") and np.any(values <= -1.0):
            raise ConfigError(f"mc.inputs.{name}", "must stay above -1 (a yearly change of -100%)")
    for name in ("base_demand_trees_per_s", "electricity_usd_per_kwh"):
        if np.any(inputs[name] <= 0):
            raise ConfigError(f"mc.inputs.{name}", "must stay > 0")
    for name in OPTIONAL_INPUTS:
        if name in inputs and np.any(inputs[name] <= 0):
            raise ConfigError(f"mc.inputs.{name}", "must stay > 0")
    if np.any(inputs["pue"] < 1.0):
        raise ConfigError("mc.inputs.pue", "must stay >= 1")
    require_positive("mc.inputs.discount_rate", float(np.min(inputs["discount_rate"])) + 1.0)


@dataclass(frozen=True)
class SpotCheck:
    """The fast path against the simulator at one sampled future's final-year load.

    Attributes:
        option: Option name.
        load_trees_per_s: The load, trees/s of today's workload.
        fast_racks: Racks the capacity curve gives (all pools).
        simulated_racks: Racks a full sizing search finds (all pools).
    """

    option: str
    load_trees_per_s: float
    fast_racks: float
    simulated_racks: float

    @property
    def relative_error(self) -> float:
        """|fast - simulated| / simulated."""
        return abs(self.fast_racks - self.simulated_racks) / self.simulated_racks


def npv_chunk(model: RoiModel, samples: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
    """NPV of a chunk of futures (module level, so joblib and Ray can pickle it)."""
    return model.npv_usd(samples)


def spot_check(
    model: RoiModel,
    option_of: Callable[[str, Mapping[str, NDArray[np.float64]]], SizingOption],
    workload: WorkloadSpec,
    slo: SizingSlo,
    draws: Mapping[str, NDArray[np.float64]],
    n: int,
    seed: int,
    max_racks: int,
    *,
    both: bool = True,
) -> list[SpotCheck]:
    """Re-size ``n`` sampled futures' final-year loads by simulation and compare with the curves.

    The fast path's racks (capacity lookup) against a full sizing search at the same load and
    variant (``option_of(option name, one future's inputs)`` gives the option the simulator
    sizes), for the baseline and (with ``both``) the candidate. Both run today's workload: the
    lookup is read at ``context_scale`` 1, since the simulated workload is not rescaled.
    """
    if n <= 0:
        return []
    loads = model.loads(draws)[:n, -1]
    checks = []
    for capacity in (model.baseline, model.candidate) if both else (model.baseline,):
        for i, load in enumerate(loads):
            future = {k: np.asarray(v[i : i + 1], dtype=float) for k, v in draws.items()}
            future["context_scale"] = np.ones(1)
            at = np.array([[load]])
            fast = sum(
                float(capacity.racks_for(p, at, future)[0, 0]) for p in capacity.pool_names()
            )
            option = option_of(capacity.option, future)
            result = size_option(option, workload, float(load), slo, seed=seed, max_racks=max_racks)
            simulated = sum(result.racks.get(p.name, p.racks) for p in option.fleet.pools)
            checks.append(SpotCheck(capacity.option, float(load), fast, float(simulated)))
    return checks


def irr_summary(savings: NDArray[np.float64]) -> dict[str, float | None]:
    """IRR percentiles over ALL futures, with the share that has no IRR.

    A future whose savings never change sign has no IRR. One that never recovers its outlay
    (total savings <= 0) ranks below every defined IRR; one that saves from the first year on
    ranks above. Percentiles are order statistics over all futures (``inverted_cdf``), so a
    percentile that lands on a future without an IRR is reported as ``None``, never replaced
    by a median over the subset that has one.

    Returns:
        ``p5``, ``p50``, ``p95`` (per year, or None), ``defined_fraction``,
        ``none_fraction_never_recovers``, ``none_fraction_always_saves``.
    """
    rates = irr(savings)
    ranked = np.where(np.isfinite(rates), rates, np.where(savings.sum(axis=1) > 0, np.inf, -np.inf))
    out: dict[str, float | None] = {}
    for name, q in (("p5", 5.0), ("p50", 50.0), ("p95", 95.0)):
        value = float(np.percentile(ranked, q, method="inverted_cdf"))
        out[name] = value if np.isfinite(value) else None
    n = max(len(rates), 1)
    out["defined_fraction"] = float(np.isfinite(rates).sum()) / n
    out["none_fraction_never_recovers"] = float(np.isneginf(ranked).sum()) / n
    out["none_fraction_always_saves"] = float(np.isposinf(ranked).sum()) / n
    return out
