"""The ``silicon_mix`` study: the cheapest GPU/ASIC fleet mix for a workload mix (Optuna search).

Static capacity model per pool, no simulation (so a search of hundreds of mixes takes seconds):

* For each workload class (``study.classes``: call rate, input / output tokens, TTFT and TPOT
  SLOs) and each silicon option (``study.gpus`` / ``study.asics``: a replica shape), the knee is
  the highest call rate one replica sustains within the class's SLOs
  (:func:`planner.sim.headroom.knee_rate_per_s`, unified replica, batch capped at the option's
  ``max_batch``). A replica that cannot hold a call of the class (memory) or misses the SLOs at
  any load has no knee: that option cannot serve the class.
* A mix gives each class a GPU option, an ASIC option and the share of its calls the GPU serves
  (tenths). Replicas serve one class [A: classes keep separate SLOs and batch limits];
  ``ceil(share x rate / knee)`` replicas per (class, option), accelerators summed per option and
  rounded up to whole racks. Cost = racks x a rack's yearly cost (depreciation + opex at full
  system power [A: a fleet sized to its knees runs near it], :func:`planner.econ.tco.pool_cost`).
* Optuna (TPE, seeded) searches the mix; the all-GPU and all-ASIC mixes of each class's cheapest
  option are enqueued first, so the result is never worse than either. A mix already scored is
  looked up, never evaluated again (the cache counts the repeats).

The answer is the mix's GPU/ASIC share of yearly spend (and of accelerators) against a reference
share (the seeds' 60/40), with the classes' choices and the unconfirmed / uncalibrated parts named.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from planner import config
from planner.app.silicon import case_replica
from planner.app.studies_base import BatchCapped, StudyResult, study_block
from planner.config.options import LpuLatencyCase
from planner.econ.tco import EconomicsSpec, pool_cost
from planner.perf.replica import Replica
from planner.sim.config import SloSpec
from planner.sim.headroom import knee_rate_per_s
from planner.specs.errors import ConfigError, require_positive, require_positive_int
from planner.specs.hardware import System

SHARE_STEPS = 10
"""A class's GPU share moves in tenths."""


@dataclass(frozen=True)
class WorkloadClass:
    """One class of the projected mix: calls/s, tokens per call and its SLOs."""

    name: str
    calls_per_s: float
    input_tokens: float
    output_tokens: float
    ttft_s: float
    tpot_s: float


@dataclass(frozen=True)
class Option:
    """One silicon option: its replica, system, rack cost and provenance."""

    name: str
    kind: str  # "gpu" or "asic"
    replica: Replica
    system: System
    max_batch: int
    rack_usd_per_year: float
    calibrated: bool
    borrowed_from: str
    confirmed: bool


def _classes(study: Mapping[str, Any]) -> list[WorkloadClass]:
    raw = study.get("classes")
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("study.classes", "must map class names to {calls_per_s, ...}")
    out = []
    keys = ("calls_per_s", "input_tokens", "output_tokens", "ttft_s", "tpot_s")
    for name, data in raw.items():
        field = f"study.classes.{name}"
        if not isinstance(data, Mapping):
            raise ConfigError(field, f"must be a mapping of {', '.join(keys)}")
        unknown = set(data) - set(keys)
        if unknown:
            raise ConfigError(
                f"{field}.{sorted(unknown)[0]}", f"unknown; allowed: {', '.join(keys)}"
            )
        values = {k: float(require_positive(f"{field}.{k}", data.get(k, 0))) for k in keys}
        out.append(WorkloadClass(str(name), **values))
    return out


def _options(study: Mapping[str, Any], economics: EconomicsSpec) -> dict[str, Option]:
    model = str(study.get("model", ""))
    config.named_model(model, "study.model")  # refuses an unknown model once, naming the field
    options: dict[str, Option] = {}
    for kind, key in (("gpu", "gpus"), ("asic", "asics")):
        raw = study.get(key)
        if not isinstance(raw, Mapping) or not raw:
            raise ConfigError(f"study.{key}", "must map option names to replica shapes")
        for name, data in raw.items():
            field = f"study.{key}.{name}"
            if not isinstance(data, Mapping):
                raise ConfigError(field, "must be {hardware, precision, tp, ep, chips, max_batch}")
            shape = dict(data)
            max_batch = require_positive_int(f"{field}.max_batch", shape.pop("max_batch", 256))
            case = config.validate(LpuLatencyCase, {"model": model, **shape}, field)
            system = config.named_system(case.hardware, f"{field}.hardware")
            resolved = config.resolved_efficiency(system.accelerator.family)
            try:
                replica = case_replica(case, config.named_model(model, "study.model"), system)
            except ConfigError as error:
                raise ConfigError(field, str(error)) from None
            rack_kw = system.system_power_kw * system.systems_per_rack
            rack = pool_cost(str(name), system, 1, rack_kw, economics)
            options[str(name)] = Option(
                name=str(name),
                kind=kind,
                replica=replica,
                system=system,
                max_batch=max_batch,
                rack_usd_per_year=rack.depreciation_usd_per_year + rack.opex_usd_per_year,
                calibrated=resolved.factors.calibrated,
                borrowed_from=resolved.factors.borrowed_from or "",
                confirmed=system.accelerator.confirmed,
            )
    return options


def knee_per_replica(option: Option, wl: WorkloadClass) -> float:
    """Calls/s one replica of ``option`` serves within ``wl``'s SLOs (0.0: it cannot serve it)."""
    if option.replica.max_batch(wl.input_tokens + wl.output_tokens) < 1:
        return 0.0  # one call of the class does not fit the replica's memory
    slo = SloSpec(tree_e2e_s=1e9, ttft_s=wl.ttft_s, tpot_s=wl.tpot_s)  # no tree SLO: one call
    capped = cast(Replica, BatchCapped(option.replica, option.max_batch))
    efficiency = getattr(option.replica, "efficiency", None)
    overhead_s = float(getattr(efficiency, "request_overhead_s", 0.0))
    return knee_rate_per_s(capped, "unified", 1, wl.input_tokens, wl.output_tokens, slo, overhead_s)


def mix_cost(
    mix: Mapping[str, tuple[float, str, str]],
    classes: list[WorkloadClass],
    options: Mapping[str, Option],
    knees: Mapping[str, Mapping[str, float]],
) -> dict[str, Any] | None:
    """Racks and yearly cost of a mix ``{class: (gpu share, gpu option, asic option)}``.

    Returns:
        ``{usd_per_year, gpu_spend_share, gpu_accelerator_share, racks, accelerators}``, or None
        when an option with a share of a class cannot serve it (no knee).
    """
    accelerators: dict[str, int] = {}
    for wl in classes:
        share, gpu, asic = mix[wl.name]
        for option, part in ((gpu, share), (asic, 1.0 - share)):
            if part <= 1e-9:
                continue
            knee = knees[wl.name][option]
            if knee <= 0.0:
                return None
            replicas = math.ceil(part * wl.calls_per_s / knee - 1e-9)
            accelerators[option] = (
                accelerators.get(option, 0) + replicas * options[option].replica.accelerators
            )
    racks = {
        name: math.ceil(count / options[name].system.accelerators_per_rack)
        for name, count in accelerators.items()
    }
    spend = {name: n * options[name].rack_usd_per_year for name, n in racks.items()}
    total = sum(spend.values())
    gpu_spend = sum(v for k, v in spend.items() if options[k].kind == "gpu")
    gpu_chips = sum(v for k, v in accelerators.items() if options[k].kind == "gpu")
    return {
        "usd_per_year": total,
        "gpu_spend_share": gpu_spend / total if total else 0.0,
        "gpu_accelerator_share": gpu_chips / max(sum(accelerators.values()), 1),
        "racks": racks,
        "accelerators": accelerators,
    }


def _extreme(
    kind: str, classes: list[WorkloadClass], options: Mapping[str, Option], knees: Any
) -> dict[str, str] | None:
    """Per class the option of ``kind`` with the lowest cost per call/s (None: one has none)."""
    out = {}
    for wl in classes:
        costs = {
            name: o.rack_usd_per_year
            * o.replica.accelerators
            / o.system.accelerators_per_rack
            / knees[wl.name][name]
            for name, o in options.items()
            if o.kind == kind and knees[wl.name][name] > 0
        }
        if not costs:
            return None
        out[wl.name] = min(costs, key=lambda n: costs[n])
    return out


def _search(
    classes: list[WorkloadClass],
    options: Mapping[str, Option],
    knees: Mapping[str, Mapping[str, float]],
    *,
    n_trials: int,
    seed: int,
) -> tuple[dict[str, tuple[float, str, str]], dict[str, Any], dict[str, int]]:
    """The Optuna search over mixes; returns the best mix, its cost and the cache counts."""
    import optuna  # lazily: only this study needs it

    optuna.logging.set_verbosity(logging.WARNING)
    gpus = [n for n, o in options.items() if o.kind == "gpu"]
    asics = [n for n, o in options.items() if o.kind == "asic"]
    cache: dict[tuple[Any, ...], float] = {}
    counts = {"trials": 0, "scored": 0, "repeats": 0, "infeasible": 0}

    def decode(params: Mapping[str, Any]) -> dict[str, tuple[float, str, str]]:
        return {
            wl.name: (
                params[f"{wl.name}.gpu_tenths"] / SHARE_STEPS,
                str(params[f"{wl.name}.gpu"]),
                str(params[f"{wl.name}.asic"]),
            )
            for wl in classes
        }

    def objective(trial: Any) -> float:
        counts["trials"] += 1
        params = {}
        for wl in classes:
            params[f"{wl.name}.gpu_tenths"] = trial.suggest_int(
                f"{wl.name}.gpu_tenths", 0, SHARE_STEPS
            )
            params[f"{wl.name}.gpu"] = trial.suggest_categorical(f"{wl.name}.gpu", gpus)
            params[f"{wl.name}.asic"] = trial.suggest_categorical(f"{wl.name}.asic", asics)
        # An unused option (share 0 or 10 tenths) does not change the mix: normalize it away.
        key = tuple(
            (s, g if s > 0 else "-", a if s < 1 else "-") for s, g, a in decode(params).values()
        )
        if key in cache:
            counts["repeats"] += 1
            return cache[key]
        counts["scored"] += 1
        cost = mix_cost(decode(params), classes, options, knees)
        value = cost["usd_per_year"] if cost else math.inf
        counts["infeasible"] += cost is None
        cache[key] = value
        return value

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    with warnings.catch_warnings():
        # enqueue_trial is "experimental" in optuna 2.x; the warning says nothing about the answer.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for kind, tenths in (("gpu", SHARE_STEPS), ("asic", 0)):
            extreme = _extreme(kind, classes, options, knees)
            if extreme is None:
                continue
            other, other_options = ("asic", asics) if kind == "gpu" else ("gpu", gpus)
            params: dict[str, Any] = {f"{c}.gpu_tenths": tenths for c in extreme}
            params.update({f"{c}.{kind}": o for c, o in extreme.items()})
            params.update({f"{c}.{other}": other_options[0] for c in extreme})  # unused side
            study.enqueue_trial(params)
        study.optimize(cast(Callable[[Any], float], objective), n_trials=n_trials)
    if not math.isfinite(study.best_value):
        raise ConfigError("study", "no mix of the options serves every class within its SLOs")
    best = decode(study.best_params)
    cost = mix_cost(best, classes, options, knees)
    assert cost is not None
    return best, cost, counts


def silicon_mix(cfg: Mapping[str, Any], base_dir: Path | None = None) -> StudyResult:
    """The cheapest GPU/ASIC mix for the study's workload classes, and the answer sentence."""
    study = study_block(cfg)
    economics = config.economics(cfg.get("economics") or {})
    classes = _classes(study)
    options = _options(study, economics)
    n_trials = require_positive_int("study.n_trials", study.get("n_trials", 200))
    reference = float(study.get("reference_gpu_share", 0.6))
    if not 0.0 <= reference <= 1.0:
        raise ConfigError("study.reference_gpu_share", f"must be in [0, 1], got {reference}")
    seed = config.seed(cfg.get("seed", 0))
    knees = {wl.name: {n: knee_per_replica(o, wl) for n, o in options.items()} for wl in classes}
    best, cost, counts = _search(classes, options, knees, n_trials=n_trials, seed=seed)
    extremes = {}
    for kind in ("gpu", "asic"):
        extreme = _extreme(kind, classes, options, knees)
        mix = (
            None
            if extreme is None
            else {
                c: (
                    1.0 if kind == "gpu" else 0.0,
                    o if kind == "gpu" else "-",
                    o if kind == "asic" else "-",
                )
                for c, o in extreme.items()
            }
        )
        priced = mix_cost(mix, classes, options, knees) if mix else None
        extremes[f"all_{kind}_usd_per_year"] = priced["usd_per_year"] if priced else None
    chosen = {
        wl.name: {"gpu_share": s, "gpu": g if s > 0 else None, "asic": a if s < 1 else None}
        for wl in classes
        for s, g, a in [best[wl.name]]
    }
    used = set(cost["accelerators"])
    caveats = sorted(_caveat(options[n]) for n in used if _caveat(options[n]))
    summary: dict[str, Any] = {
        "model": str(study.get("model")),
        "knee_calls_per_s_per_replica": knees,
        "mix": chosen,
        "cost": cost,
        **extremes,
        "reference_gpu_share": reference,
        "search": {"sampler": "optuna TPE", "seed": seed, **counts},
        "static_model": True,
        "caveats": caveats,
    }
    fitted = {n: o for n, o in options.items() if o.calibrated and o.confirmed}
    kinds = {o.kind for o in fitted.values()}
    if study.get("fitted_only_too", True) and kinds == {"gpu", "asic"}:
        # The same search over the parts with fitted factors and confirmed figures only.
        sub_knees = {c: {n: k[n] for n in fitted} for c, k in knees.items()}
        try:
            sub_best, sub_cost, sub_counts = _search(
                classes, fitted, sub_knees, n_trials=n_trials, seed=seed
            )
            summary["fitted_only"] = {
                "options": sorted(fitted),
                "mix": {c: list(m) for c, m in sub_best.items()},
                "cost": sub_cost,
                "search": sub_counts,
            }
        except ConfigError:
            summary["fitted_only"] = {"options": sorted(fitted), "cost": None}
    summary["answer"] = _answer(summary, classes)
    return summary, {}


def _caveat(option: Option) -> str:
    """``name (calibrated: false, borrowed from X; unconfirmed)`` or empty for a fitted part."""
    notes = []
    if not option.calibrated:
        notes.append(f"calibrated: false, borrowed from {option.borrowed_from or 'a neighbour'}")
    if not option.confirmed:
        notes.append("unconfirmed")
    return f"{option.name} ({'; '.join(notes)})" if notes else ""


def _answer(summary: Mapping[str, Any], classes: list[WorkloadClass]) -> str:
    cost, mix = summary["cost"], summary["mix"]
    reference = summary["reference_gpu_share"]
    per_class = ", ".join(
        f"{wl.name} "
        + (f"{mix[wl.name]['gpu']} {mix[wl.name]['gpu_share']:.0%}" if mix[wl.name]["gpu"] else "")
        + (" + " if mix[wl.name]["gpu"] and mix[wl.name]["asic"] else "")
        + (
            f"{mix[wl.name]['asic']} {1 - mix[wl.name]['gpu_share']:.0%}"
            if mix[wl.name]["asic"]
            else ""
        )
        for wl in classes
    )
    extremes = ", ".join(
        f"all-{kind.upper()} ${summary[f'all_{kind}_usd_per_year'] / 1e6:,.1f} M"
        for kind in ("gpu", "asic")
        if summary[f"all_{kind}_usd_per_year"]
    )
    search = summary["search"]
    text = (
        f"Cheapest mix found (static capacity model, {search['scored']} distinct mixes scored in "
        f"{search['trials']} Optuna trials): ${cost['usd_per_year'] / 1e6:,.1f} M a year "
        f"({extremes}); GPU/ASIC share of spend {cost['gpu_spend_share']:.0%}/"
        f"{1 - cost['gpu_spend_share']:.0%} (of accelerators {cost['gpu_accelerator_share']:.0%}/"
        f"{1 - cost['gpu_accelerator_share']:.0%}) against the projected "
        f"{reference:.0%}/{1 - reference:.0%}; per class: {per_class}"
    )
    fitted = summary.get("fitted_only")
    if fitted and fitted.get("cost"):
        sub = fitted["cost"]
        text += (
            f"; with fitted, confirmed parts only ({', '.join(fitted['options'])}): "
            f"${sub['usd_per_year'] / 1e6:,.1f} M a year, GPU/ASIC share of spend "
            f"{sub['gpu_spend_share']:.0%}/{1 - sub['gpu_spend_share']:.0%}"
        )
    elif fitted:
        text += f"; fitted, confirmed parts only ({', '.join(fitted['options'])}): no mix serves"
    if summary["caveats"]:
        text += f"; uncalibrated or unconfirmed parts in the mix: {', '.join(summary['caveats'])}"
    return text + "."
