"""Plain mappings -> hardware and model specs (``conf/hardware/*.yaml``, ``conf/model/*.yaml``).

The specs validate their own fields and cross-field rules in ``__post_init__`` (so code that builds
them directly cannot skip a rule); this module refuses unknown and missing keys, type-checks the
numbers it converts, and builds the nested parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any

from planner.config.errors import reject_unknown
from planner.config.resolve import load_named
from planner.specs.errors import (
    ConfigError,
    require_choice,
    require_non_negative,
    require_positive,
    require_positive_int,
)
from planner.specs.hardware import ACCELERATOR_KINDS, PRECISIONS, Accelerator, System
from planner.specs.model import GatedDeltaNetShape, MlaShape, Model, MoeShape

_SUBSHAPES: dict[str, type] = {"mla": MlaShape, "gdn": GatedDeltaNetShape, "moe": MoeShape}


def _check_keys(prefix: str, data: Mapping[str, Any], cls: type) -> None:
    """Refuse keys that are not fields of ``cls`` and fields without default that are absent."""
    reject_unknown(prefix, data, [f.name for f in fields(cls)])
    missing = sorted(f.name for f in fields(cls) if f.name not in data and f.default is MISSING)
    if missing:
        raise ConfigError(f"{prefix}.{missing[0]}", "is required")


def model(data: object, prefix: str = "model") -> Model:
    """A :class:`Model` from a mapping (e.g. a parsed ``conf/model/*.yaml``).

    Raises:
        ConfigError: Unknown or missing key, wrong type, or inconsistent layer counts; the field
            is the dotted path, e.g. ``model.moe.n_active_experts``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(prefix, f"must be a mapping, got {type(data).__name__}")
    _check_keys(prefix, data, Model)
    kwargs: dict[str, Any] = {str(k): v for k, v in data.items()}
    for key, sub_cls in _SUBSHAPES.items():
        sub = kwargs.get(key)
        if sub is None:
            continue
        if not isinstance(sub, Mapping):
            raise ConfigError(f"{prefix}.{key}", f"must be a mapping or null, got {sub!r}")
        _check_keys(f"{prefix}.{key}", sub, sub_cls)
        kwargs[key] = sub_cls(**dict(sub))
    return Model(**kwargs)


def _required(prefix: str, data: Mapping[str, Any], key: str) -> Any:
    if key not in data or data[key] is None:
        raise ConfigError(f"{prefix}.{key}", "is required")
    return data[key]


def _positive(prefix: str, data: Mapping[str, Any], key: str) -> float:
    return float(require_positive(f"{prefix}.{key}", _required(prefix, data, key)))


def _non_negative(prefix: str, data: Mapping[str, Any], key: str) -> float:
    return float(require_non_negative(f"{prefix}.{key}", _required(prefix, data, key)))


def accelerator(data: Mapping[str, Any], prefix: str = "hardware.accelerator") -> Accelerator:
    """An :class:`Accelerator` from a mapping (units as the attribute names say)."""
    reject_unknown(prefix, data, [f.name for f in fields(Accelerator)])
    flops_raw = _required(prefix, data, "peak_flops_per_s")
    if not isinstance(flops_raw, Mapping) or not flops_raw:
        raise ConfigError(f"{prefix}.peak_flops_per_s", "must map precision -> FLOP/s")
    flops: list[tuple[str, float]] = []
    for precision, value in flops_raw.items():
        require_choice(f"{prefix}.peak_flops_per_s", str(precision), PRECISIONS)
        flops.append(
            (
                str(precision),
                float(require_positive(f"{prefix}.peak_flops_per_s.{precision}", value)),
            )
        )
    idle_w = _non_negative(prefix, data, "idle_power_w")
    max_w = _positive(prefix, data, "max_power_w")
    if idle_w > max_w:
        raise ConfigError(
            f"{prefix}.idle_power_w", f"must be <= max_power_w ({max_w}), got {idle_w}"
        )
    kind = require_choice(f"{prefix}.kind", str(_required(prefix, data, "kind")), ACCELERATOR_KINDS)
    confirmed = data.get("confirmed", True)
    if not isinstance(confirmed, bool):
        raise ConfigError(f"{prefix}.confirmed", f"must be true or false, got {confirmed!r}")
    return Accelerator(
        name=str(_required(prefix, data, "name")),
        kind="gpu" if kind == "gpu" else "lpu",
        family=str(_required(prefix, data, "family")),
        memory_bytes=_positive(prefix, data, "memory_bytes"),
        memory_bandwidth_bytes_per_s=_positive(prefix, data, "memory_bandwidth_bytes_per_s"),
        peak_flops_per_s=tuple(sorted(flops)),
        idle_power_w=idle_w,
        max_power_w=max_w,
        scale_up_bandwidth_bytes_per_s=_positive(prefix, data, "scale_up_bandwidth_bytes_per_s"),
        scale_up_latency_s=_non_negative(prefix, data, "scale_up_latency_s"),
        unit_price_usd=_positive(prefix, data, "unit_price_usd"),
        confirmed=confirmed,
    )


def system(data: object, prefix: str = "hardware") -> System:
    """A :class:`System` from a mapping with an ``accelerator`` sub-mapping plus system fields."""
    if not isinstance(data, Mapping):
        raise ConfigError(prefix, f"must be a mapping, got {type(data).__name__}")
    reject_unknown(prefix, data, [f.name for f in fields(System)])
    accel_raw = _required(prefix, data, "accelerator")
    if not isinstance(accel_raw, Mapping):
        raise ConfigError(f"{prefix}.accelerator", "must be a mapping of accelerator fields")

    def positive_int(key: str, default: int | None = None) -> int:
        value = data.get(key, default) if default is not None else _required(prefix, data, key)
        return require_positive_int(f"{prefix}.{key}", value)

    per_system = positive_int("accelerators_per_system")
    return System(
        name=str(_required(prefix, data, "name")),
        accelerator=accelerator(accel_raw, f"{prefix}.accelerator"),
        accelerators_per_system=per_system,
        scale_up_domain_size=positive_int("scale_up_domain_size"),
        systems_per_rack=positive_int("systems_per_rack", default=1),
        system_power_kw=_positive(prefix, data, "system_power_kw"),
        system_capex_usd=_positive(prefix, data, "system_capex_usd"),
        accelerators_per_host=positive_int("accelerators_per_host", default=min(8, per_system)),
    )


def named_model(name: object, field: str = "model") -> Model:
    """The model of ``conf/model/<name>.yaml``; ``field`` names the reference in errors."""
    return model(load_named("model", name, field), field)


def named_system(name: object, field: str = "hardware") -> System:
    """The system of ``conf/hardware/<name>.yaml``; ``field`` names the reference in errors."""
    return system(load_named("hardware", name, field), field)
