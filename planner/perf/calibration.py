"""Fit the efficiency factors of one accelerator family to measured figures.

The measured rows live in ``conf/calibration/measurements.yaml`` (each with its source); the
script ``scripts/calibrate.py`` reads them, calls :func:`fit_family` once per family and writes
``conf/efficiency/<family>.yaml``. Everything here is pure: models and systems come in through
resolver callables.

* ``nvidia_gpu``: compute, memory and communication efficiency and the per-step overhead are
  fitted together by robust least squares on log errors over all fitted Hopper rows.
* ``groq_lpu`` is fitted elsewhere: ``planner.perf.lpu_fit`` (per-layer pipeline model), called
  by ``scripts/calibrate_lpu.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from planner.perf.efficiency import EfficiencyFactors
from planner.perf.replica import Replica, build_replica, serving_point
from planner.specs.errors import ConfigError, require_choice, require_positive
from planner.specs.hardware import System
from planner.specs.model import Model

METRICS = (
    "output_tokens_per_s_per_accelerator",
    "decode_tokens_per_s_per_user",
    "chips_per_replica",
)
CANDIDATE_DEGREES = (1, 2, 4, 8)


@dataclass(frozen=True)
class CalibrationRow:
    """One measured figure and the setup it was measured on (see measurements.yaml)."""

    id: str
    family: str
    use: str
    metric: str
    model: str
    hardware: str
    precision: str
    kv_precision: str
    mapping: tuple[int, int] | None  # None = best valid mapping
    isl: tuple[int, ...]  # one value, or (low, high) for a held-out band
    osl: int
    measured: float
    source: str
    tpot_limit_s: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationRow:
        """Validate one row mapping."""
        row_id = str(data.get("id", "?"))
        prefix = f"calibration[{row_id}]"
        mapping_raw = data.get("mapping")
        if mapping_raw == "best":
            mapping = None
        elif isinstance(mapping_raw, list) and len(mapping_raw) == 2:
            mapping = (int(mapping_raw[0]), int(mapping_raw[1]))
        else:
            raise ConfigError(f"{prefix}.mapping", f"must be [tp, ep] or best, got {mapping_raw!r}")
        isl_raw = data["isl"]
        isl = tuple(int(v) for v in isl_raw) if isinstance(isl_raw, list) else (int(isl_raw),)
        tpot = data.get("tpot_limit_s")
        return cls(
            id=row_id,
            family=str(data["family"]),
            use=require_choice(f"{prefix}.use", str(data["use"]), ("fit", "held_out")),
            metric=require_choice(f"{prefix}.metric", str(data["metric"]), METRICS),
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
        )


Resolver = Callable[[str], Any]


def _mappings(model: Model, row: CalibrationRow, domain: int) -> list[tuple[int, int]]:
    if row.mapping is not None:
        return [row.mapping]
    experts = model.moe.n_routed_experts if model.moe else 1
    return [
        (tp, ep)
        for tp in CANDIDATE_DEGREES
        for ep in CANDIDATE_DEGREES
        if tp * ep <= domain and experts % ep == 0 and (ep == 1 or model.moe is not None)
    ]


def _replicas(
    row: CalibrationRow, model: Model, system: System, efficiency: EfficiencyFactors
) -> list[Replica]:
    replicas: list[Replica] = []
    for tp, ep in _mappings(model, row, system.scale_up_domain_size):
        try:
            replica = build_replica(
                model, system, efficiency, precision=row.precision,
                kv_precision=row.kv_precision, tp=tp, ep=ep,
            )  # fmt: skip
            replica.require_fit(max(row.isl) + row.osl)
        except ConfigError:
            continue
        replicas.append(replica)
    if not replicas:
        raise ConfigError(f"calibration[{row.id}]", "no valid mapping fits the model")
    return replicas


def predict(
    row: CalibrationRow,
    resolve_model: Resolver,
    resolve_system: Resolver,
    efficiency: EfficiencyFactors,
) -> tuple[float, ...]:
    """The cost model's figure for ``row``: one value, or (at low ISL, at high ISL) for a band."""
    model: Model = resolve_model(row.model)
    system: System = resolve_system(row.hardware)
    replicas = _replicas(row, model, system, efficiency)
    values = []
    for isl in row.isl:
        if row.metric == "chips_per_replica":
            values.append(float(replicas[0].accelerators))
        elif row.metric == "decode_tokens_per_s_per_user":
            values.append(max(r.decode_tokens_per_s_per_user(isl) for r in replicas))
        else:
            values.append(
                max(
                    serving_point(r, isl, row.osl, row.tpot_limit_s).output_tokens_per_s
                    / r.accelerators
                    for r in replicas
                )
            )
    return tuple(values)


def percentage_error(predicted: float, measured: float) -> float:
    """Signed error of a prediction in percent of the measured figure."""
    return 100.0 * (predicted - measured) / measured


def fit_gpu_family(
    rows: Sequence[CalibrationRow],
    resolve_model: Resolver,
    resolve_system: Resolver,
    start: EfficiencyFactors,
) -> EfficiencyFactors:
    """Fit the five GPU-family factors to the ``fit`` rows.

    Minimises a Cauchy loss of log(predicted / measured): a row off by 2x in either direction
    counts the same, and a cluster of rows the physics does not capture (see the README's
    calibration notes) cannot drag the factors that describe the rest. Efficiencies are bounded
    above by what was measured on real hardware: 92% of HBM bandwidth (Azure ND GB200 v6 STREAM,
    hardware.md A1) and 90% of dense peak FLOP/s.
    """
    fit_rows = [r for r in rows if r.use == "fit" and r.family == start.family]
    names = (
        "compute_efficiency", "memory_efficiency", "comm_efficiency",
        "expert_memory_efficiency", "step_overhead_s",
    )  # fmt: skip
    # The overhead is fitted in ms so every parameter is of order one.
    scale = np.array([1.0, 1.0, 1.0, 1.0, 1e-3])

    def factors(theta: np.ndarray) -> EfficiencyFactors:
        values = theta * scale
        return start.replace(**{n: float(v) for n, v in zip(names, values, strict=True)})

    def residuals(theta: np.ndarray) -> np.ndarray:
        eff = factors(theta)
        return np.array(
            [
                math.log(predict(r, resolve_model, resolve_system, eff)[0] / r.measured)
                for r in fit_rows
            ]
        )

    theta0 = np.array([getattr(start, n) for n in names]) / scale
    result = optimize.least_squares(
        residuals,
        theta0,
        bounds=([0.05, 0.05, 0.05, 0.05, 0.0], [0.9, 0.92, 0.92, 0.92, 50.0]),
        loss="cauchy",
        f_scale=0.1,
        diff_step=1e-3,
    )
    return factors(result.x)
