"""Capacity curves: racks and power an option needs as demand grows.

Two kinds, both the fast path of the ROI Monte Carlo (sampled futures look racks up instead of
simulating), both cached on disk by the application under a hash of what produced them:

* :class:`CapacityCurve`, *measured*: the sizing search (:mod:`planner.econ.sizing`, simulator
  confirmed) at a grid of demands. Between grid points racks are interpolated linearly and
  rounded up (sizing is monotone in demand); beyond the last point they grow in proportion to
  demand. Power is interpolated the same way.
* :class:`StaticCapacity`, *static*: the roofline sizing (``analytic_racks``, every replica at
  ``TARGET_LOAD``), linear in demand, tabulated per discrete variant (LPU generation, model) over
  a grid of context-length scales. This is what ``planner-roi`` uses: a hyperscale demand
  (thousands of accelerators) is out of reach of a simulation per sampled future, and the
  simulator checks it at sampled futures on request (``roi.spot_checks``).

Idle racks (owned but no longer needed) draw their idle power in the ROI model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner.econ.sizing import (
    TARGET_LOAD,
    CallShape,
    SizingOption,
    SizingSlo,
    analytic_racks,
    call_shape,
    rack_unit,
    size_option,
    workload_at_demand,
)
from planner.sim.config import SloSpec
from planner.sim.engine import WorkloadSpec
from planner.sim.metrics import summarize
from planner.specs.errors import ConfigError

CURVE_FORMAT = 2
"""Bumped whenever the curve's content or meaning changes (part of the cache key)."""


@dataclass(frozen=True)
class PoolPrices:
    """What one rack of a pool costs and draws (at today's prices).

    Attributes:
        kind: ``gpu`` or ``lpu`` (selects the price trend applied to it).
        rack_capex_usd: Systems of one rack, USD (networking and facility are added by the model).
        rack_max_power_kw: Maximum IT power of one rack, kW.
        rack_idle_power_kw: IT power of one idle rack, kW.
        accelerators_per_rack: Accelerators (GPUs, LPU chips) in one rack.
    """

    kind: str
    rack_capex_usd: float
    rack_max_power_kw: float
    rack_idle_power_kw: float
    accelerators_per_rack: float = 0.0


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

    # The Capacity protocol of planner.econ.roi (the same interface as StaticCapacity); a
    # measured curve has one variant and ignores the sampled context scale.
    def pool_names(self) -> tuple[str, ...]:
        """The pools whose racks the curve gives, sorted (costs add up in one fixed order)."""
        return tuple(sorted(self.racks))

    def kind(self, pool: str) -> str:
        """Accelerator kind of ``pool`` (``gpu``, ``lpu``, ...): selects its price inputs."""
        return self.prices[pool].kind

    def racks_for(
        self, pool: str, loads: NDArray[np.float64], inputs: Mapping[str, NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        """Racks of ``pool`` needed at ``loads`` (futures, years); ``inputs`` are not used."""
        return self.racks_needed(pool, loads)

    def power_kw_for(
        self, pool: str, loads: NDArray[np.float64], inputs: Mapping[str, NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        """Mean IT power of the racks needed at ``loads``, kW; ``inputs`` are not used."""
        return self.power_kw(pool, loads)

    def rack_prices_for(self, pool: str, inputs: Mapping[str, NDArray[np.float64]]) -> PriceArrays:
        """Per-future rack capex and power of ``pool`` (the same for every future)."""
        n = len(next(iter(inputs.values())))
        p = self.prices[pool]
        return PriceArrays(
            np.full(n, p.rack_capex_usd),
            np.full(n, p.rack_max_power_kw),
            np.full(n, p.rack_idle_power_kw),
            np.full(n, p.accelerators_per_rack),
        )


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
            accelerators_per_rack=float(system.accelerators_per_rack),
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


@dataclass(frozen=True)
class PriceArrays:
    """Rack price and power of one pool per sampled future (its variant's hardware).

    Attributes:
        rack_capex_usd: Systems of one rack at today's list price, USD, shape (futures,).
        rack_max_power_kw: Maximum IT power of one rack, kW, shape (futures,).
        rack_idle_power_kw: IT power of one idle rack, kW, shape (futures,).
        accelerators_per_rack: Accelerators in one rack, shape (futures,).
    """

    rack_capex_usd: NDArray[np.float64]
    rack_max_power_kw: NDArray[np.float64]
    rack_idle_power_kw: NDArray[np.float64]
    accelerators_per_rack: NDArray[np.float64]


STATIC_FORMAT = 1
"""Bumped whenever a static curve's content or meaning changes (part of its cache key)."""


@dataclass(frozen=True)
class StaticCapacity:
    """Racks per unit of demand of one option, per discrete variant and over context lengths.

    The static (roofline) sizing of :func:`planner.econ.sizing.analytic_racks`, which loads
    every replica to ``TARGET_LOAD``, is linear in demand: a pool needs ``slope x demand``
    racks, rounded up to whole replicas. The slope depends on the variant (LPU generation,
    model: the hardware and model swapped into the option's fleet) and on the context length
    (the workload's prompts scaled by ``context_scale``); it is tabulated on a grid of context
    scales (log-spaced) and interpolated linearly per sampled future. At hyperscale one replica
    (one rack unit) is a small fraction of a pool, so the rounding is no artefact.

    Attributes:
        option: Option name.
        choice_names: Names of the discrete inputs that select a variant (e.g. ``model``).
        choice_sizes: Number of values of each discrete input; variants are their product,
            indexed C-order (the last choice varies fastest).
        context_scales: Grid of prompt-length multipliers, increasing, > 0.
        racks_per_trees_per_s: Per pool, racks per tree/s, shape (variants, grid points).
        rack_units: Per pool, racks of one replica (the rounding step), shape (variants,).
        prices: Per pool, one :class:`PoolPrices` per variant.
        load_fraction: Fraction of a rack's dynamic power drawn by racks serving the demand
            ([A] the static sizing's target load).
        labels: Per variant, a readable name (``groq_lpu_v2 / gpt_oss_120b``).
    """

    option: str
    choice_names: tuple[str, ...]
    choice_sizes: tuple[int, ...]
    context_scales: NDArray[np.float64]
    racks_per_trees_per_s: Mapping[str, NDArray[np.float64]]
    rack_units: Mapping[str, NDArray[np.float64]]
    prices: Mapping[str, tuple[PoolPrices, ...]]
    load_fraction: float
    labels: tuple[str, ...]

    def pool_names(self) -> tuple[str, ...]:
        """The sized pools, sorted.

        Costs add up in one order whether the curves were just computed or read back from the
        cache (whose keys are sorted), so a resumed study reproduces a fresh one bitwise.
        """
        return tuple(sorted(self.racks_per_trees_per_s))

    def kind(self, pool: str) -> str:
        """Accelerator kind of ``pool`` (the same in every variant)."""
        return self.prices[pool][0].kind

    def variant_index(self, inputs: Mapping[str, NDArray[np.float64]]) -> NDArray[np.intp]:
        """The variant of each future from its discrete inputs (absent: the first value)."""
        n = len(next(iter(inputs.values())))
        if not self.choice_names:
            return np.zeros(n, dtype=np.intp)
        codes = [
            np.clip(np.asarray(inputs.get(name, np.zeros(n)), dtype=np.intp), 0, size - 1)
            for name, size in zip(self.choice_names, self.choice_sizes, strict=True)
        ]
        index: NDArray[np.intp] = np.ravel_multi_index(codes, self.choice_sizes)
        return index

    def slope(self, pool: str, inputs: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        """Racks of ``pool`` per tree/s in each future, shape (futures,)."""
        n = len(next(iter(inputs.values())))
        scale = np.asarray(inputs.get("context_scale", np.ones(n)), dtype=float)
        # Linear in the scale between grid points (the grid is log-spaced, so dense at the
        # short contexts where the LPU's racks change fastest); clamped to the grid's ends.
        x = np.clip(scale, self.context_scales[0], self.context_scales[-1])
        table = self.racks_per_trees_per_s[pool]
        by_variant = np.stack([np.interp(x, self.context_scales, row) for row in table])
        return by_variant[self.variant_index(inputs), np.arange(n)]

    def racks_for(
        self, pool: str, loads: NDArray[np.float64], inputs: Mapping[str, NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        """Racks of ``pool`` needed at ``loads`` (futures, years): whole replicas, at least one."""
        unit = self.rack_units[pool][self.variant_index(inputs)][:, None]
        exact = loads * self.slope(pool, inputs)[:, None]
        return np.maximum(np.ceil(exact / unit - 1e-9), 1.0) * unit

    def power_kw_for(
        self, pool: str, loads: NDArray[np.float64], inputs: Mapping[str, NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        """Mean IT power of the racks serving ``loads``, kW (idle + load share of the rest)."""
        prices = self.rack_prices_for(pool, inputs)
        per_rack = prices.rack_idle_power_kw + self.load_fraction * (
            prices.rack_max_power_kw - prices.rack_idle_power_kw
        )
        result: NDArray[np.float64] = loads * (self.slope(pool, inputs) * per_rack)[:, None]
        return result

    def rack_prices_for(self, pool: str, inputs: Mapping[str, NDArray[np.float64]]) -> PriceArrays:
        """Rack capex and power of ``pool`` per future (its variant's hardware)."""
        index = self.variant_index(inputs)
        table = self.prices[pool]
        return PriceArrays(
            np.array([p.rack_capex_usd for p in table])[index],
            np.array([p.rack_max_power_kw for p in table])[index],
            np.array([p.rack_idle_power_kw for p in table])[index],
            np.array([p.accelerators_per_rack for p in table])[index],
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the cache entry; :func:`planner.config.static_capacity` reads it)."""
        return {
            "format": STATIC_FORMAT,
            "option": self.option,
            "choice_names": list(self.choice_names),
            "choice_sizes": list(self.choice_sizes),
            "context_scales": self.context_scales.tolist(),
            "racks_per_trees_per_s": {k: v.tolist() for k, v in self.racks_per_trees_per_s.items()},
            "rack_units": {k: v.tolist() for k, v in self.rack_units.items()},
            "prices": {k: [vars(p) for p in v] for k, v in self.prices.items()},
            "load_fraction": self.load_fraction,
            "labels": list(self.labels),
        }


STATIC_PROBE_TREES_PER_S = 1.0e6
"""Demand at which the static sizing is probed for its slope: rounding up to whole replicas
changes racks/demand by less than one replica in a million there."""


def static_slopes(
    option: SizingOption, shape: CallShape, slo: SizingSlo, context_scales: Sequence[float]
) -> dict[str, list[float]]:
    """Racks per tree/s of each sized pool at each context scale (prompts scaled, outputs not).

    Reuses :func:`planner.econ.sizing.analytic_racks` at a very large demand, so the slope is
    the static sizing's own, free of its rounding to whole replicas.
    """
    out: dict[str, list[float]] = {p: [] for p in option.sized_pools}
    for scale in context_scales:
        scaled = replace(
            shape,
            input_tokens=shape.input_tokens * scale,
            prefill_tokens=max(shape.prefill_tokens * scale, 1.0),
        )
        racks = analytic_racks(option, scaled, STATIC_PROBE_TREES_PER_S, slo)
        for pool in option.sized_pools:
            out[pool].append(racks[pool] / STATIC_PROBE_TREES_PER_S)
    return out


def measure_static(
    option_name: str,
    variants: Sequence[SizingOption],
    labels: Sequence[str],
    choices: Sequence[tuple[str, int]],
    workload: WorkloadSpec,
    slo: SizingSlo,
    context_scales: Sequence[float],
    *,
    seed: int,
) -> StaticCapacity:
    """The static capacity of one option over its variants and a grid of context scales.

    Args:
        option_name: The option.
        variants: The option with each variant's hardware and model swapped in (C-order over
            ``choices``); every variant has the same sized pools.
        labels: A readable name per variant.
        choices: (name, number of values) of each discrete input, in index order.
        workload: Today's workload (its call shape is measured once per variant).
        slo: The targets the static sizing meets (TPOT bounds the decode batch).
        context_scales: Prompt-length multipliers of the grid (sorted here).
        seed: Seed of the trees drawn to measure the call shape.
    """
    grid = np.asarray(sorted(float(c) for c in context_scales))
    if grid.size < 2 or grid[0] <= 0:
        raise ConfigError("roi.curve_points", "needs at least two positive context scales")
    at_one = workload_at_demand(workload, 1.0)
    pools = variants[0].sized_pools
    slopes: dict[str, list[list[float]]] = {p: [] for p in pools}
    units: dict[str, list[float]] = {p: [] for p in pools}
    prices: dict[str, list[PoolPrices]] = {p: [] for p in pools}
    for option in variants:
        caching = any(p.batching.prefix_cache_fraction > 0 for p in option.fleet.pools)
        shape = call_shape(at_one, seed, caching)
        by_pool = static_slopes(option, shape, slo, grid.tolist())
        option_prices = pool_prices(option)
        for pool in option.fleet.pools:
            if pool.name in pools:
                slopes[pool.name].append(by_pool[pool.name])
                units[pool.name].append(float(rack_unit(pool)))
                prices[pool.name].append(option_prices[pool.name])
    return StaticCapacity(
        option=option_name,
        choice_names=tuple(name for name, _ in choices),
        choice_sizes=tuple(size for _, size in choices),
        context_scales=grid,
        racks_per_trees_per_s={k: np.asarray(v) for k, v in slopes.items()},
        rack_units={k: np.asarray(v) for k, v in units.items()},
        prices={k: tuple(v) for k, v in prices.items()},
        load_fraction=TARGET_LOAD,
        labels=tuple(labels),
    )
