"""The ``tree_cost`` study: cost and latency per agent tree (task) of simulated fleet variants.

Each ``study.variants`` entry is one fleet (same workload, same seed). Per variant:

* latency per tree (task): the simulated tree end-to-end p50 / p99, s, and the median per-user
  decode speed;
* ``usd_per_tree``: the fleet's yearly cost (depreciation + opex at the simulated power) over the
  trees it finished per year at the simulated load;
* ``usd_per_tree_at_knee``: the same fleet run at its knee, where its busiest pool reaches the
  highest call rate at which the TPOT and TTFT SLOs still hold (static model,
  :func:`planner.app.studies_base.busiest_load_fraction`: the pool's knee with batches capped at
  its ``batching.max_batch``): ``usd_per_tree x max(load_fraction)`` [D]. Power
  is kept at the simulated draw [A: energy is a few percent of the yearly cost of these fleets],
  so this slightly understates the cost at the knee.

An optional ``study.reference`` block sets the figures against published prices:
``usd_per_task`` (a price per task) and ``usd_per_year`` for ``agents`` agents running tasks back
to back around the clock (each finishes ``seconds per year / tree p50`` tasks a year).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from planner.app.studies_base import StudyResult, run_variants, study_block
from planner.app.studies_sim import user_tokens_per_s
from planner.specs.errors import ConfigError, require_positive

SECONDS_PER_YEAR = 365.0 * 86400.0


def _row(summary: Mapping[str, Any], user_speed: float) -> dict[str, Any]:
    pools = summary["pools"]
    busiest = (summary.get("knee_capped") or {}).get("busiest_load_fraction")
    usd_per_tree = summary["cost"]["usd_per_tree"]
    return {
        "tree_e2e_s_p50": summary["trees"]["e2e_s"]["p50"],
        "tree_e2e_s_p99": summary["trees"]["e2e_s"]["p99"],
        "ttft_s_p50": summary["calls"]["ttft_s"]["p50"],
        "user_tokens_per_s_p50": user_speed,
        "calls_per_tree": summary["trees"]["calls_per_tree_mean"],
        "trees_completed": summary["trees"]["completed"],
        "slo_attainment": summary["slo"]["attainment"],
        "usd_per_year": summary["cost"]["usd_per_year"],
        "usd_per_tree": usd_per_tree,
        "busiest_pool_load_fraction": busiest,
        "usd_per_tree_at_knee": (
            usd_per_tree * busiest if usd_per_tree is not None and busiest else None
        ),
        "racks": {k: v["racks"] for k, v in summary["fleet"].items()},
        "hardware": {k: v["hardware"] for k, v in summary["fleet"].items()},
        "calibrated": all(p.get("calibrated") is not False for p in pools.values()),
        "hardware_confirmed": all(p.get("hardware_confirmed") is not False for p in pools.values()),
        "borrowed_from": sorted(
            {str(p["borrowed_from"]) for p in pools.values() if p.get("borrowed_from")}
        ),
    }


def _reference(study: Mapping[str, Any]) -> dict[str, float] | None:
    raw = study.get("reference")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError("study.reference", "must be {usd_per_task, usd_per_year, agents}")
    unknown = set(raw) - {"usd_per_task", "usd_per_year", "agents"}
    if unknown:
        raise ConfigError(
            f"study.reference.{sorted(unknown)[0]}",
            "unknown; allowed: usd_per_task, usd_per_year, agents",
        )
    return {
        key: float(require_positive(f"study.reference.{key}", raw[key]))
        for key in ("usd_per_task", "usd_per_year", "agents")
        if key in raw
    }


def tree_cost(cfg: Mapping[str, Any], base_dir: Path | None = None) -> StudyResult:
    """Cost and latency per tree of each fleet variant, with the answer sentence."""
    study = study_block(cfg)
    unit = str(study.get("unit", "tree"))
    reference = _reference(study)
    runs = run_variants(cfg, base_dir, headroom=True)
    rows = {
        name: _row(summary, user_tokens_per_s(result)) for name, (summary, result) in runs.items()
    }
    priced = {n: r for n, r in rows.items() if r["usd_per_tree_at_knee"]}
    if not priced:
        raise ConfigError("study.variants", "no variant finished a tree; nothing to price")
    if reference and "agents" in reference:
        for row in rows.values():
            tasks = reference["agents"] * SECONDS_PER_YEAR / row["tree_e2e_s_p50"]
            row["agents_tasks_per_year"] = tasks
            knee_cost = row["usd_per_tree_at_knee"]
            row["agents_usd_per_year_at_knee"] = tasks * knee_cost if knee_cost else None
    summary: dict[str, Any] = {"variants": rows, "unit": unit, "reference": reference}
    summary["answer"] = _answer(rows, unit, reference)
    pair = _pair(study, rows)
    if pair:
        summary["head_to_head"] = pair
        summary["answer"] = summary["answer"][:-1] + f"; {pair['sentence']}."
    chart = {
        "x": list(range(len(priced))),
        "ys": {
            f"$ per {unit} at the knee": [r["usd_per_tree_at_knee"] for r in priced.values()],
            f"$ per {unit} at the simulated load": [r["usd_per_tree"] for r in priced.values()],
        },
        "title": f"Cost per {unit}: " + " vs ".join(priced),
        "xlabel": "fleet",
        "categories": list(priced),
        "ylabel": f"USD per {unit}",
    }
    return summary, {"tree_cost.png": chart}


def _pair(study: Mapping[str, Any], rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """``study.compare: [a, b]``: how much cheaper and faster ``a`` is than ``b`` (None: unset)."""
    names = study.get("compare")
    if names is None:
        return None
    if not isinstance(names, list) or len(names) != 2 or any(n not in rows for n in names):
        raise ConfigError("study.compare", f"must name two variants of {', '.join(rows)}")
    a, b = (rows[n] for n in names)
    if not a["usd_per_tree_at_knee"] or not b["usd_per_tree_at_knee"]:
        raise ConfigError("study.compare", "both variants must finish trees to be compared")
    cost = b["usd_per_tree_at_knee"] / a["usd_per_tree_at_knee"]
    speed = b["tree_e2e_s_p50"] / a["tree_e2e_s_p50"]
    cost_text = f"{cost:,.1f}x cheaper" if cost >= 1 else f"{1 / cost:,.1f}x dearer"
    speed_text = f"{speed:,.2f}x faster" if speed >= 1 else f"{1 / speed:,.2f}x slower"
    return {
        "variants": list(names),
        "cost_ratio": cost,
        "p50_ratio": speed,
        "sentence": f"{names[0]} against {names[1]}: {cost_text} at the knee, p50 {speed_text}",
    }


def _answer(
    rows: Mapping[str, Mapping[str, Any]], unit: str, reference: Mapping[str, float] | None
) -> str:
    priced = {n: r for n, r in rows.items() if r["usd_per_tree_at_knee"]}
    cheapest = min(priced, key=lambda n: priced[n]["usd_per_tree_at_knee"])
    dearest = max(priced, key=lambda n: priced[n]["usd_per_tree_at_knee"])
    fastest = min(rows, key=lambda n: rows[n]["tree_e2e_s_p50"])
    slowest = max(rows, key=lambda n: rows[n]["tree_e2e_s_p50"])
    parts = [
        f"{n}: ${r['usd_per_tree_at_knee']:,.3f} per {unit} at its knee "
        f"(${r['usd_per_tree']:,.3f} at the simulated load), {unit} p50 "
        f"{r['tree_e2e_s_p50']:,.1f} s / p99 {r['tree_e2e_s_p99']:,.1f} s"
        for n, r in priced.items()
    ]
    ratio = priced[dearest]["usd_per_tree_at_knee"] / priced[cheapest]["usd_per_tree_at_knee"]
    speed = rows[slowest]["tree_e2e_s_p50"] / rows[fastest]["tree_e2e_s_p50"]
    text = (
        "; ".join(parts)
        + f". {cheapest} is cheapest ({ratio:,.1f}x below {dearest}); {fastest} is fastest "
        f"(p50 {speed:,.2f}x below {slowest})"
    )
    best = priced[cheapest]
    if reference and "usd_per_task" in reference:
        text += (
            f"; against the ${reference['usd_per_task']:g} per {unit} reference, {cheapest} "
            f"costs {best['usd_per_tree_at_knee'] / reference['usd_per_task']:,.2f}x"
        )
    if reference and "agents" in reference:
        agents = int(reference["agents"])
        text += (
            f"; {agents} agents around the clock finish {best['agents_tasks_per_year']:,.0f} "
            f"{unit}s a year on {cheapest}: ${best['agents_usd_per_year_at_knee']:,.0f} a year at "
            f"its knee cost"
        )
        if "usd_per_year" in reference:
            text += f" (the reference says ${reference['usd_per_year']:,.0f})"
        text += f", but owning its smallest fleet costs ${best['usd_per_year'] / 1e6:,.2f} M a year"
    borrowed = [
        f"{n} (borrowed from {', '.join(r['borrowed_from']) or 'a neighbour'})"
        for n, r in rows.items()
        if not r["calibrated"]
    ]
    if borrowed:
        text += f"; calibrated: false: {', '.join(borrowed)}"
    unconfirmed = [n for n, r in rows.items() if not r["hardware_confirmed"]]
    if unconfirmed:
        text += f"; unconfirmed (press-only) hardware: {', '.join(unconfirmed)}"
    return text + "."
