"""Validation of the performance model's own tables: efficiency profiles and calibration rows.

The perf classes (``EfficiencyFactors``, ``CalibrationRow``, ``LpuRow``) keep a ``from_dict`` for
their callers, which delegates here; this module returns plain keyword arguments, so it imports
nothing from ``planner.perf`` (which imports it lazily): no cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from planner.specs.errors import (
    ConfigError,
    reject_unknown_keys,
    require_choice,
    require_fraction,
    require_non_negative,
    require_positive,
)


def efficiency_fields(
    data: Mapping[str, Any], prefix: str, allowed: Iterable[str], stacks: Sequence[str]
) -> dict[str, Any]:
    """Validate an efficiency profile; the keyword arguments of ``EfficiencyFactors``.

    Args:
        data: The profile (``conf/efficiency/<family>.yaml`` or a stack's entry).
        prefix: Dotted name of ``data`` in error messages.
        allowed: The field names of ``EfficiencyFactors`` (unknown keys are errors).
        stacks: The serving stacks a profile may name.

    Raises:
        ConfigError: A key is unknown, missing or out of range.
    """
    reject_unknown_keys(prefix, data, allowed)
    required = (
        "family",
        "compute_efficiency",
        "memory_efficiency",
        "comm_efficiency",
        "step_overhead_s",
        "kv_memory_fraction",
    )
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"{prefix}.{missing[0]}", "is required")
    fractions = (
        "compute_efficiency",
        "memory_efficiency",
        "comm_efficiency",
        "kv_memory_fraction",
        "sram_usable_fraction",
        "expert_memory_efficiency",
    )
    for key in fractions:
        if key in data:
            require_fraction(f"{prefix}.{key}", data[key], allow_zero=False)
    if "attention_compute_efficiency" in data:
        require_fraction(
            f"{prefix}.attention_compute_efficiency", data["attention_compute_efficiency"]
        )
    for key in (
        "step_overhead_s",
        "layer_overhead_s",
        "expert_gemm_half_tokens",
        "request_overhead_s",
        "moe_layer_overhead_s",
        "eager_layer_launch_s",
    ):
        if key in data:
            require_non_negative(f"{prefix}.{key}", data[key])
    stack = str(data.get("stack", ""))
    if stack:
        require_choice(f"{prefix}.stack", stack, stacks)
    for key in ("layer_floor_s", "hop_latency_s"):
        if key in data:
            require_non_negative(f"{prefix}.{key}", data[key])
    if "sram_reserve_fraction" in data:
        require_fraction(f"{prefix}.sram_reserve_fraction", data["sram_reserve_fraction"])
    windowed_full = data.get("windowed_kv_full_context", False)
    if not isinstance(windowed_full, bool):
        raise ConfigError(
            f"{prefix}.windowed_kv_full_context", f"must be true or false, got {windowed_full!r}"
        )
    if "kv_sizing_context_tokens" in data:
        require_positive(f"{prefix}.kv_sizing_context_tokens", data["kv_sizing_context_tokens"])
    return dict(
        family=str(data["family"]),
        compute_efficiency=float(data["compute_efficiency"]),
        memory_efficiency=float(data["memory_efficiency"]),
        comm_efficiency=float(data["comm_efficiency"]),
        step_overhead_s=float(data["step_overhead_s"]),
        kv_memory_fraction=float(data["kv_memory_fraction"]),
        expert_memory_efficiency=float(data.get("expert_memory_efficiency", 1.0)),
        sram_usable_fraction=float(data.get("sram_usable_fraction", 1.0)),
        stack=stack,
        layer_overhead_s=float(data.get("layer_overhead_s", 0.0)),
        attention_compute_efficiency=float(data.get("attention_compute_efficiency", 0.0)),
        expert_gemm_half_tokens=float(data.get("expert_gemm_half_tokens", 0.0)),
        request_overhead_s=float(data.get("request_overhead_s", 0.0)),
        moe_layer_overhead_s=float(data.get("moe_layer_overhead_s", 0.0)),
        calibrated=bool(data.get("calibrated", True)),
        borrowed_from=str(data.get("borrowed_from", "")),
        layer_floor_s=float(data.get("layer_floor_s", 0.0)),
        hop_latency_s=float(data.get("hop_latency_s", 0.0)),
        sram_reserve_fraction=float(data.get("sram_reserve_fraction", 0.0)),
        kv_sizing_context_tokens=float(data.get("kv_sizing_context_tokens", 4096.0)),
        eager_layer_launch_s=float(data.get("eager_layer_launch_s", 0.0)),
        windowed_kv_full_context=windowed_full,
    )


def calibration_row_fields(data: Mapping[str, Any], metrics: Sequence[str]) -> dict[str, Any]:
    """Validate one row of ``conf/calibration/measurements.yaml``; ``CalibrationRow``'s keywords.

    Raises:
        ConfigError: A value is malformed (named ``calibration[<id>].<key>``).
    """
    row_id = str(data.get("id", "?"))
    prefix = f"calibration[{row_id}]"
    mapping_raw = data.get("mapping")
    mapping: tuple[int, int, bool] | None
    if mapping_raw == "best":
        mapping = None
    elif isinstance(mapping_raw, list) and len(mapping_raw) == 3:
        mapping = (int(mapping_raw[0]), int(mapping_raw[1]), bool(mapping_raw[2]))
    else:
        raise ConfigError(
            f"{prefix}.mapping", f"must be [tp, ep, dp_attention] or best, got {mapping_raw!r}"
        )
    isl_raw = data["isl"]
    isl = tuple(int(v) for v in isl_raw) if isinstance(isl_raw, list) else (int(isl_raw),)
    tpot = data.get("tpot_limit_s")
    return dict(
        id=row_id,
        family=str(data["family"]),
        stack=str(data.get("stack", "")),
        use=require_choice(f"{prefix}.use", str(data["use"]), ("fit", "held_out")),
        metric=require_choice(f"{prefix}.metric", str(data["metric"]), metrics),
        model=str(data["model"]),
        hardware=str(data["hardware"]),
        precision=str(data["precision"]),
        kv_precision=str(data["kv_precision"]),
        mapping=mapping,
        isl=isl,
        osl=int(data["osl"]),
        measured=float(require_positive(f"{prefix}.measured", data["measured"])),
        source=str(data["source"]),
        tpot_limit_s=None if tpot is None else float(tpot),
        batch=int(data.get("batch", 1)),
    )


def lpu_row_fields(data: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """Validate one row of ``conf/calibration/groq_lpu.yaml``; ``LpuRow``'s keyword arguments.

    Raises:
        ConfigError: A required key is missing or a figure is not positive.
    """
    row_id = str(data.get("id", "?"))
    prefix = f"groq_lpu[{row_id}]"
    required = ("model", "hardware", "precision", "kv_precision", "context_tokens", "measured")
    for key in (*required, "source"):
        if key not in data:
            raise ConfigError(f"{prefix}.{key}", "is required")
    chips = data.get("chips")
    return dict(
        id=row_id,
        metric=metric,
        model=str(data["model"]),
        hardware=str(data["hardware"]),
        precision=str(data["precision"]),
        kv_precision=str(data["kv_precision"]),
        context_tokens=float(require_positive(f"{prefix}.context_tokens", data["context_tokens"])),
        measured=float(require_positive(f"{prefix}.measured", data["measured"])),
        chips=None if chips is None else int(require_positive(f"{prefix}.chips", chips)),
        source=str(data["source"]),
    )
