"""Studies answered from static figures (rooflines), no simulation.

* ``lpu_latency``: per-user speed and chips / racks of (model, hardware) replicas.
* ``long_context``: decode speed and memory per sequence of a hybrid- and a full-attention model.
* ``silicon_cases``: :func:`planner.app.silicon.compare_cases` of the study's cases.
* ``long_documents``: :func:`planner.app.silicon.document_costs` of the study's cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from planner import config
from planner.app.silicon import case_replica, compare_cases, document_costs
from planner.app.studies_base import StudyResult, study_block
from planner.config.options import LongContextModel, LpuLatencyCase
from planner.perf.replica import build_replica
from planner.specs.errors import ConfigError, require_positive, require_positive_int


def lpu_latency(cfg: Mapping[str, Any], base_dir: Path | None = None) -> StudyResult:
    """Per-user decode speed and chips/racks per replica for each (model, hardware) case."""
    study = study_block(cfg)
    cases = study.get("cases")
    if not isinstance(cases, Mapping) or not cases:
        raise ConfigError(
            "study.cases",
            "must map case names to {model, hardware, precision, tp, ep, dp_attention}",
        )
    context = require_positive_int("study.context_tokens", study.get("context_tokens", 4096))
    rows = {}
    for name, raw in cases.items():
        prefix = f"study.cases.{name}"
        case = config.validate(LpuLatencyCase, raw, prefix)
        system = config.named_system(case.hardware, f"{prefix}.hardware")
        replica = case_replica(case, config.named_model(case.model, f"{prefix}.model"), system)
        replica.require_fit(context)
        rows[str(name)] = {
            "model": case.model,
            "hardware": system.name,
            "user_tokens_per_s": replica.decode_tokens_per_s_per_user(context),
            "chips_per_replica": replica.accelerators,
            "racks_per_replica": replica.accelerators / system.accelerators_per_rack,
        }
    answer = f"Single-user decode at {context:,} tokens of context: " + "; ".join(
        f"{n}: {r['user_tokens_per_s']:,.0f} tokens/s on {r['chips_per_replica']:,} chips "
        f"({r['racks_per_replica']:,.2f} racks)"
        for n, r in rows.items()
    )
    return {"answer": answer + ".", "cases": rows, "context_tokens": context}, {}


def _contexts(study: Mapping[str, Any]) -> list[int]:
    contexts = study.get("contexts", [8192, 32768, 131072, 262144])
    if isinstance(contexts, (str, bytes)) or not isinstance(contexts, list) or not contexts:
        raise ConfigError("study.contexts", f"must be a non-empty list of tokens, got {contexts!r}")
    return [require_positive_int(f"study.contexts[{i}]", c) for i, c in enumerate(contexts)]


def long_context(cfg: Mapping[str, Any], base_dir: Path | None = None) -> StudyResult:
    """Decode speed and memory per sequence of a hybrid- and a full-attention model by context."""
    study = study_block(cfg)
    system = config.named_system(study.get("hardware", "gb200_nvl72"), "study.hardware")
    contexts = _contexts(study)
    batch = require_positive_int("study.batch", study.get("batch", 8))
    models = study.get("models")
    if not isinstance(models, Mapping) or set(models) != {"hybrid", "full"}:
        raise ConfigError("study.models", "must name a 'hybrid' and a 'full' model case")
    replicas = {}
    for role, raw in models.items():
        case = config.validate(LongContextModel, raw, f"study.models.{role}")
        model = config.named_model(case.model, f"study.models.{role}.model")
        replicas[role] = build_replica(
            model,
            system,
            config.efficiency(system.accelerator.family),
            precision=case.precision,
            kv_precision="bf16",
            tp=case.tp,
            ep=case.ep,
            dp_attention=case.dp_attention,
        )
    rows: dict[str, dict[str, float]] = {}
    for context in contexts:
        row: dict[str, float] = {}
        for role, replica in replicas.items():
            step = replica.step_time_s(batch, batch * float(context))
            row[f"{role}_tokens_per_s_per_user"] = 1.0 / step
            row[f"{role}_gib_per_sequence"] = (
                replica.model.kv_bytes_for_context(context, 2.0) / 2**30
            )
        row["speed_ratio"] = row["hybrid_tokens_per_s_per_user"] / row["full_tokens_per_s_per_user"]
        row["memory_ratio"] = row["full_gib_per_sequence"] / row["hybrid_gib_per_sequence"]
        rows[f"{context // 1024}K"] = row
    answer = (
        f"{replicas['hybrid'].model.name} against {replicas['full'].model.name} on "
        f"{system.name} (batch {batch}): decode "
        + ", ".join(f"{k} {r['speed_ratio']:.1f}x faster" for k, r in rows.items())
        + "; memory per sequence "
        + ", ".join(f"{k} {r['memory_ratio']:.1f}x smaller" for k, r in rows.items())
    )
    chart = {
        "x": contexts,
        "ys": {
            "decode speed ratio (hybrid / full)": [r["speed_ratio"] for r in rows.values()],
            "memory ratio (full / hybrid)": [r["memory_ratio"] for r in rows.values()],
        },
        "title": "Hybrid (Gated DeltaNet) vs full attention by context",
        "xlabel": "context tokens",
        "ylabel": "ratio",
    }
    return {"answer": answer + ".", "contexts": rows, "batch": batch}, {"long_context.png": chart}


def silicon_cases(cfg: Mapping[str, Any], base_dir: Path | None = None) -> StudyResult:
    """Latency-sensitive and batch figures of (model, hardware) cases (planner.app.silicon)."""
    study = study_block(cfg)
    summary = compare_cases(
        study.get("cases") or {},
        isl=require_positive_int("study.isl", study.get("isl", 2048)),
        osl=require_positive_int("study.osl", study.get("osl", 512)),
        tpot_limit_s=float(study.get("tpot_limit_s", 0.05)),
    )
    return summary, {}


def long_documents(cfg: Mapping[str, Any], base_dir: Path | None = None) -> StudyResult:
    """Cost per document and memory fit of long documents per model case (planner.app.silicon)."""
    study = study_block(cfg)
    economics = config.economics(cfg.get("economics") or {})
    claim = study.get("claimed_ratio")
    summary = document_costs(
        study.get("cases") or {},
        study.get("documents") or {},
        economics,
        claimed_ratio=None
        if claim is None
        else float(require_positive("study.claimed_ratio", claim)),
    )
    return summary, {}
