"""The ``reasoning_split`` study: reasoning architectures on GPU, LPU and hybrid fleets, by load.

``study.architectures`` maps names to tree shapes (``workload.tree``: for example one sequential
call with tens of thousands of thinking tokens, or a four-agent debate over a shared prefix);
``study.fleets`` maps names to config overrides (a fleet each). Every (architecture, fleet) pair
is simulated at the scenario's load with the same seed, giving the latency per answer (tree p50 /
p99, s) and the fleet's knee: ``answers/s at the knee = offered answers/s / max(pool
load_fraction)`` (the busiest pool at the highest rate meeting the TTFT/TPOT SLOs, static model
with batches capped at the pool's ``max_batch``:
:func:`~planner.app.studies_base.busiest_load_fraction`).

The load sweep then scales each fleet in whole copies [A: a fleet grows by its own unit, e.g.
one GB200 rack or one 8-rack LPU chain]: at ``L`` answers/s it needs ``ceil(L / knee)`` copies,
so the cost per answer is ``copies x yearly cost / (L x seconds per year)``. At low load the
smallest unit's yearly cost dominates; at high load the cost tends to the knee cost. The answer
names, per architecture, the cheapest fleet at each end of the sweep and the first load at which
the cheapest fleet changes (the flip), and the fastest fleet (latency is taken from the simulated
load, below every fleet's knee, where the SLOs hold by construction).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from planner.app.studies_base import StudyResult, run_variant, study_block, variant_config
from planner.specs.errors import ConfigError, require_positive

SECONDS_PER_YEAR = 365.0 * 86400.0


def _named_mappings(study: Mapping[str, Any], key: str, what: str) -> dict[str, dict[str, Any]]:
    raw = study.get(key)
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"study.{key}", f"must map names to {what}")
    out = {}
    for name, value in raw.items():
        if not isinstance(value, Mapping):
            raise ConfigError(f"study.{key}.{name}", f"must be a mapping ({what})")
        out[str(name)] = dict(value)
    return out


def _loads(study: Mapping[str, Any]) -> list[float]:
    raw = study.get("loads_per_s")
    if isinstance(raw, (str, bytes)) or not isinstance(raw, list) or not raw:
        raise ConfigError(
            "study.loads_per_s", f"must be a non-empty list of answers/s, got {raw!r}"
        )
    loads = [float(require_positive(f"study.loads_per_s[{i}]", v)) for i, v in enumerate(raw)]
    return sorted(loads)


def _cell(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Latency, cost and knee of one simulated (architecture, fleet) pair."""
    pools = summary["pools"]
    busiest = (summary.get("knee_capped") or {}).get("busiest_load_fraction")
    offered = summary["throughput"]["trees_per_s"]
    knee = offered / busiest if busiest and offered > 0 else 0.0
    return {
        "answer_s_p50": summary["trees"]["e2e_s"]["p50"],
        "answer_s_p99": summary["trees"]["e2e_s"]["p99"],
        "calls_per_answer": summary["trees"]["calls_per_tree_mean"],
        "answers_completed": summary["trees"]["completed"],
        "usd_per_year": summary["cost"]["usd_per_year"],
        "usd_per_answer_simulated": summary["cost"]["usd_per_tree"],
        "knee_answers_per_s": knee,
        "usd_per_answer_at_knee": (
            summary["cost"]["usd_per_year"] / (knee * SECONDS_PER_YEAR) if knee else None
        ),
        "racks": sum(int(v["racks"]) for v in summary["fleet"].values()),
        "calibrated": all(p.get("calibrated") is not False for p in pools.values()),
        "hardware_confirmed": all(p.get("hardware_confirmed") is not False for p in pools.values()),
    }


def usd_per_answer_at_load(cell: Mapping[str, Any], load_per_s: float) -> float | None:
    """Cost per answer at ``load_per_s`` answers/s with whole fleet copies (None: no knee)."""
    knee = cell["knee_answers_per_s"]
    if not knee:
        return None
    copies = math.ceil(load_per_s / knee - 1e-9)
    return float(copies * cell["usd_per_year"] / (load_per_s * SECONDS_PER_YEAR))


def _sweep(
    cells: Mapping[str, Mapping[str, Mapping[str, Any]]], loads: list[float]
) -> dict[str, dict[str, Any]]:
    """Per architecture: cost per answer of each fleet at each load, cheapest fleet, flips."""
    out: dict[str, dict[str, Any]] = {}
    for arch, fleets in cells.items():
        costs = {f: [usd_per_answer_at_load(c, load) for load in loads] for f, c in fleets.items()}
        cheapest = []
        for i in range(len(loads)):
            priced: dict[str, float] = {}
            for fleet, values in costs.items():
                value = values[i]
                if value is not None:
                    priced[fleet] = value
            cheapest.append(min(priced, key=lambda f: priced[f]) if priced else None)
        flips = [
            {"load_per_s": loads[i], "from": cheapest[i - 1], "to": cheapest[i]}
            for i in range(1, len(loads))
            if cheapest[i] != cheapest[i - 1]
        ]
        out[arch] = {"usd_per_answer": costs, "cheapest": cheapest, "flips": flips}
    return out


def reasoning_split(cfg: Mapping[str, Any], base_dir: Path | None = None) -> StudyResult:
    """Latency and cost per answer of each architecture on each fleet, and the load sweep."""
    study = study_block(cfg)
    architectures = _named_mappings(study, "architectures", "a workload.tree shape")
    fleets = _named_mappings(study, "fleets", "dotted config overrides of a fleet")
    loads = _loads(study)
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for arch, tree in architectures.items():
        cells[arch] = {}
        for fleet, overrides in fleets.items():
            name = f"{arch}_on_{fleet}"
            variant = variant_config(cfg, {**overrides, "workload.tree": tree}, name)
            run, _ = run_variant(variant, base_dir, headroom=True)
            cells[arch][fleet] = _cell(run)
    sweep = _sweep(cells, loads)
    summary: dict[str, Any] = {"cells": cells, "loads_per_s": loads, "sweep": sweep}
    summary["answer"] = _answer(cells, sweep, loads)
    charts = {
        f"reasoning_{arch}.png": {
            "x": loads,
            "ys": {
                f: [c if c is not None else float("nan") for c in costs]
                for f, costs in sweep[arch]["usd_per_answer"].items()
            },
            "title": f"{arch}: cost per answer by load (whole fleet copies)",
            "xlabel": "load, answers/s",
            "ylabel": "USD per answer",
        }
        for arch in cells
    }
    return summary, charts


def _answer(
    cells: Mapping[str, Mapping[str, Mapping[str, Any]]],
    sweep: Mapping[str, Mapping[str, Any]],
    loads: list[float],
) -> str:
    parts = []
    for arch, fleets in cells.items():
        fastest = min(fleets, key=lambda f: fleets[f]["answer_s_p50"])
        figures = ", ".join(
            f"{f} p50 {c['answer_s_p50']:,.1f} s, "
            + (
                f"${c['usd_per_answer_at_knee']:,.4f}/answer at its knee"
                if c["usd_per_answer_at_knee"]
                else "no knee"
            )
            for f, c in fleets.items()
        )
        cheapest = sweep[arch]["cheapest"]
        flips = sweep[arch]["flips"]
        flip_text = (
            "; ".join(
                f"flips from {x['from']} to {x['to']} by {x['load_per_s']:g} answers/s"
                for x in flips
            )
            if flips
            else f"no flip between {loads[0]:g} and {loads[-1]:g} answers/s"
        )
        parts.append(
            f"{arch}: {figures}; fastest {fastest}; cheapest at {loads[0]:g} answers/s "
            f"{cheapest[0]}, at {loads[-1]:g} answers/s {cheapest[-1]} ({flip_text})"
        )
    text = ". ".join(parts)
    for label, key in (
        ("calibrated: false", "calibrated"),
        ("unconfirmed hardware", "hardware_confirmed"),
    ):
        flagged = sorted({f for fleets in cells.values() for f, c in fleets.items() if not c[key]})
        if flagged:
            text += f". {label}: {', '.join(flagged)}"
    return text + "."
