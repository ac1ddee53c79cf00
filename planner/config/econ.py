"""Plain mappings -> economics specs: TCO assumptions, Monte Carlo inputs, cached curves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np

from planner.config.errors import reject_unknown
from planner.config.fleet import fleet
from planner.config.resolve import load_named
from planner.econ.capacity import (
    CURVE_FORMAT,
    STATIC_FORMAT,
    CapacityCurve,
    PoolPrices,
    StaticCapacity,
)
from planner.econ.montecarlo import DISTRIBUTIONS, Distribution, UncertainInput
from planner.econ.sizing import SizingOption
from planner.econ.tco import EconomicsSpec
from planner.specs.errors import ConfigError, require_positive_int


def economics(data: object, prefix: str = "economics") -> EconomicsSpec:
    """An :class:`EconomicsSpec`; unknown keys are errors, missing keys keep the defaults."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(prefix, f"must be a mapping, got {type(data).__name__}")
    reject_unknown(prefix, data, [f.name for f in fields(EconomicsSpec)])
    values: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{prefix}.{key}", f"must be a number, got {value!r}")
        values[str(key)] = float(value)
    return EconomicsSpec(**values)


def distribution(data: object, field: str) -> Distribution:
    """A :class:`Distribution` from ``{dist: triang, c: 0.5, loc: 1, scale: 4}``.

    A bare number is shorthand for ``{dist: fixed, value: X}``.

    Args:
        data: The mapping (``dist`` plus parameters).
        field: Config path of the input, e.g. ``mc.inputs.demand_growth``; errors name it.

    Raises:
        ConfigError: One line naming ``field``, the law and the offending parameter.
    """
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        data = {"dist": "fixed", "value": data}
    if not isinstance(data, Mapping):
        raise ConfigError(
            field, f"must be a mapping like {{dist: ..., <params>}}, got {type(data).__name__}"
        )
    if "dist" not in data:
        raise ConfigError(field, f"dist is required; allowed: {', '.join(DISTRIBUTIONS)}")
    dist = data["dist"]
    params = tuple((str(k), v) for k, v in data.items() if k != "dist")
    try:
        return Distribution(dist if isinstance(dist, str) else repr(dist), params)
    except ConfigError as err:
        raise ConfigError(field, err.problem) from None


def uncertain_inputs(data: object, field: str = "mc.inputs") -> tuple[UncertainInput, ...]:
    """The uncertain inputs of a config section, sorted by name (deterministic order).

    Args:
        data: Input name -> ``{dist: ..., <params>}`` (or a bare number: a constant).
        field: Config path of the section; an input's errors name ``<field>.<input name>``.

    Raises:
        ConfigError: Not a mapping, or a bad input (unknown law or parameter, bad value).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            field, f"must be a mapping of input name -> distribution, got {type(data).__name__}"
        )
    out = []
    for name in sorted(data, key=str):
        if not isinstance(name, str) or not name:
            raise ConfigError(field, f"input names must be non-empty strings, got {name!r}")
        out.append(UncertainInput(name, distribution(data[name], f"{field}.{name}")))
    return tuple(out)


def capacity_curve(data: Mapping[str, Any]) -> CapacityCurve:
    """A cached :class:`CapacityCurve` from the mapping :meth:`CapacityCurve.to_dict` wrote.

    Raises:
        ValueError: The cache entry has another format (the caller re-measures the curve).
    """
    if data.get("format") != CURVE_FORMAT:
        raise ValueError("capacity curve cache of another format")
    return CapacityCurve(
        option=str(data["option"]),
        demand_trees_per_s=np.asarray(data["demand_trees_per_s"], dtype=float),
        racks={k: np.asarray(v, dtype=float) for k, v in data["racks"].items()},
        mean_power_kw={k: np.asarray(v, dtype=float) for k, v in data["mean_power_kw"].items()},
        prices={k: PoolPrices(**v) for k, v in data["prices"].items()},
        feasible=np.asarray(data["feasible"], dtype=bool),
    )


def static_capacity(data: Mapping[str, Any]) -> StaticCapacity:
    """A cached :class:`StaticCapacity` from the mapping :meth:`StaticCapacity.to_dict` wrote.

    Raises:
        ValueError: The cache entry has another format (the caller recomputes it).
    """
    if data.get("format") != STATIC_FORMAT:
        raise ValueError("static capacity cache of another format")
    return StaticCapacity(
        option=str(data["option"]),
        choice_names=tuple(str(n) for n in data["choice_names"]),
        choice_sizes=tuple(int(n) for n in data["choice_sizes"]),
        context_scales=np.asarray(data["context_scales"], dtype=float),
        racks_per_trees_per_s={
            k: np.asarray(v, dtype=float) for k, v in data["racks_per_trees_per_s"].items()
        },
        rack_units={k: np.asarray(v, dtype=float) for k, v in data["rack_units"].items()},
        prices={k: tuple(PoolPrices(**p) for p in v) for k, v in data["prices"].items()},
        load_fraction=float(data["load_fraction"]),
        labels=tuple(str(n) for n in data["labels"]),
    )


def sizing_options(data: object) -> tuple[int, list[SizingOption]]:
    """The ``sizing`` mapping as (max racks per pool, options); fleets are named in ``conf/fleet``.

    Example: ``{max_racks: 64, options: {gpu_only: {fleet: gb200_llama70b, sized_pools: [gpu]}}}``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("sizing", f"must be a mapping, got {type(data).__name__}")
    reject_unknown("sizing", data, ("max_racks", "options"))
    max_racks = require_positive_int("sizing.max_racks", data.get("max_racks", 256))
    options_raw = data.get("options")
    if not isinstance(options_raw, Mapping) or not options_raw:
        raise ConfigError("sizing.options", "must map option names to {fleet, sized_pools}")
    options = []
    for name, option in options_raw.items():
        prefix = f"sizing.options.{name}"
        if not isinstance(option, Mapping):
            raise ConfigError(prefix, "must be a mapping with keys fleet and sized_pools")
        reject_unknown(prefix, option, ("fleet", "sized_pools"))
        spec = fleet(load_named("fleet", option.get("fleet"), f"{prefix}.fleet"))
        pools = option.get("sized_pools") or []
        if isinstance(pools, (str, bytes)) or not isinstance(pools, (list, tuple)):
            raise ConfigError(
                f"{prefix}.sized_pools", f"must be a list of pool names, got {pools!r}"
            )
        options.append(SizingOption(str(name), spec, tuple(str(p) for p in pools)))
    return max_racks, options
