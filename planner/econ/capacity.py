"""Capacity curves: racks, capex and power an option needs as demand grows, measured by simulation.

A curve is the sizing search (:mod:`planner.econ.sizing`) run at a grid of demands. It is the
fast path of the ROI Monte Carlo: thousands of sampled futures look racks up on the curve
instead of simulating. The CLI caches curves on disk under :func:`curve_key`, a hash of
everything that produced them.

Between grid points racks are interpolated linearly and rounded up (sizing is monotone in
demand); beyond the last point they are extrapolated in proportion to demand. Power at a demand
is interpolated the same way; idle racks (owned but not needed) draw their idle power.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner.econ.sizing import SizingOption, SizingSlo, size_option
from planner.sim.config import SloSpec
from planner.sim.engine import WorkloadSpec
from planner.sim.metrics import summarize
from planner.specs.errors import ConfigError

CURVE_FORMAT = 1
"""Bumped whenever the curve's content or meaning changes (part of the cache key)."""


@dataclass(frozen=True)
class PoolPrices:
    """What one rack of a pool costs and draws (at today's prices).

    Attributes:
        kind: ``gpu`` or ``lpu`` (selects the price trend applied to it).
        rack_capex_usd: Systems of one rack, USD (networking and facility are added by the model).
        rack_max_power_kw: Maximum IT power of one rack, kW.
        rack_idle_power_kw: IT power of one idle rack, kW.
    """

    kind: str
    rack_capex_usd: float
    rack_max_power_kw: float
    rack_idle_power_kw: float


@dataclass(frozen=True)
class CapacityCurve:
    """Racks and power of one option over a grid of demands.

    Attributes:
        option: Option name.
        demand_trees_per_s: Grid of demands, increasing, trees/s.
        racks: Per pool, racks needed at each grid demand.
        mean_power_kw: Per pool, mean IT power of the sized fleet at each grid demand, kW.
        prices: Per pool, rack prices and power.
        feasible: Per grid demand, whether sizing found a fleet within its rack limit.
    """

    option: str
    demand_trees_per_s: NDArray[np.float64]
    racks: Mapping[str, NDArray[np.float64]]
    mean_power_kw: Mapping[str, NDArray[np.float64]]
    prices: Mapping[str, PoolPrices]
    feasible: NDArray[np.bool_]

    def _interpolate(
        self, values: NDArray[np.float64], demand: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        grid = self.demand_trees_per_s
        inside = np.interp(demand, grid, values)
        # Beyond the grid, grow in proportion to demand from the last point.
        above = values[-1] * demand / grid[-1]
        return np.where(demand > grid[-1], above, inside)

    def racks_needed(self, pool: str, demand: NDArray[np.float64]) -> NDArray[np.float64]:
        """Racks of ``pool`` needed at each demand (whole racks, never below the first point)."""
        return np.ceil(self._interpolate(self.racks[pool], np.asarray(demand, dtype=float)) - 1e-9)

    def power_kw(self, pool: str, demand: NDArray[np.float64]) -> NDArray[np.float64]:
        """Mean IT power of the racks ``pool`` needs at each demand, kW."""
        return self._interpolate(self.mean_power_kw[pool], np.asarray(demand, dtype=float))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for the on-disk cache)."""
        return {
            "format": CURVE_FORMAT,
            "option": self.option,
            "demand_trees_per_s": self.demand_trees_per_s.tolist(),
            "racks": {k: v.tolist() for k, v in self.racks.items()},
            "mean_power_kw": {k: v.tolist() for k, v in self.mean_power_kw.items()},
            "prices": {k: vars(v) for k, v in self.prices.items()},
            "feasible": self.feasible.tolist(),
        }


def pool_prices(option: SizingOption) -> dict[str, PoolPrices]:
    """Rack prices and power of every pool of an option."""
    out = {}
    for pool in option.fleet.pools:
        system = pool.system
        accel = system.accelerator
        rack_max_kw = system.system_power_kw * system.systems_per_rack
        out[pool.name] = PoolPrices(
            kind=accel.kind,
            rack_capex_usd=system.system_capex_usd * system.systems_per_rack,
            rack_max_power_kw=rack_max_kw,
            rack_idle_power_kw=rack_max_kw * accel.idle_power_w / accel.max_power_w,
        )
    return out


def curve_key(
    option: SizingOption,
    workload: WorkloadSpec,
    slo: SizingSlo,
    demands: Sequence[float],
    seed: int,
    max_racks: int,
) -> str:
    """A stable hash of everything a capacity curve depends on (the cache key)."""
    payload = json.dumps(
        {
            "format": CURVE_FORMAT,
            "option": repr(option),
            "workload": repr(workload),
            "slo": repr(slo),
            "demands": [float(d) for d in demands],
            "seed": seed,
            "max_racks": max_racks,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def measure_curve(
    option: SizingOption,
    workload: WorkloadSpec,
    slo: SizingSlo,
    demands: Sequence[float],
    *,
    seed: int,
    max_racks: int,
) -> CapacityCurve:
    """Size ``option`` at every demand of the grid (one sizing search per point)."""
    grid = np.asarray(sorted(float(d) for d in demands))
    if grid.size < 2 or grid[0] <= 0:
        raise ConfigError("roi.curve.points", "needs at least two positive demands")
    racks: dict[str, list[float]] = {p.name: [] for p in option.fleet.pools}
    power: dict[str, list[float]] = {p.name: [] for p in option.fleet.pools}
    feasible = []
    for demand in grid:
        result = size_option(option, workload, float(demand), slo, seed=seed, max_racks=max_racks)
        pools = summarize(result.check.result, SloSpec())["pools"]
        for pool in option.fleet.pools:
            racks[pool.name].append(float(result.racks.get(pool.name, pool.racks)))
            power[pool.name].append(float(pools[pool.name]["power_kw_mean"]))
        feasible.append(result.feasible)
    # Sizing is monotone in demand; keep the curve so even where a search's noise is not.
    return CapacityCurve(
        option=option.name,
        demand_trees_per_s=grid,
        racks={k: np.maximum.accumulate(np.asarray(v)) for k, v in racks.items()},
        mean_power_kw={k: np.asarray(v) for k, v in power.items()},
        prices=pool_prices(option),
        feasible=np.asarray(feasible, dtype=bool),
    )
