"""Studies that simulate their variants: hybrid vs GPU fleets, fan-out tails, shared prefixes.

Each function takes the scenario's resolved config (a plain mapping) and the directory relative
trace paths resolve against, runs every ``study.variants`` entry
(:func:`planner.app.studies_base.run_variants`, same seed) and returns the summary with its
``answer`` sentence and its charts (:data:`~planner.app.studies_base.ChartSpec`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from planner.app.studies_base import StudyResult, run_variants
from planner.sim.engine import SimulationResult
from planner.specs.errors import ConfigError


def user_tokens_per_s(result: SimulationResult) -> float:
    """Median per-user decode speed over calls with more than one output token, tokens/s."""
    output = result.trees.output_tokens
    decode = result.finish_s - result.first_token_s
    mask = (output > 1) & np.isfinite(decode) & (decode > 0)
    return float(np.median((output[mask] - 1) / decode[mask])) if mask.any() else float("nan")


def hybrid_vs_gpu(cfg: Mapping[str, Any], base_dir: Path | None = None) -> StudyResult:
    """Per-user decode speed, TTFT and cost per million output tokens of each fleet variant."""
    runs = run_variants(cfg, base_dir)
    rows = {}
    for name, (summary, result) in runs.items():
        rows[name] = {
            "user_tokens_per_s_p50": user_tokens_per_s(result),
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


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def fanout_tail(cfg: Mapping[str, Any], base_dir: Path | None = None) -> StudyResult:
    """Tree p99 against call p99 for each fan-out variant (same calls/s)."""
    runs = run_variants(cfg, base_dir)
    rows = {}
    for name, (summary, _) in runs.items():
        tree_p99 = summary["trees"]["e2e_s"]["p99"]
        call_p99 = summary["calls"]["e2e_s"]["p99"]
        rows[name] = {
            "tree_e2e_s_p99": tree_p99,
            "call_e2e_s_p99": call_p99,
            "tree_to_call_p99": tree_p99 / call_p99,
            "busy_fraction": next(iter(summary["pools"].values()))["busy_fraction"],
            "calls_per_tree": summary["trees"]["calls_per_tree_mean"],
        }
    answer = "Tree p99 / call p99 at equal load: " + ", ".join(
        f"{n} {r['tree_to_call_p99']:.2f} (tree {r['tree_e2e_s_p99']:.1f} s, call "
        f"{r['call_e2e_s_p99']:.1f} s, busy {_share(r['busy_fraction'])})"
        for n, r in rows.items()
    )
    chart = {
        "x": list(range(len(rows))),
        "ys": {"tree p99 / call p99": [r["tree_to_call_p99"] for r in rows.values()]},
        "title": "Fan-out amplifies the tail: " + " vs ".join(rows),
        "xlabel": "variant",
        "categories": list(rows),
        "ylabel": "tree p99 / call p99",
    }
    return {"answer": answer + ".", "variants": rows}, {"fanout_tail.png": chart}


def shared_prefix(cfg: Mapping[str, Any], base_dir: Path | None = None) -> StudyResult:
    """Accelerator time per tree of each variant, relative to the ``single`` variant."""
    runs = run_variants(cfg, base_dir)
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
