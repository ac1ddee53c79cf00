"""Accelerators and the systems (nodes, racks) that hold them.

Pure data: frozen, validated dataclasses built from plain mappings (the CLI turns Hydra config
into mappings; nothing here imports Hydra). Figures and their sources live in ``conf/hardware/``.

Precisions and the bytes each weight takes:

* ``bf16`` 2 bytes, ``fp8`` and ``int8`` 1 byte.
* ``fp4`` 0.5625 bytes: NVFP4 stores 4-bit values in 16-element micro-blocks, each with an FP8
  (E4M3) scale, i.e. 4 + 8/16 = 4.5 bits per weight (NVIDIA, "Introducing NVFP4 for Efficient and
  Accurate Low-Precision Inference", developer blog, 2025). The per-tensor FP32 scale is negligible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from planner.specs.errors import (
    ConfigError,
    require_choice,
    require_non_negative,
    require_positive,
    require_positive_int,
)

PRECISION_BYTES_PER_WEIGHT: dict[str, float] = {
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5625,
}
PRECISIONS = tuple(PRECISION_BYTES_PER_WEIGHT)
ACCELERATOR_KINDS = ("gpu", "lpu")

AcceleratorKind = Literal["gpu", "lpu"]


@dataclass(frozen=True)
class Accelerator:
    """One chip: a GPU with HBM or an LPU with on-chip SRAM.

    Attributes:
        name: Config name, e.g. ``gb200``.
        kind: ``gpu`` or ``lpu``.
        family: Key of the efficiency-factor set fitted by ``scripts/calibrate.py``
            (``nvidia_gpu`` or ``groq_lpu``): one set per family, never per (model, hardware) pair.
        memory_bytes: Usable memory (HBM for GPUs, SRAM for LPUs), bytes.
        memory_bandwidth_bytes_per_s: Peak memory bandwidth, bytes/s.
        peak_flops_per_s: Dense peak FLOP/s (or OP/s for int8) per precision, as sorted
            ``(precision, flops)`` pairs; a precision the chip lacks is absent.
        idle_power_w: Draw when idle, W.
        max_power_w: TDP/TGP at full load, W.
        scale_up_bandwidth_bytes_per_s: Scale-up link bandwidth per chip per direction, bytes/s.
        scale_up_latency_s: Latency of one collective step / hop on the scale-up fabric, s.
        unit_price_usd: Purchase price of one chip (or its share of a board), USD.
        confirmed: False for figures known only from press (e.g. LPU v2).
    """

    name: str
    kind: AcceleratorKind
    family: str
    memory_bytes: float
    memory_bandwidth_bytes_per_s: float
    peak_flops_per_s: tuple[tuple[str, float], ...]
    idle_power_w: float
    max_power_w: float
    scale_up_bandwidth_bytes_per_s: float
    scale_up_latency_s: float
    unit_price_usd: float
    confirmed: bool = True

    def __post_init__(self) -> None:
        p = "hardware.accelerator"
        require_choice(f"{p}.kind", self.kind, ACCELERATOR_KINDS)
        for name in (
            "memory_bytes",
            "memory_bandwidth_bytes_per_s",
            "max_power_w",
            "scale_up_bandwidth_bytes_per_s",
            "unit_price_usd",
        ):
            require_positive(f"{p}.{name}", getattr(self, name))
        require_non_negative(f"{p}.idle_power_w", self.idle_power_w)
        require_non_negative(f"{p}.scale_up_latency_s", self.scale_up_latency_s)
        if self.idle_power_w > self.max_power_w:
            raise ConfigError(
                f"{p}.idle_power_w",
                f"must be <= max_power_w ({self.max_power_w}), got {self.idle_power_w}",
            )
        if not self.peak_flops_per_s:
            raise ConfigError(f"{p}.peak_flops_per_s", "must map precision -> FLOP/s")
        for precision, flops in self.peak_flops_per_s:
            require_choice(f"{p}.peak_flops_per_s", precision, PRECISIONS)
            require_positive(f"{p}.peak_flops_per_s.{precision}", flops)

    def supports(self, precision: str) -> bool:
        """Whether the chip has native matmul support for ``precision``."""
        return any(p == precision for p, _ in self.peak_flops_per_s)

    @property
    def precisions(self) -> tuple[str, ...]:
        """Precisions the chip supports natively."""
        return tuple(p for p, _ in self.peak_flops_per_s)

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision``.

        Raises:
            ConfigError: ``precision`` is unknown or the chip lacks it.
        """
        require_choice("precision", precision, PRECISIONS)
        for p, flops in self.peak_flops_per_s:
            if p == precision:
                return flops
        raise ConfigError(
            "precision",
            f"{precision} is not supported by {self.name}; allowed: {', '.join(self.precisions)}",
        )


@dataclass(frozen=True)
class System:
    """A purchasable system of accelerators and how systems stack into racks.

    For NVL72 the system is the rack; for HGX it is one 8-GPU node; for Groq a GroqRack.

    Attributes:
        name: Config name, e.g. ``gb200_nvl72``.
        accelerator: The chip.
        accelerators_per_system: Chips in one system.
        scale_up_domain_size: Chips sharing the scale-up fabric (NVLink domain, LPU chain); a
            replica's tensor/expert-parallel group must fit inside one domain (GPUs).
        systems_per_rack: Systems in one rack (1 for NVL72 / GroqRack).
        accelerators_per_host: Chips behind one host (an HGX node, an NVL72 compute tray, a
            GroqNode): what a ``host`` failure takes down.
        system_power_kw: Maximum IT power of one system incl. hosts, switches, fans, kW.
        system_capex_usd: Purchase price of one system, USD.
    """

    name: str
    accelerator: Accelerator
    accelerators_per_system: int
    scale_up_domain_size: int
    systems_per_rack: int
    system_power_kw: float
    system_capex_usd: float
    accelerators_per_host: int = 8

    def __post_init__(self) -> None:
        for name in (
            "accelerators_per_system",
            "scale_up_domain_size",
            "systems_per_rack",
            "accelerators_per_host",
        ):
            require_positive_int(f"hardware.{name}", getattr(self, name))
        require_positive("hardware.system_power_kw", self.system_power_kw)
        require_positive("hardware.system_capex_usd", self.system_capex_usd)

    @property
    def accelerators_per_rack(self) -> int:
        """Chips in one rack."""
        return self.accelerators_per_system * self.systems_per_rack
