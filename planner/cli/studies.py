"""Studies: scenarios that answer a question by comparing runs or rooflines, not one simulation.

A scenario file with a ``study:`` block is run by ``planner scenario=NAME`` as a study. Its
``kind`` picks the question; ``variants`` (where used) are config overrides merged into the
scenario's own config, one simulation each, all with the same seed (common random numbers).
Every study returns a summary with an ``answer`` sentence stating the result in numbers, plus
per-variant figures, and the PNG charts for the report.

Kinds:

* ``hybrid_vs_gpu``: per-user decode speed, TTFT and cost per million tokens of fleets.
* ``fanout_tail``: tree p99 against call p99 for several fan-outs at equal load.
* ``shared_prefix``: cost of a 4-agent tree with and without prefix sharing, against one call.
* ``lpu_latency``: per-user speed and chips / racks of models on GPU and LPU replicas (roofline).
* ``long_context``: decode speed and memory per sequence of two models across contexts.
* ``silicon_cases``: single-user speed and batch throughput per accelerator and per $M of
  hardware of (model, hardware) cases (roofline; planner/app/silicon.py).
* ``long_documents``: cost per document and memory fit of long documents per model case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from planner import config
from planner.cli.builders import build_economics, build_fleet, build_workload, load_named
from planner.cli.common import load_efficiency, to_mapping
from planner.config.options import LongContextModel, LpuLatencyCase
from planner.econ.tco import cost_summary, pool_cost
from planner.perf.replica import build_replica
from planner.report.plots import line_png
from planner.sim.engine import SimulationResult, simulate
from planner.sim.metrics import summarize
from planner.specs.errors import (
    ConfigError,
    require_choice,
    require_positive,
    require_positive_int,
)
from planner.specs.hardware import System
from planner.specs.model import Model

StudyResult = tuple[dict[str, Any], dict[str, bytes]]


def _variant_config(cfg: DictConfig, overrides: Mapping[str, Any], name: str) -> DictConfig:
    """The scenario config with a variant's dotted-key overrides applied."""
    variant = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    assert isinstance(variant, DictConfig)
    OmegaConf.set_struct(variant, False)
    for key, value in overrides.items():
        if isinstance(value, str) and value.startswith("@"):
            # "@fleet/gb200_prefill_lpu_decode": a whole config group option
            group, _, option = value[1:].partition("/")
            value = load_named(group, option, f"study.variants.{name}.{key}")
        try:
            OmegaConf.update(variant, str(key), value, merge=False)
        except Exception as error:  # an override OmegaConf cannot apply
            raise ConfigError(f"study.variants.{name}.{key}", str(error).splitlines()[0]) from None
    return variant


def run_variant(cfg: DictConfig) -> tuple[dict[str, Any], SimulationResult]:
    """Simulate one variant and summarize it with costs (as ``planner`` does)."""
    fleet = build_fleet(cfg.get("fleet"))
    workload = build_workload(cfg.get("workload"))
    slo = config.slo(to_mapping(cfg.get("slo") or {}, "slo"))
    seed = config.seed(cfg.get("seed", 0))
    economics = build_economics(cfg.get("economics"))
    result = simulate(fleet, workload, seed=seed)
    summary = summarize(result, slo)
    summary["cost"] = cost_summary(
        [
            pool_cost(
                p.name, p.system, p.racks, summary["pools"][p.name]["power_kw_mean"], economics
            )
            for p in fleet.pools
        ],
        output_tokens_per_s=summary["throughput"]["output_tokens_per_s"],
        trees_per_s=summary["throughput"]["trees_per_s"],
        economics=economics,
    )
    summary["fleet"] = {
        p.name: {"role": p.role, "hardware": p.system.name, "model": p.model.name, "racks": p.racks}
        for p in fleet.pools
    }
    return summary, result


def _variants(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    study = to_mapping(cfg.get("study"), "study")
    variants = study.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ConfigError("study.variants", "must map variant names to config overrides")
    return {str(k): dict(v or {}) for k, v in variants.items()}


def _run_variants(cfg: DictConfig) -> dict[str, tuple[dict[str, Any], SimulationResult]]:
    return {
        name: run_variant(_variant_config(cfg, overrides, name))
        for name, overrides in _variants(cfg).items()
    }


def _user_tokens_per_s(result: SimulationResult) -> float:
    """Median per-user decode speed over calls with more than one output token, tokens/s."""
    output = result.trees.output_tokens
    decode = result.finish_s - result.first_token_s
    mask = (output > 1) & np.isfinite(decode) & (decode > 0)
    return float(np.median((output[mask] - 1) / decode[mask])) if mask.any() else float("nan")


def hybrid_vs_gpu(cfg: DictConfig) -> StudyResult:
    """Per-user decode speed, TTFT and cost per million output tokens of each fleet variant."""
    runs = _run_variants(cfg)
    rows = {}
    for name, (summary, result) in runs.items():
        rows[name] = {
            "user_tokens_per_s_p50": _user_tokens_per_s(result),
            "ttft_s_p50": summary["calls"]["ttft_s"]["p50"],
            "ttft_s_p99": summary["calls"]["ttft_s"]["p99"],
            "usd_per_million_output_tokens": summary["cost"]["usd_per_million_output_tokens"],
            "capex_usd": summary["cost"]["capex_usd"],
            "racks": {k: v["racks"] for k, v in summary["fleet"].items()},
        }
    names = list(rows)
    base, other = names[0], names[-1]
    speedup = rows[other]["user_tokens_per_s_p50"] / rows[base]["user_tokens_per_s_p50"]
    parts = [
        f"{n}: {r['user_tokens_per_s_p50']:,.0f} tokens/s per user, TTFT p50 "
        f"{r['ttft_s_p50'] * 1e3:,.0f} ms / p99 {r['ttft_s_p99'] * 1e3:,.0f} ms, "
        f"${r['usd_per_million_output_tokens']:,.2f} per million output tokens"
        for n, r in rows.items()
    ]
    comparison = f"{speedup:,.1f}x faster" if speedup >= 1.0 else f"{1.0 / speedup:,.1f}x slower"
    answer = "; ".join(parts) + f". {other} decodes {comparison} per user than {base}."
    return {"answer": answer, "variants": rows, "speedup": speedup}, {}


def fanout_tail(cfg: DictConfig) -> StudyResult:
    """Tree p99 against call p99 for each fan-out variant (same calls/s)."""
    runs = _run_variants(cfg)
    rows = {}
    for name, (summary, _) in runs.items():
        tree_p99 = summary["trees"]["e2e_s"]["p99"]
        call_p99 = summary["calls"]["e2e_s"]["p99"]
        rows[name] = {
            "tree_e2e_s_p99": tree_p99,
            "call_e2e_s_p99": call_p99,
            "tree_to_call_p99": tree_p99 / call_p99,
            "utilization": next(iter(summary["pools"].values()))["utilization"],
            "calls_per_tree": summary["trees"]["calls_per_tree_mean"],
        }
    answer = "Tree p99 / call p99 at equal load: " + ", ".join(
        f"{n} {r['tree_to_call_p99']:.2f} (tree {r['tree_e2e_s_p99']:.1f} s, call "
        f"{r['call_e2e_s_p99']:.1f} s, utilization {r['utilization']:.0%})"
        for n, r in rows.items()
    )
    chart = line_png(
        list(range(len(rows))),
        {"tree p99 / call p99": [r["tree_to_call_p99"] for r in rows.values()]},
        title="Fan-out amplifies the tail: " + " vs ".join(rows),
        xlabel="variant (" + ", ".join(rows) + ")",
        ylabel="tree p99 / call p99",
    )
    return {"answer": answer + ".", "variants": rows}, {"fanout_tail.png": chart}


def shared_prefix(cfg: DictConfig) -> StudyResult:
    """Accelerator time per tree of each variant, relative to the ``single`` variant."""
    runs = _run_variants(cfg)
    if "single" not in runs:
        raise ConfigError("study.variants", "needs a variant named 'single' (one call per tree)")
    rows = {}
    for name, (summary, result) in runs.items():
        # Offline batch: the fleet is saturated until it drains, so makespan x accelerators is
        # the capacity the queries consumed.
        accelerators = sum(p.accelerators for p in result.pools)
        trees = max(summary["trees"]["completed"], 1)
        rows[name] = {
            "accelerator_s_per_tree": result.sim_time_s * accelerators / trees,
            "prefix_cached_tokens": summary["calls"]["prefix_cached_tokens"],
            "calls_per_tree": summary["trees"]["calls_per_tree_mean"],
        }
    single = rows["single"]["accelerator_s_per_tree"]
    for row in rows.values():
        row["cost_vs_single_call"] = row["accelerator_s_per_tree"] / single
    answer = "Accelerator time per query relative to a single call: " + ", ".join(
        f"{n} {r['cost_vs_single_call']:.2f}x" for n, r in rows.items() if n != "single"
    )
    return {"answer": answer + ".", "variants": rows}, {}


def _system(name: str, field: str) -> System:
    return config.system(load_named("hardware", name, field), field)


def _model(name: str, field: str) -> Model:
    return config.model(load_named("model", name, field), field)


def lpu_latency(cfg: DictConfig) -> StudyResult:
    """Per-user decode speed and chips/racks per replica for each (model, hardware) case."""
    study = to_mapping(cfg.get("study"), "study")
    cases = study.get("cases")
    if not isinstance(cases, dict) or not cases:
        raise ConfigError(
            "study.cases",
            "must map case names to {model, hardware, precision, tp, ep, dp_attention}",
        )
    context = require_positive_int("study.context_tokens", study.get("context_tokens", 4096))
    rows = {}
    for name, raw in cases.items():
        prefix = f"study.cases.{name}"
        case = config.validate(LpuLatencyCase, raw, prefix)
        system = _system(case.hardware, f"{prefix}.hardware")
        replica = build_replica(
            _model(case.model, f"{prefix}.model"), system,
            load_efficiency(system.accelerator.family), precision=case.precision,
            kv_precision=case.kv_precision, tp=case.tp, ep=case.ep,
            dp_attention=case.dp_attention, chips=case.chips,
        )  # fmt: skip
        replica.require_fit(context)
        rows[str(name)] = {
            "model": case.model,
            "hardware": system.name,
            "user_tokens_per_s": replica.decode_tokens_per_s_per_user(context),
            "chips_per_replica": replica.accelerators,
            "racks_per_replica": replica.accelerators / system.accelerators_per_rack,
        }
    answer = (
        "Single-user decode at "
        + f"{context:,} tokens of context: "
        + "; ".join(
            f"{n}: {r['user_tokens_per_s']:,.0f} tokens/s on {r['chips_per_replica']:,} chips "
            f"({r['racks_per_replica']:,.2f} racks)"
            for n, r in rows.items()
        )
    )
    return {"answer": answer + ".", "cases": rows, "context_tokens": context}, {}


def long_context(cfg: DictConfig) -> StudyResult:
    """Decode speed and memory per sequence of a hybrid- and a full-attention model by context."""
    study = to_mapping(cfg.get("study"), "study")
    system = _system(study.get("hardware", "gb200_nvl72"), "study.hardware")
    contexts = study.get("contexts", [8192, 32768, 131072, 262144])
    if isinstance(contexts, (str, bytes)) or not isinstance(contexts, list) or not contexts:
        raise ConfigError("study.contexts", f"must be a non-empty list of tokens, got {contexts!r}")
    for i, context in enumerate(contexts):
        require_positive_int(f"study.contexts[{i}]", context)
    batch = require_positive_int("study.batch", study.get("batch", 8))
    models = study.get("models")
    if not isinstance(models, dict) or set(models) != {"hybrid", "full"}:
        raise ConfigError("study.models", "must name a 'hybrid' and a 'full' model case")
    replicas = {}
    for role, raw in models.items():
        case = config.validate(LongContextModel, raw, f"study.models.{role}")
        model = _model(case.model, f"study.models.{role}.model")
        replicas[role] = build_replica(
            model, system, load_efficiency(system.accelerator.family),
            precision=case.precision, kv_precision="bf16", tp=case.tp, ep=case.ep,
            dp_attention=case.dp_attention,
        )  # fmt: skip
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
    chart = line_png(
        contexts,
        {
            "decode speed ratio (hybrid / full)": [r["speed_ratio"] for r in rows.values()],
            "memory ratio (full / hybrid)": [r["memory_ratio"] for r in rows.values()],
        },
        title="Hybrid (Gated DeltaNet) vs full attention by context",
        xlabel="context tokens",
        ylabel="ratio",
    )
    return {"answer": answer + ".", "contexts": rows, "batch": batch}, {"long_context.png": chart}


def silicon_cases(cfg: DictConfig) -> StudyResult:
    """Latency-sensitive and batch figures of (model, hardware) cases (planner.app.silicon)."""
    from planner.app.silicon import compare_cases

    study = to_mapping(cfg.get("study"), "study")
    summary = compare_cases(
        study.get("cases") or {},
        isl=require_positive_int("study.isl", study.get("isl", 2048)),
        osl=require_positive_int("study.osl", study.get("osl", 512)),
        tpot_limit_s=float(study.get("tpot_limit_s", 0.05)),
    )
    return summary, {}


def long_documents(cfg: DictConfig) -> StudyResult:
    """Cost per document and memory fit of long documents per model case (planner.app.silicon)."""
    from planner.app.silicon import document_costs

    study = to_mapping(cfg.get("study"), "study")
    economics = build_economics(cfg.get("economics"))
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


STUDIES: dict[str, Callable[[DictConfig], StudyResult]] = {
    "hybrid_vs_gpu": hybrid_vs_gpu,
    "fanout_tail": fanout_tail,
    "shared_prefix": shared_prefix,
    "lpu_latency": lpu_latency,
    "long_context": long_context,
    "silicon_cases": silicon_cases,
    "long_documents": long_documents,
}


def run_study(cfg: DictConfig) -> StudyResult:
    """Run the scenario's study; the summary carries ``scenario``, ``study`` and ``answer``."""
    study = to_mapping(cfg.get("study"), "study")
    kind = require_choice("study.kind", str(study.get("kind")), STUDIES)
    summary, images = STUDIES[kind](cfg)
    summary = {"scenario": str(cfg.get("scenario", kind)), "study": kind, **summary}
    summary["question"] = _question(kind, study.get("question"), summary["scenario"])
    summary["seed"] = cfg.get("seed", 0)
    return summary, images


def _question(kind: str, configured: Any, scenario: str) -> str | None:
    """The study's question: ``study.question``, the scenario header's, or the kind's."""
    from planner.cli.common import SCENARIO_DIR  # here: the import block is shared
    from planner.report.html_study import study_question

    path = SCENARIO_DIR / f"{scenario}.yaml"
    header = path.read_text(encoding="utf-8") if path.is_file() else None
    return study_question(kind, None if configured is None else str(configured), header)
