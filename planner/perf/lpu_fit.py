"""Fit the LPU pipeline factors (per-layer floor, per-hop latency) to the Groq rows.

The rows live in ``conf/calibration/groq_lpu.yaml``; ``scripts/calibrate_lpu.py`` reads them, calls
:func:`fit_lpu_factors` and writes ``conf/efficiency/groq_lpu.yaml``.

What is fitted, and what is not:

* Two **speed rows** (Llama-2-70B, 80 layers, at 300 tokens/s; Llama-2-7B, 32 layers, at 750
  tokens/s) fit two parameters: ``layer_floor_s`` (bounded below by 0) and ``hop_latency_s``
  (bounded by 0 and by the chip's C2C figure, ``scale_up_latency_s``: <3 us end-to-end over
  ~5 Dragonfly hops, hardware.md A3). The rows differ in layers (80 vs 32), bytes (~69 GB vs
  ~6.7 GB) and hops per layer (the 70B layer is split over 4 chips, the 7B layer is not), so
  layer-scaled, byte-scaled and hop-scaled time are distinguishable. If a bound binds, the fit
  has fewer effective free parameters than rows and a residual that judges the model.
* ``memory_efficiency`` and ``compute_efficiency`` are NOT fitted: at batch 1 a layer streams its
  share of SRAM in a few microseconds, far below the floor, so the rows only give a lower bound on
  memory efficiency (:attr:`LpuFit.memory_efficiency_floor`); the values stay stated assumptions.
* **Chip-count rows** are not fitted: they check the physical chip sizing
  (``planner.perf.lpu_placement``) with the fitted factors.

Pure: models and systems come in through resolver callables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from planner.perf.efficiency import EfficiencyFactors
from planner.perf.lpu import LpuReplica
from planner.specs.errors import ConfigError
from planner.specs.hardware import System
from planner.specs.model import Model

Resolver = Callable[[str], Any]

FITTED = ("layer_floor_s", "hop_latency_s")
"""Parameters the speed rows fit, in this order."""

_US = 1e-6  # parameters are fitted in microseconds so both are of order one to ten


@dataclass(frozen=True)
class LpuRow:
    """One measured Groq figure and the deployment it was measured on.

    Attributes:
        id: Short name.
        metric: ``decode_tokens_per_s_per_user`` (speed row) or ``chips_per_replica``.
        model: Model config name.
        hardware: Hardware config name.
        precision: Weight precision.
        kv_precision: KV-cache precision.
        context_tokens: Context of the measurement (speed) or the deployment's sizing (chips).
        measured: The figure (tokens/s per user, or chips).
        chips: Chips deployed for a speed row (``None``: sized by the model at the context).
        source: Where the figure comes from.
    """

    id: str
    metric: str
    model: str
    hardware: str
    precision: str
    kv_precision: str
    context_tokens: float
    measured: float
    chips: int | None
    source: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], metric: str) -> LpuRow:
        """Validate one row of ``groq_lpu.yaml`` (:mod:`planner.config.perf_rows`)."""
        from planner.config.perf_rows import lpu_row_fields  # lazily: config imports perf

        return cls(**lpu_row_fields(data, metric))


def load_lpu_rows(data: Mapping[str, Any]) -> tuple[list[LpuRow], list[LpuRow]]:
    """(speed rows, chip-count rows) from the parsed ``conf/calibration/groq_lpu.yaml``."""
    speed = [LpuRow.from_dict(r, "decode_tokens_per_s_per_user") for r in data.get("speed", [])]
    chips = [LpuRow.from_dict(r, "chips_per_replica") for r in data.get("chips", [])]
    return speed, chips


def row_replica(
    row: LpuRow, resolve_model: Resolver, resolve_system: Resolver, efficiency: EfficiencyFactors
) -> LpuReplica:
    """The replica a row was measured on (chips as deployed, or sized at its context)."""
    model: Model = resolve_model(row.model)
    system: System = resolve_system(row.hardware)
    return LpuReplica(
        model,
        system,
        row.precision,
        row.kv_precision,
        efficiency,
        chips=row.chips if row.metric == "decode_tokens_per_s_per_user" else None,
        sizing_context_tokens=row.context_tokens,
    )


def predict_lpu_row(
    row: LpuRow, resolve_model: Resolver, resolve_system: Resolver, efficiency: EfficiencyFactors
) -> float:
    """The model's figure for ``row``."""
    replica = row_replica(row, resolve_model, resolve_system, efficiency)
    if row.metric == "chips_per_replica":
        return float(replica.accelerators)
    return replica.decode_tokens_per_s_per_user(row.context_tokens)


@dataclass(frozen=True)
class LpuRowResult:
    """One row under the fitted factors, with the parts of its per-token time."""

    row: LpuRow
    predicted: float
    error_pct: float
    fitted: bool
    chips: int
    layers: int
    hops: int
    stream_s_per_layer: float
    """One layer without the floor (SRAM streaming or compute, the longer) at the assumed
    efficiencies, s."""


@dataclass(frozen=True)
class LpuFit:
    """Outcome of :func:`fit_lpu_factors`.

    Attributes:
        efficiency: The start factors with the fitted parameters replaced.
        n_rows: Speed rows fitted.
        n_free: Parameters fitted (``len(FITTED)``).
        bounds: Physical bounds of each fitted parameter, s.
        at_bound: Fitted parameters that ended on a bound (each removes one degree of freedom).
        results: Every row (fitted and checked) under the fitted factors.
        memory_efficiency_floor: Lowest memory efficiency with which every speed row stays
            floor-bound (the rows say nothing about memory efficiency above it).
    """

    efficiency: EfficiencyFactors
    n_rows: int
    n_free: int
    bounds: dict[str, tuple[float, float]]
    at_bound: tuple[str, ...]
    results: tuple[LpuRowResult, ...]
    memory_efficiency_floor: float


def _result(
    row: LpuRow,
    resolve_model: Resolver,
    resolve_system: Resolver,
    efficiency: EfficiencyFactors,
    fitted: bool,
) -> LpuRowResult:
    replica = row_replica(row, resolve_model, resolve_system, efficiency)
    predicted = predict_lpu_row(row, resolve_model, resolve_system, efficiency)
    no_floor = LpuReplica(
        replica.model,
        replica.system,
        row.precision,
        row.kv_precision,
        efficiency.replace(layer_floor_s=0.0),
        chips=replica.accelerators,
    )
    stream_s = no_floor.layer_time_s(row.context_tokens)
    return LpuRowResult(
        row=row,
        predicted=predicted,
        error_pct=100.0 * (predicted - row.measured) / row.measured,
        fitted=fitted,
        chips=replica.accelerators,
        layers=replica.model.n_layers,
        hops=replica.placement.hops_per_token,
        stream_s_per_layer=stream_s,
    )


def fit_lpu_factors(
    speed_rows: Sequence[LpuRow],
    chip_rows: Sequence[LpuRow],
    resolve_model: Resolver,
    resolve_system: Resolver,
    start: EfficiencyFactors,
) -> LpuFit:
    """Fit ``layer_floor_s`` and ``hop_latency_s`` to the speed rows; check the chip rows.

    Least squares on log(predicted / measured) within physical bounds: the floor in
    [0, 1 ms], the hop latency in [0, smallest ``scale_up_latency_s`` of the rows' chips].

    Raises:
        ConfigError: No speed rows, or a row's model does not fit its chips.
    """
    if not speed_rows:
        raise ConfigError("groq_lpu.speed", "needs at least one row to fit")
    hop_max_s = min(resolve_system(r.hardware).accelerator.scale_up_latency_s for r in speed_rows)
    bounds = {"layer_floor_s": (0.0, 1e-3), "hop_latency_s": (0.0, hop_max_s)}

    def factors(theta: np.ndarray) -> EfficiencyFactors:
        return start.replace(**{n: float(v) * _US for n, v in zip(FITTED, theta, strict=True)})

    def residuals(theta: np.ndarray) -> np.ndarray:
        eff = factors(theta)
        return np.array(
            [
                math.log(predict_lpu_row(r, resolve_model, resolve_system, eff) / r.measured)
                for r in speed_rows
            ]
        )

    low = np.array([bounds[n][0] for n in FITTED]) / _US
    high = np.array([bounds[n][1] for n in FITTED]) / _US
    result = optimize.least_squares(
        residuals,
        np.array([10.0, high[1] / 2.0]),
        bounds=(low, high),
        x_scale=np.array([10.0, 0.1]),
    )
    # A parameter the optimiser leaves within 0.1% of a bound's span sits on that bound: store the
    # bound itself (not a 1e-27 leftover) and say so.
    theta = result.x.copy()
    at_bound_names = []
    for i, name in enumerate(FITTED):
        tolerance = 1e-3 * (high[i] - low[i]) if math.isfinite(high[i]) else 1e-6
        for edge in (low[i], high[i]):
            if abs(theta[i] - edge) <= tolerance:
                theta[i] = edge
                at_bound_names.append(name)
    at_bound = tuple(at_bound_names)
    efficiency = factors(theta)
    results = tuple(
        [_result(r, resolve_model, resolve_system, efficiency, True) for r in speed_rows]
        + [_result(r, resolve_model, resolve_system, efficiency, False) for r in chip_rows]
    )
    floor = efficiency.layer_floor_s
    eta_floor = max(
        (r.stream_s_per_layer * efficiency.memory_efficiency / floor if floor > 0 else 1.0)
        for r in results
        if r.fitted
    )
    return LpuFit(
        efficiency=efficiency,
        n_rows=len(speed_rows),
        n_free=len(FITTED),
        bounds=bounds,
        at_bound=at_bound,
        results=results,
        memory_efficiency_floor=eta_floor,
    )
