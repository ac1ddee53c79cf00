"""Total cost of ownership of a fleet, and cost per token at its simulated utilization.

Capex per pool = racks x (system price x systems per rack) x (1 + networking fraction) plus the
facility (data-centre shell, power and cooling) sized on the pool's maximum IT power. Capex is
depreciated straight-line: hardware and networking over ``depreciation_years``, the facility
over ``facility_depreciation_years``. Opex per year = mean IT power x PUE x hours x electricity
price + maintenance (a fraction of hardware capex). Cost per million output tokens divides the
yearly cost (depreciation + opex) by the output tokens a year at the simulated throughput.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from planner.specs.errors import (
    ConfigError,
    require_fraction,
    require_non_negative,
    require_positive,
)
from planner.specs.hardware import System


@dataclass(frozen=True)
class EconomicsSpec:
    """Prices and financial assumptions (sources in ``conf/economics/``).

    Attributes:
        electricity_usd_per_kwh: Electricity price, USD/kWh.
        pue: Power usage effectiveness (facility power / IT power), >= 1.
        depreciation_years: Straight-line life of hardware and networking, years.
        facility_depreciation_years: Straight-line life of the facility, years.
        networking_capex_fraction: Scale-out networking and cabling, as a fraction of system capex.
        facility_capex_usd_per_kw: Facility build cost per kW of maximum IT power, USD/kW.
        maintenance_fraction_per_year: Yearly support and spares, fraction of hardware capex.
        discount_rate: Yearly discount rate for NPV.
        hours_per_year: Hours a year the fleet runs its simulated load.
    """

    electricity_usd_per_kwh: float = 0.0806
    pue: float = 1.3
    depreciation_years: float = 4.0
    facility_depreciation_years: float = 15.0
    networking_capex_fraction: float = 0.3
    facility_capex_usd_per_kw: float = 10_000.0
    maintenance_fraction_per_year: float = 0.03
    discount_rate: float = 0.10
    hours_per_year: float = 8760.0

    def __post_init__(self) -> None:
        prefix = "economics"
        for name in (
            "electricity_usd_per_kwh",
            "depreciation_years",
            "facility_depreciation_years",
        ):
            require_positive(f"{prefix}.{name}", getattr(self, name))
        require_non_negative(f"{prefix}.facility_capex_usd_per_kw", self.facility_capex_usd_per_kw)
        require_non_negative(f"{prefix}.networking_capex_fraction", self.networking_capex_fraction)
        require_fraction(
            f"{prefix}.maintenance_fraction_per_year", self.maintenance_fraction_per_year
        )
        require_fraction(f"{prefix}.discount_rate", self.discount_rate)
        if not 1.0 <= self.pue <= 3.0:
            raise ConfigError(f"{prefix}.pue", f"must lie in [1, 3], got {self.pue!r}")
        if not 0 < self.hours_per_year <= 8784:
            raise ConfigError(
                f"{prefix}.hours_per_year", f"must lie in (0, 8784], got {self.hours_per_year!r}"
            )


@dataclass(frozen=True)
class PoolCost:
    """Costs of one pool.

    Attributes:
        name: Pool name.
        racks: Racks bought.
        hardware_capex_usd: Systems bought, USD.
        networking_capex_usd: Scale-out networking, USD.
        facility_capex_usd: Facility share sized on maximum IT power, USD.
        max_it_power_kw: Maximum IT power of the pool, kW.
        mean_it_power_kw: Mean IT power at the simulated load, kW.
        depreciation_usd_per_year: Straight-line depreciation of the three capex parts, USD/year.
        energy_usd_per_year: Electricity incl. PUE, USD/year.
        maintenance_usd_per_year: Support and spares, USD/year.
    """

    name: str
    racks: int
    hardware_capex_usd: float
    networking_capex_usd: float
    facility_capex_usd: float
    max_it_power_kw: float
    mean_it_power_kw: float
    depreciation_usd_per_year: float
    energy_usd_per_year: float
    maintenance_usd_per_year: float

    @property
    def capex_usd(self) -> float:
        """Hardware + networking + facility, USD."""
        return self.hardware_capex_usd + self.networking_capex_usd + self.facility_capex_usd

    @property
    def opex_usd_per_year(self) -> float:
        """Energy + maintenance, USD/year."""
        return self.energy_usd_per_year + self.maintenance_usd_per_year


def pool_cost(
    name: str, system: System, racks: int, mean_it_power_kw: float, economics: EconomicsSpec
) -> PoolCost:
    """Costs of ``racks`` racks of ``system`` drawing ``mean_it_power_kw`` on average."""
    systems = racks * system.systems_per_rack
    hardware = systems * system.system_capex_usd
    networking = hardware * economics.networking_capex_fraction
    max_power_kw = systems * system.system_power_kw
    facility = max_power_kw * economics.facility_capex_usd_per_kw
    depreciation = (hardware + networking) / economics.depreciation_years
    depreciation += facility / economics.facility_depreciation_years
    energy = (
        mean_it_power_kw
        * economics.pue
        * economics.hours_per_year
        * economics.electricity_usd_per_kwh
    )
    return PoolCost(
        name=name,
        racks=racks,
        hardware_capex_usd=hardware,
        networking_capex_usd=networking,
        facility_capex_usd=facility,
        max_it_power_kw=max_power_kw,
        mean_it_power_kw=mean_it_power_kw,
        depreciation_usd_per_year=depreciation,
        energy_usd_per_year=energy,
        maintenance_usd_per_year=hardware * economics.maintenance_fraction_per_year,
    )


def cost_summary(
    pools: Sequence[PoolCost],
    *,
    output_tokens_per_s: float,
    trees_per_s: float,
    economics: EconomicsSpec,
) -> dict[str, Any]:
    """The ``cost`` section of ``summary.json``.

    Keys: ``capex_usd``, ``opex_usd_per_year``, ``depreciation_usd_per_year``,
    ``usd_per_year`` (depreciation + opex), ``usd_per_million_output_tokens``, ``usd_per_tree``,
    ``energy_usd_per_year``, and ``pools.<name>`` with each pool's parts. Per-token and per-tree
    costs assume the simulated load runs ``hours_per_year`` hours a year (``None`` without load).
    """
    capex = sum(p.capex_usd for p in pools)
    opex = sum(p.opex_usd_per_year for p in pools)
    depreciation = sum(p.depreciation_usd_per_year for p in pools)
    per_year = depreciation + opex
    seconds = economics.hours_per_year * 3600.0
    tokens_per_year = output_tokens_per_s * seconds
    trees_per_year = trees_per_s * seconds
    return {
        "capex_usd": capex,
        "opex_usd_per_year": opex,
        "depreciation_usd_per_year": depreciation,
        "usd_per_year": per_year,
        "energy_usd_per_year": sum(p.energy_usd_per_year for p in pools),
        "usd_per_million_output_tokens": per_year / tokens_per_year * 1e6
        if tokens_per_year > 0
        else None,
        "usd_per_tree": per_year / trees_per_year if trees_per_year > 0 else None,
        "pools": {
            p.name: {
                "racks": p.racks,
                "capex_usd": p.capex_usd,
                "hardware_capex_usd": p.hardware_capex_usd,
                "networking_capex_usd": p.networking_capex_usd,
                "facility_capex_usd": p.facility_capex_usd,
                "max_it_power_kw": p.max_it_power_kw,
                "opex_usd_per_year": p.opex_usd_per_year,
                "energy_usd_per_year": p.energy_usd_per_year,
            }
            for p in pools
        },
    }
