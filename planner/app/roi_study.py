"""The ``planner-roi`` study: NPV, IRR and payback of an ASIC option against a GPU-only baseline.

:func:`run_roi_study` takes a :class:`~planner.app.roi_spec.RoiStudySpec` and returns a typed
:class:`RoiResult` (``to_json()`` is ``summary.json``); it writes nothing but its cache entries.

1. Static capacity curves (:class:`~planner.econ.capacity.StaticCapacity`) of both options, per
   variant (LPU generation x model) over a grid of context-length scales, from the cache or
   computed and cached (``<cache_dir>/capacity/``).
2. ``samples`` futures by Latin hypercube over every uncertain input, discrete ones included;
   each future's fleets are read off its variant's curves at its context scale, so the samples
   change the sized fleets. NPVs are evaluated in checkpointed chunks (``<cache_dir>/montecarlo/``):
   a rerun resumes where an interrupted one stopped.
3. P(NPV > 0) with its Wilson interval, IRR over all futures, payback, fleet size and power.
4. Sensitivity: first-order and total Sobol indices (scipy.stats.sobol_indices) and the
   one-at-a-time tornado; the break-even chart's data: P(NPV > 0) over a grid of the two inputs
   with the largest first-order shares, every other input drawn as in the study.
5. Optionally ``spot_checks`` futures re-sized by full simulation (planner.econ.roi.spot_check).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner import config
from planner.app.cache import ChunkCheckpoint, JsonStore, code_fingerprint, stable_key
from planner.app.roi_result import (
    BreakevenGrid,
    CashFlows,
    FleetFigures,
    RoiResult,
    fleet_figures,
)
from planner.app.roi_spec import RoiStudySpec
from planner.econ.capacity import STATIC_FORMAT, StaticCapacity, measure_static
from planner.econ.montecarlo import (
    Checkpoint,
    UncertainInput,
    base_point,
    latin_hypercube,
    rank_variance_shares,
    run_samples,
    sobol_first_order,
    summarize_samples,
    tornado,
    wilson_interval,
)
from planner.econ.roi import (
    RoiModel,
    check_inputs,
    irr,
    irr_summary,
    npv_chunk,
    payback_years,
    spot_check,
)
from planner.econ.sizing import SizingOption

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stages ``capacity curves`` and ``Monte Carlo``."""

FloatArray = NDArray[np.float64]


def _quiet(message: str) -> None:
    del message


def context_grid(inputs: tuple[UncertainInput, ...], points: int) -> list[float]:
    """Context scales spanning the sampled ones (0.1 %/99.9 % quantiles), log-spaced."""
    by_name = {i.name: i.distribution for i in inputs}
    law = by_name.get("context_scale")
    if law is None or law.is_fixed:
        centre = 1.0 if law is None else law.median()
        return [centre / 1.01, centre * 1.01]
    low, high = law.quantile(0.001), law.quantile(0.999)
    return [float(c) for c in np.geomspace(low / 1.01, high * 1.01, points)]


def load_or_compute_static(
    spec: RoiStudySpec, name: str, grid: list[float], warn: Callable[[str], None]
) -> tuple[StaticCapacity, bool]:
    """One option's static curves from the cache, else computed and cached: (curves, cached?)."""
    variants = spec.variants[name]
    key = stable_key(
        {
            "static": STATIC_FORMAT,
            "variants": repr(variants),
            "workload": repr(spec.workload),
            "slo": repr(spec.slo),
            "grid": grid,
            "seed": spec.seed,
            "code": code_fingerprint(),
        }
    )
    store = JsonStore(spec.cache_dir / "capacity", warn=warn)
    choices = [(n, len(c.labels)) for n, c in spec.choices]
    payload, cached = store.get_or_compute(
        f"{name}-static-{key}",
        lambda: measure_static(
            name,
            variants.options,
            variants.labels,
            choices,
            spec.workload,
            spec.slo,
            grid,
            seed=spec.seed,
        ).to_dict(),
    )
    return config.static_capacity(payload), cached


def _breakeven(
    model: RoiModel, spec: RoiStudySpec, draws: Mapping[str, FloatArray], axes: tuple[str, str]
) -> BreakevenGrid:
    """P(NPV > 0) over a grid of two inputs, the others as drawn (the first futures)."""
    by_name = {i.name: i.distribution for i in spec.inputs}
    points = spec.breakeven_grid
    values = []
    for axis in axes:
        law = by_name[axis]
        if hasattr(law, "labels"):
            values.append(np.arange(len(law.labels), dtype=float))
        else:
            values.append(np.asarray(law.ppf(np.linspace(0.02, 0.98, points))))
    others = min(len(next(iter(draws.values()))), 400)
    xs, ys = np.meshgrid(values[0], values[1], indexing="xy")
    cells = xs.size
    batch = {k: np.tile(v[:others], cells) for k, v in draws.items()}
    batch[axes[0]] = np.repeat(xs.ravel(), others)
    batch[axes[1]] = np.repeat(ys.ravel(), others)
    npv = model.npv_usd(batch).reshape(cells, others)
    prob = (npv > 0).mean(axis=1).reshape(xs.shape)
    labels = tuple(tuple(getattr(by_name[a], "labels", ())) for a in axes)
    return BreakevenGrid(axes, values[0], values[1], prob, others, labels)


def _cash_flows(
    model: RoiModel, draws: Mapping[str, FloatArray], base: Mapping[str, FloatArray]
) -> CashFlows:
    """Yearly savings (base case split into capex and opex) and cumulative NPV bands."""
    base_costs = {c.option: model.option_costs(c, base) for c in (model.baseline, model.candidate)}
    b, c = base_costs[model.baseline.option], base_costs[model.candidate.option]
    savings = model.savings(draws)
    years = np.arange(savings.shape[1], dtype=float)
    discount = (1.0 + draws["discount_rate"][:, None]) ** years[None, :]
    cumulative = np.cumsum(savings / discount, axis=1)
    return CashFlows(
        capex_saving_usd=(b.capex_usd - c.capex_usd)[0],
        opex_saving_usd=(b.opex_usd - c.opex_usd)[0],
        savings_percentiles_usd=np.percentile(savings, [5, 50, 95], axis=0),
        cumulative_npv_percentiles_usd=np.percentile(cumulative, [5, 50, 95], axis=0),
    )


def breakeven_price_factor(
    model: RoiModel, draws: Mapping[str, FloatArray], kind: str = "lpu"
) -> FloatArray:
    """Per future, the ``<kind>_price_factor`` at which NPV is 0 (NaN: none >= 0 exists).

    NPV is linear in the price factor (it scales the racks' capex and maintenance, not their
    power), so two evaluations give it: NPV(f) = NPV(0) + f (NPV(1) - NPV(0)). A future that
    loses money even with free hardware of that kind has no break-even price.
    """
    n = len(next(iter(draws.values())))
    at = {f: model.npv_usd({**draws, f"{kind}_price_factor": np.full(n, f)}) for f in (0.0, 1.0)}
    slope = at[1.0] - at[0.0]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(slope < 0, -at[0.0] / slope, np.inf)
    result: FloatArray = np.where(at[0.0] < 0, np.nan, factor)
    return result


def _tornado_bars(model: RoiModel, inputs: tuple[UncertainInput, ...]) -> list[Any]:
    def evaluate_point(point: Mapping[str, float]) -> float:
        return float(model.npv_usd({k: np.array([float(v)]) for k, v in point.items()})[0])

    return tornado(evaluate_point, inputs)


def _option_of(spec: RoiStudySpec) -> Callable[[str, Mapping[str, FloatArray]], SizingOption]:
    def option_of(name: str, future: Mapping[str, FloatArray]) -> SizingOption:
        sizes = [len(c.labels) for _, c in spec.choices]
        codes = [int(future[n][0]) for n, _ in spec.choices]
        index = int(np.ravel_multi_index(codes, sizes)) if sizes else 0
        return spec.variants[name].options[index]

    return option_of


def run_roi_study(
    spec: RoiStudySpec,
    checkpoint: Checkpoint | bool = True,
    progress: Progress | None = None,
    warn: Callable[[str], None] = _quiet,
) -> RoiResult:
    """Run the whole study (see the module docstring).

    Args:
        spec: The validated study.
        checkpoint: A :class:`~planner.econ.montecarlo.Checkpoint`; ``True``: one on disk under
            ``<cache_dir>/montecarlo/<study key>``; ``False``: none.
        progress: Called as ``progress(stage, done, total)``.
        warn: Receives one line per cache entry found damaged (and recomputed).
    """
    report = progress or (lambda _stage, _done, _total: None)
    grid = context_grid(spec.inputs, spec.curve_points)
    curves: dict[str, StaticCapacity] = {}
    cached: dict[str, bool] = {}
    for done, name in enumerate((spec.baseline, spec.candidate)):
        report("capacity curves", done, 2)
        curves[name], cached[name] = load_or_compute_static(spec, name, grid, warn)
    report("capacity curves", 2, 2)
    model = RoiModel(
        curves[spec.baseline], curves[spec.candidate], spec.economics, spec.horizon_years
    )

    draws = latin_hypercube(spec.inputs, spec.samples, spec.mc_seed)
    check_inputs(draws)
    base = {k: np.array([v]) for k, v in base_point(spec.inputs).items()}

    key = stable_key({"study": spec.fingerprint, "curves": [c.to_dict() for c in curves.values()]})
    store: Checkpoint | None
    if checkpoint is True:
        store = ChunkCheckpoint(spec.cache_dir / "montecarlo" / key, warn=warn)
    else:
        store = checkpoint or None
    chunks_resumed = len(store.load()) if store is not None else 0
    total = spec.samples

    def chunks_done(done: int, _total: int) -> None:
        report("Monte Carlo", min(done * spec.chunk_size, total), total)

    npv = run_samples(
        partial(npv_chunk, model),
        draws,
        chunk_size=spec.chunk_size,
        backend=spec.backend,
        n_jobs=spec.n_jobs,
        ray_address=spec.ray_address,
        checkpoint=store,
        progress=chunks_done,
    )
    savings = model.savings(draws)
    stats = summarize_samples(npv)
    positive = int(np.count_nonzero(npv > 0))
    evaluate = partial(npv_chunk, model)
    sobol = sobol_first_order(evaluate, spec.inputs, spec.sensitivity_samples, spec.mc_seed)
    shares, rank_r2 = rank_variance_shares(draws, npv, spec.inputs)
    ranked = sorted(((v, n) for n, v in shares.items()), reverse=True)
    axes = (ranked[0][1], ranked[1][1]) if len(ranked) > 1 else (ranked[0][1], ranked[0][1])
    checks = spot_check(
        model,
        _option_of(spec),
        spec.workload,
        spec.slo,
        draws,
        spec.spot_checks,
        spec.seed,
        spec.max_racks,
    )
    fleets: dict[str, FleetFigures] = {
        c.option: fleet_figures(model.option_costs(c, draws), model.option_costs(c, base))
        for c in (model.baseline, model.candidate)
    }
    base_savings = model.savings(base)[0]
    return RoiResult(
        spec=spec,
        npv_usd=npv,
        npv_stats=stats,
        prob_positive=positive / len(npv),
        prob_positive_ci=wilson_interval(positive, len(npv)),
        irr=irr_summary(savings),
        payback_years=payback_years(savings),
        base_inputs={k: float(v[0]) for k, v in base.items()},
        base_npv_usd=float(model.npv_usd(base)[0]),
        base_irr=_finite_or_none(float(irr(base_savings[None, :])[0])),
        base_payback_years=_finite_or_none(float(payback_years(base_savings[None, :])[0])),
        base_savings_usd=base_savings,
        base_loads=model.loads(base)[0],
        tornado=tuple(_tornado_bars(model, spec.inputs)),
        sobol=sobol,
        rank_shares=shares,
        rank_r2=rank_r2,
        breakeven=_breakeven(model, spec, draws, axes),
        breakeven_lpu_price_factor=breakeven_price_factor(model, draws),
        cash_flows=_cash_flows(model, draws, base),
        fleets=fleets,
        curves=curves,
        curves_cached=cached,
        spot_checks=tuple(checks),
        chunks_total=-(-spec.samples // spec.chunk_size),
        chunks_resumed=chunks_resumed,
        checkpoint_path=str(getattr(store, "directory", "")),
    )


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
