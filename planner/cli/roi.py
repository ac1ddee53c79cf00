"""``planner-roi``: NPV, IRR and payback of an ASIC option against a GPU-only baseline.

1. Measure (or load from the cache) each option's capacity curve over the range of loads the
   futures can reach: the sizing search at a grid of demands.
2. Evaluate the base case (every input at its median) and a one-at-a-time tornado.
3. Draw ``mc.samples`` futures by Latin hypercube and evaluate their NPV on the curves (the fast
   path), in chunks that are checkpointed: rerunning the same study resumes where it stopped.
4. Optionally re-size ``roi.spot_checks`` sampled futures by full simulation to check the fast
   path against the simulator.

Writes ``summary.json``, ``npv_histogram.png`` and ``tornado.png`` into the Hydra run directory.
"""

from __future__ import annotations

import json
import math
import sys
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from planner import config
from planner.app.cache import (
    ChunkCheckpoint,
    JsonStore,
    default_cache_dir,
    stable_key,
    writable_cache_dir,
)
from planner.app.provenance import fleet_provenance
from planner.cli.builders import build_economics, build_workload
from planner.cli.common import (
    CONF_DIR,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    guarded_task,
    make_console,
    run_guarded,
    to_mapping,
)
from planner.cli.progress import ProgressDisplay, progress_display
from planner.econ.capacity import CapacityCurve, curve_key, measure_curve
from planner.econ.montecarlo import (
    UncertainInput,
    base_point,
    latin_hypercube,
    run_samples,
    summarize_samples,
    tornado,
)
from planner.econ.roi import (
    INPUT_NAMES,
    RoiModel,
    check_inputs,
    irr,
    npv_chunk,
    payback_years,
    spot_check,
)
from planner.econ.sizing import SizingOption, SizingSlo
from planner.report.html import roi_report
from planner.report.html_parts import fmt_usd
from planner.report.plots import histogram_png, tornado_png
from planner.sim.engine import WorkloadSpec
from planner.specs.errors import (
    ConfigError,
    require_choice,
)

GROUPS = ("workload", "sizing", "economics")


def _cache_dir(cfg: DictConfig) -> Path:
    """``cache_dir`` from the config (absolute, or relative to the working directory), else the
    user's cache directory (``$PLANNER_CACHE_DIR`` or ``$XDG_CACHE_HOME/planner``)."""
    configured = cfg.get("cache_dir")
    if configured is not None and not isinstance(configured, str):
        raise ConfigError("cache_dir", f"must be a directory path or null, got {configured!r}")
    path = default_cache_dir() if configured in (None, "") else Path(str(configured)).expanduser()
    return writable_cache_dir(path.absolute())


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def load_or_measure_curve(
    option: SizingOption,
    workload: WorkloadSpec,
    slo: SizingSlo,
    demands: list[float],
    *,
    seed: int,
    max_racks: int,
    cache_dir: Path,
) -> tuple[CapacityCurve, bool]:
    """The option's capacity curve from the cache, else measured and cached. (curve, cached?)

    The entry's key covers everything the curve depends on and the code that measures it; two
    studies asking for the same curve at once measure it once (a lock per entry).
    """
    key = stable_key({"curve": curve_key(option, workload, slo, demands, seed, max_racks)})
    store = JsonStore(cache_dir / "capacity", warn=_warn)
    payload, cached = store.get_or_compute(
        f"{option.name}-{key}",
        lambda: measure_curve(
            option, workload, slo, demands, seed=seed, max_racks=max_racks
        ).to_dict(),
    )
    return config.capacity_curve(payload), cached


def demand_grid(inputs: tuple[UncertainInput, ...], horizon_years: int, points: int) -> list[float]:
    """Demands spanning every load a future can reach (inputs at their 0.1%/99.9% quantiles)."""
    by_name = {i.name: i.distribution for i in inputs}

    def q(name: str, quantile: float) -> float:
        return float(by_name[name].quantile(quantile))

    low_ratio = (1 + q("demand_growth_per_year", 0.001)) * (1 + q("fanout_growth_per_year", 0.001))
    low_ratio /= 1 + q("efficiency_gain_per_year", 0.999)
    high_ratio = (1 + q("demand_growth_per_year", 0.999)) * (1 + q("fanout_growth_per_year", 0.999))
    high_ratio /= 1 + q("efficiency_gain_per_year", 0.001)
    last = horizon_years - 1
    low = q("base_demand_trees_per_s", 0.001) * min(1.0, low_ratio**last)
    high = q("base_demand_trees_per_s", 0.999) * max(1.0, high_ratio**last)
    return [float(d) for d in np.geomspace(low / 1.05, high * 1.05, points)]


def _study_key(cfg: DictConfig, curves: dict[str, CapacityCurve], samples: int) -> str:
    mc = to_mapping(cfg.get("mc"), "mc")
    payload = json.dumps(
        {
            "curves": {k: v.to_dict() for k, v in curves.items()},
            "inputs": mc.get("inputs"),
            "seed": mc.get("seed"),
            "samples": samples,
            "chunk_size": mc.get("chunk_size"),
            "roi": to_mapping(cfg.get("roi"), "roi"),
            "economics": to_mapping(cfg.get("economics") or {}, "economics"),
        },
        sort_keys=True,
        default=str,
    )
    return stable_key({"study": payload})


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def run(
    cfg: DictConfig, display: ProgressDisplay | None = None
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The whole study; returns the summary and the PNGs to write (no files written here).

    ``display`` shows the progress of the capacity curves and of the Monte Carlo samples.
    """
    roi = config.roi_options(to_mapping(cfg.get("roi"), "roi"))
    mc = config.mc_options(to_mapping(cfg.get("mc"), "mc"))
    cache = _cache_dir(cfg)
    inputs = config.uncertain_inputs(mc.inputs, "mc.inputs")
    names = {i.name for i in inputs}
    for name in INPUT_NAMES:
        if name not in names:
            raise ConfigError(f"mc.inputs.{name}", "is required (a number or a distribution)")
    extra = sorted(names - set(INPUT_NAMES))
    if extra:
        raise config.unknown_key("mc.inputs", extra[0], INPUT_NAMES)
    samples, mc_seed = mc.samples, mc.seed
    seed = config.seed(cfg.get("seed"))
    horizon, points = roi.horizon_years, roi.curve_points
    spot_checks = roi.spot_checks

    workload = build_workload(cfg.get("workload"))
    workload = WorkloadSpec(workload.arrivals, workload.tree, n_trees=roi.n_trees)
    targets = config.sizing_slo(to_mapping(cfg.get("slo") or {}, "slo"))
    slo = SizingSlo(targets.tree_e2e_p99_s, targets.ttft_p99_s, targets.tpot_p99_s)
    max_racks, options = config.sizing_options(to_mapping(cfg.get("sizing"), "sizing"))
    by_name = {o.name: o for o in options}
    baseline = require_choice("roi.baseline", roi.baseline, by_name)
    candidate = require_choice("roi.candidate", roi.candidate, by_name)
    if baseline == candidate:
        raise ConfigError("roi.candidate", f"must differ from roi.baseline ({baseline})")
    economics = build_economics(cfg.get("economics"))

    grid = demand_grid(inputs, horizon, points)
    curves: dict[str, CapacityCurve] = {}
    cached: dict[str, bool] = {}
    curves_done = display.counter("capacity curves", 2, unit="options") if display else None
    for done, name in enumerate((baseline, candidate)):
        if curves_done:
            curves_done(done, 2)
        curves[name], cached[name] = load_or_measure_curve(
            by_name[name], workload, slo, grid, seed=seed, max_racks=max_racks, cache_dir=cache
        )
    if curves_done:
        curves_done(2, 2)
    model = RoiModel(curves[baseline], curves[candidate], economics, horizon)

    draws = latin_hypercube(inputs, samples, mc_seed)
    check_inputs(draws)
    base = {k: np.array([v]) for k, v in base_point(inputs).items()}
    base_savings = model.savings(base)[0]

    def evaluate_point(point: Any) -> float:
        return float(model.npv_usd({k: np.array([float(v)]) for k, v in point.items()})[0])

    bars = tornado(evaluate_point, inputs)

    key = _study_key(cfg, curves, samples)
    checkpoint = ChunkCheckpoint(cache / "montecarlo" / key, warn=_warn)
    chunk_size = mc.chunk_size
    chunks_total = -(-samples // chunk_size)
    chunks_resumed = len(checkpoint.load())
    samples_done = display.counter("Monte Carlo", samples, unit="samples") if display else None

    def chunks_done(done: int, _total: int) -> None:  # run_samples counts chunks
        if samples_done:
            samples_done(min(done * chunk_size, samples), samples)

    npv = run_samples(
        partial(npv_chunk, model),
        draws,
        chunk_size=chunk_size,
        backend=mc.backend,
        n_jobs=mc.n_jobs,
        ray_address=mc.ray_address,
        checkpoint=checkpoint,
        progress=chunks_done if samples_done else None,
    )
    savings = model.savings(draws)
    irrs, paybacks = irr(savings), payback_years(savings)
    npv_stats = summarize_samples(npv)
    checks = spot_check(model, by_name, workload, slo, draws, spot_checks, seed, max_racks)

    base_npv = float(model.npv_usd(base)[0])
    prob = npv_stats["prob_positive"]
    answer = (
        f"{candidate} against {baseline} over {horizon} years: median NPV "
        f"{fmt_usd(npv_stats['p50'])} (p5 {fmt_usd(npv_stats['p5'])}, p95 "
        f"{fmt_usd(npv_stats['p95'])}); it pays back in {prob:.0%} of {samples:,} "
        "sampled futures."
    )
    summary = {
        "scenario": str(cfg.get("scenario", "roi")),
        "answer": answer,
        "roi": {
            "baseline": baseline,
            "candidate": candidate,
            "horizon_years": horizon,
            "samples": samples,
            "npv_usd": {k: npv_stats[k] for k in ("p5", "p50", "p95", "mean", "std")},
            "standard_error_usd": npv_stats["standard_error"],
            "prob_npv_positive": prob,
            "irr": {
                "p50": _finite_or_none(float(np.nanmedian(irrs)))
                if np.isfinite(irrs).any()
                else None,
                "defined_fraction": float(np.isfinite(irrs).mean()),
            },
            "payback_years": {
                "p50": _finite_or_none(float(np.median(paybacks))),
                "within_horizon_fraction": float(np.isfinite(paybacks).mean()),
            },
            "base_case": {
                "inputs": {k: float(v[0]) for k, v in base.items()},
                "npv_usd": base_npv,
                "irr": _finite_or_none(float(irr(base_savings[None, :])[0])),
                "payback_years": _finite_or_none(float(payback_years(base_savings[None, :])[0])),
                "savings_usd_by_year": base_savings.tolist(),
                "load_trees_per_s_by_year": model.loads(base)[0].tolist(),
                "racks_by_year": {
                    name: {
                        pool: curve.racks_needed(pool, model.loads(base))[0].tolist()
                        for pool in curve.racks
                    }
                    for name, curve in curves.items()
                },
            },
            "tornado": [
                {
                    "input": b.name,
                    "low_input": b.low_value_input,
                    "high_input": b.high_value_input,
                    "npv_at_low_usd": b.output_at_low,
                    "npv_at_high_usd": b.output_at_high,
                    "swing_usd": b.swing,
                }
                for b in bars
            ],
        },
        "curves": {name: {**c.to_dict(), "from_cache": cached[name]} for name, c in curves.items()},
        "calibration": {name: fleet_provenance(by_name[name].fleet) for name in curves},
        "spot_checks": [
            {
                "option": c.option,
                "load_trees_per_s": c.load_trees_per_s,
                "fast_racks": c.fast_racks,
                "simulated_racks": c.simulated_racks,
                "relative_error": c.relative_error,
            }
            for c in checks
        ],
        "mc": {
            "backend": mc.backend,
            "chunks_total": chunks_total,
            "chunks_resumed": chunks_resumed,
            "checkpoint": str(checkpoint.directory),
        },
        "seed": seed,
        "mc_seed": mc_seed,
    }
    markers = {"p5": npv_stats["p5"] / 1e6, "p50": npv_stats["p50"] / 1e6,
               "p95": npv_stats["p95"] / 1e6, "break-even": 0.0}  # fmt: skip
    images = {
        "npv_histogram.png": histogram_png(
            npv / 1e6,
            title=f"NPV of {candidate} vs {baseline}",
            xlabel="NPV (USD M)",
            markers=markers,
        ),
        "tornado.png": tornado_png(
            bars,
            title="NPV sensitivity (one input at a time, p10-p90)",
            base_value=base_npv,
            xlabel="NPV (USD)",
        ),
    }
    return summary, images


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="roi")
@guarded_task
def _app(cfg: DictConfig) -> None:
    with progress_display() as display:
        summary, images = run(cfg, display)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    for name, data in images.items():
        atomic_write_bytes(out_dir / name, data)
    atomic_write_json(out_dir / "summary.json", summary)
    choices = HydraConfig.get().runtime.choices
    run_info = {group: str(choices[group]) for group in GROUPS if choices.get(group)}
    atomic_write_text(out_dir / "report.html", roi_report(summary, images, run_info=run_info))
    console = make_console()
    console.print(summary["answer"])
    roi = summary["roi"]
    console.print(
        f"IRR p50 {roi['irr']['p50']}, payback p50 {roi['payback_years']['p50']} years, "
        f"Monte Carlo standard error ${roi['standard_error_usd'] / 1e6:,.2f} M"
    )
    top = roi["tornado"][:3]
    console.print("largest sensitivities: " + "; ".join(
        f"{b['input']} (${b['swing_usd'] / 1e6:,.1f} M)" for b in top))  # fmt: skip
    console.print(f"results written to {out_dir}")


def main() -> None:
    """Console-script entry point."""
    run_guarded(_app, sys.argv[1:], GROUPS, "roi")


if __name__ == "__main__":
    main()
