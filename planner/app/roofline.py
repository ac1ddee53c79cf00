"""Static roofline figures of one model on one system, and the catalog-wide comparison.

:func:`roofline` is the computation behind ``planner-roofline`` (specs in, summary dict out, no
I/O); :func:`catalog_shape` is the replica mapping used when every model and hardware pair of the
catalog is swept (README "planner-roofline"); :func:`comparison_rows` turns the summaries of a
``planner-roofline -m hardware=a,b,c`` sweep into one comparison table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from planner import config
from planner.config.options import RooflineOptions
from planner.perf.replica import Replica, at_concurrency, build_replica, roofline_summary
from planner.specs.hardware import System
from planner.specs.model import Model

# Weight precisions tried in order for a catalog sweep: fp8 where the chip has it (every 2026 part
# but Hopper-era LPU v1 runs it natively or through int8), else int8, else bf16.
CATALOG_PRECISIONS = ("fp8", "int8", "bf16")
# GPUs of one replica in a catalog sweep: one 8-GPU tensor-parallel group (or the whole domain
# when it is smaller), the mapping the vendors' MLPerf and InferenceMAX rows use most.
CATALOG_TP = 8


def roofline(model: Model, system: System, options: RooflineOptions) -> dict[str, Any]:
    """The roofline summary of ``model`` on ``system`` (see planner.perf.replica.roofline_summary).

    Raises:
        ConfigError: the mapping is invalid or the model does not fit (one line naming the field).
    """
    efficiency = config.efficiency(system.accelerator.family, options.stack)
    replica = build_replica(
        model,
        system,
        efficiency,
        precision=options.precision,
        kv_precision=options.kv_precision,
        tp=options.tp,
        ep=options.ep,
        dp_attention=options.dp_attention,
        chips=options.chips,
    )
    summary = roofline_summary(
        replica,
        isl=options.isl,
        osl=options.osl,
        tpot_limit_s=options.tpot_limit_s,
        concurrency=options.concurrency,
    )
    summary["curve"] = serving_curve(
        replica, options.isl, options.osl, summary["max_batch"], efficiency.request_overhead_s
    )
    return summary


CURVE_POINTS = 12
"""Most concurrency points of a serving curve (geometric from 1 to the KV-bounded batch)."""


def serving_curve(
    replica: Replica,
    isl: int,
    osl: int,
    max_batch: int,
    request_overhead_s: float = 0.0,
    points: int = CURVE_POINTS,
) -> list[dict[str, float]]:
    """The interactivity/throughput trade-off of one replica.

    Closed-loop concurrency from 1 to the KV-bounded batch (geometric steps), each point's
    tokens/s per user (``1 / TPOT``) and output tokens/s per accelerator
    (:func:`planner.perf.replica.at_concurrency`, with the stack's fixed per-request overhead
    ``request_overhead_s``, s).

    Returns:
        ``[{"concurrency", "tokens_per_s_per_user", "output_tokens_per_s_per_accelerator"}]``,
        in rising concurrency (empty when not even one sequence fits).
    """
    if max_batch < 1:
        return []
    grid = sorted({round(float(c)) for c in np.geomspace(1, max_batch, num=points)})
    curve = []
    for concurrency in grid:
        point = at_concurrency(replica, concurrency, isl, osl, request_overhead_s)
        curve.append(
            {
                "concurrency": float(concurrency),
                "tokens_per_s_per_user": point.tokens_per_s_per_user,
                "output_tokens_per_s_per_accelerator": point.output_tokens_per_s_per_accelerator,
            }
        )
    return curve


def catalog_shape(model: Model, system: System) -> dict[str, Any]:
    """The replica mapping for a catalog-wide sweep of ``model`` on ``system``.

    GPUs (and HBM ASICs modelled as GPUs): ``tp = min(8, scale-up domain)``; MoE models run
    expert-parallel over those GPUs with data-parallel attention (``ep = tp``,
    ``dp_attention = true``), dense models pure tensor-parallel. LPUs: ``tp = ep = 1`` (the chain
    length comes from the weights, planner/perf/lpu.py). Precision: the first of fp8, int8, bf16
    the chip supports.

    Returns:
        Options for :func:`planner.config.roofline_options` (precision, tp, ep, dp_attention).
    """
    accelerator = system.accelerator
    precision = next(
        (p for p in CATALOG_PRECISIONS if accelerator.supports(p)), accelerator.precisions[0]
    )
    if accelerator.kind == "lpu":
        return {"precision": precision, "tp": 1, "ep": 1, "dp_attention": False}
    tp = min(CATALOG_TP, system.scale_up_domain_size)
    moe = model.moe is not None
    return {"precision": precision, "tp": tp, "ep": tp if moe else 1, "dp_attention": moe}


# Columns of the comparison table, in order (summary keys; units in the names).
COMPARISON_COLUMNS = (
    "hardware",
    "model",
    "precision",
    "accelerators_per_replica",
    "decode_tokens_per_s_per_user",
    "max_output_tokens_per_s_per_accelerator",
    "max_output_tokens_per_s_per_accelerator_at_tpot",
    "batch_at_tpot",
    "prefill_time_s",
    "max_batch",
    "calibrated",
    "borrowed_from",
    "hardware_confirmed",
)


def comparison_rows(summaries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per summary with :data:`COMPARISON_COLUMNS`, plus a ``caveat`` column.

    ``caveat`` is empty for a part with fitted factors and confirmed figures, else it says
    "uncalibrated (borrowed from X)" and/or "unconfirmed figures" so the table cannot be read as
    a like-for-like ranking. Rows are sorted by saturated tokens/s per accelerator, best first.
    """
    rows = []
    for summary in summaries:
        row = {column: summary.get(column) for column in COMPARISON_COLUMNS}
        notes = []
        if not summary.get("calibrated", True):
            donor = summary.get("borrowed_from") or "a neighbouring family"
            notes.append(f"uncalibrated (borrowed from {donor})")
        if not summary.get("hardware_confirmed", True):
            notes.append("unconfirmed figures")
        row["caveat"] = "; ".join(notes)
        rows.append(row)
    rows.sort(key=lambda r: -float(r["max_output_tokens_per_s_per_accelerator"] or 0.0))
    return rows
