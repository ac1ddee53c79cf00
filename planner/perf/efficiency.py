"""Efficiency factors: the achieved fraction of peak, one set per accelerator family.

The roofline gives what a chip could do; these factors say what serving software achieves on it.
They are fitted once per family by ``scripts/calibrate.py`` to the measured rows of
``shared/reference/calibration.md`` (Hopper rows for ``nvidia_gpu``, Groq rows for
``groq_lpu``) and stored in ``conf/efficiency/<family>.yaml``. They are never tuned per
(model, hardware) pair: Blackwell predictions use the Hopper-fitted set unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from planner.specs.errors import (
    ConfigError,
    reject_unknown_keys,
    require_fraction,
    require_non_negative,
    require_positive,
)


@dataclass(frozen=True)
class EfficiencyFactors:
    """Achieved fractions of peak and fixed overheads for one accelerator family.

    Attributes:
        family: Family key, matches ``Accelerator.family``.
        compute_efficiency: Achieved / peak dense FLOP/s for matmul-heavy work.
        memory_efficiency: Achieved / peak memory bandwidth when streaming weights and KV.
        comm_efficiency: Achieved / peak scale-up link bandwidth for collectives.
        step_overhead_s: Fixed time per batch iteration (scheduler, kernel launches), s.
        expert_memory_efficiency: Achieved / peak bandwidth when grouped-GEMM kernels stream many
            small routed-expert matrices (lower than one large dense GEMM achieves).
        kv_memory_fraction: Fraction of the memory left after weights that holds KV cache
            (the rest is activations, workspace, CUDA graphs).
        sram_usable_fraction: LPU only: fraction of on-chip SRAM usable for weights and KV
            (unused by the per-layer pipeline model, which derives it; see ``planner.perf.lpu``).
        layer_floor_s: LPU only: fixed schedule floor of one layer for one token, s.
        hop_latency_s: LPU only: fixed latency of one chip-to-chip hop (serialization excluded), s.
        sram_reserve_fraction: LPU only: SRAM kept back from weights, KV and activations
            (instruction stream, compiler staging buffers).
        kv_sizing_context_tokens: LPU only: context the chip count is sized for (a full pipeline
            of sequences of this length must fit next to the weights), tokens.
    """

    family: str
    compute_efficiency: float
    memory_efficiency: float
    comm_efficiency: float
    step_overhead_s: float
    kv_memory_fraction: float
    expert_memory_efficiency: float = 1.0
    sram_usable_fraction: float = 1.0
    layer_floor_s: float = 0.0
    hop_latency_s: float = 0.0
    sram_reserve_fraction: float = 0.0
    kv_sizing_context_tokens: float = 4096.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "efficiency") -> EfficiencyFactors:
        """Build and validate from a plain mapping; unknown keys are errors."""
        allowed = {f.name for f in fields(cls)}
        reject_unknown_keys(prefix, data, allowed)
        optional = {
            "sram_usable_fraction", "expert_memory_efficiency", "layer_floor_s", "hop_latency_s",
            "sram_reserve_fraction", "kv_sizing_context_tokens",
        }  # fmt: skip
        missing = sorted(k for k in allowed - optional if k not in data)
        if missing:
            raise ConfigError(f"{prefix}.{missing[0]}", "is required")
        fractions = (
            "compute_efficiency", "memory_efficiency", "comm_efficiency",
            "kv_memory_fraction", "sram_usable_fraction", "expert_memory_efficiency",
        )  # fmt: skip
        for key in fractions:
            if key in data:
                require_fraction(f"{prefix}.{key}", data[key], allow_zero=False)
        require_non_negative(f"{prefix}.step_overhead_s", data["step_overhead_s"])
        for key in ("layer_floor_s", "hop_latency_s"):
            if key in data:
                require_non_negative(f"{prefix}.{key}", data[key])
        if "sram_reserve_fraction" in data:
            require_fraction(f"{prefix}.sram_reserve_fraction", data["sram_reserve_fraction"])
        if "kv_sizing_context_tokens" in data:
            require_positive(f"{prefix}.kv_sizing_context_tokens", data["kv_sizing_context_tokens"])
        return cls(
            family=str(data["family"]),
            compute_efficiency=float(data["compute_efficiency"]),
            memory_efficiency=float(data["memory_efficiency"]),
            comm_efficiency=float(data["comm_efficiency"]),
            step_overhead_s=float(data["step_overhead_s"]),
            kv_memory_fraction=float(data["kv_memory_fraction"]),
            expert_memory_efficiency=float(data.get("expert_memory_efficiency", 1.0)),
            sram_usable_fraction=float(data.get("sram_usable_fraction", 1.0)),
            layer_floor_s=float(data.get("layer_floor_s", 0.0)),
            hop_latency_s=float(data.get("hop_latency_s", 0.0)),
            sram_reserve_fraction=float(data.get("sram_reserve_fraction", 0.0)),
            kv_sizing_context_tokens=float(data.get("kv_sizing_context_tokens", 4096.0)),
        )

    def replace(self, **changes: float) -> EfficiencyFactors:
        """A copy with some factors changed (used by the calibration fit)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return EfficiencyFactors(**values)
