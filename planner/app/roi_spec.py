"""The ``planner-roi`` study's input: plain mappings -> a validated, frozen :class:`RoiStudySpec`.

Everything a study reads is converted and checked here, before any work starts, so a bad value
is one ``ConfigError`` line naming its dotted field. Besides the option groups it builds the
*variants*: for each discrete input of ``roi.choices`` (``lpu_generation``: the hardware of every
LPU pool; ``model``: the model of every pool) every combination of values is a copy of each
option's fleet with those swapped in. An LPU pool given another generation drops its explicit
``chips`` and is placed anew (planner.perf.lpu_placement sizes the chain for the new SRAM).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner import config
from planner.app.cache import default_cache_dir, stable_key, writable_cache_dir
from planner.econ.montecarlo import Choice, UncertainInput
from planner.econ.roi import INPUT_NAMES, OPTIONAL_INPUTS
from planner.econ.sizing import SizingOption, SizingSlo
from planner.econ.tco import EconomicsSpec
from planner.sim.engine import WorkloadSpec
from planner.specs.errors import ConfigError, require_choice

CHOICE_FIELDS = {"lpu_generation": "hardware", "model": "model"}
"""Discrete inputs and the pool field each swaps."""


@dataclass(frozen=True)
class Variants:
    """One option's fleet under every combination of the discrete inputs.

    Attributes:
        options: The option per variant, C-order over the study's choices.
        labels: A readable name per variant.
    """

    options: tuple[SizingOption, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class RoiStudySpec:
    """Everything one ROI study depends on (all validated).

    Attributes:
        scenario: Scenario name (``roi`` without one).
        baseline: Name of the GPU-only option.
        candidate: Name of the ASIC option.
        variants: Per option name, its variants.
        choices: Discrete inputs (name, values), in variant-index order.
        inputs: Every uncertain input, continuous and discrete, sorted by name.
        workload: Today's workload.
        slo: The sizing targets, s.
        economics: Fixed economics (networking, facility, maintenance, hours).
        horizon_years: Years compared.
        curve_points: Context-length scales per static curve.
        spot_checks: Sampled futures re-sized by simulation.
        n_trees: Trees per simulation of a spot check.
        max_racks: Largest rack count a spot check's sizing search tries per pool.
        samples: Monte Carlo futures.
        mc_seed: Seed of the Latin hypercube (and of the Sobol and break-even draws).
        chunk_size: Futures per checkpointed chunk.
        backend: ``serial``, ``joblib`` or ``ray``.
        n_jobs: Workers (joblib, Ray).
        ray_address: Ray cluster address, or None.
        seed: Seed of the workload draws (call shape, spot checks).
        sensitivity_samples: Base samples of the Sobol estimate (rounded up to a power of 2).
        breakeven_grid: Points per axis of the break-even chart.
        cache_dir: Capacity curves and Monte Carlo checkpoints.
        fingerprint: Hash of the whole converted configuration (part of the checkpoint key).
    """

    scenario: str
    baseline: str
    candidate: str
    variants: Mapping[str, Variants]
    choices: tuple[tuple[str, Choice], ...]
    inputs: tuple[UncertainInput, ...]
    workload: WorkloadSpec
    slo: SizingSlo
    economics: EconomicsSpec
    horizon_years: int
    curve_points: int
    spot_checks: int
    n_trees: int
    max_racks: int
    samples: int
    mc_seed: int
    chunk_size: int
    backend: str
    n_jobs: int
    ray_address: str | None
    seed: int
    sensitivity_samples: int
    breakeven_grid: int
    cache_dir: Path
    fingerprint: str


def _cache_dir(configured: object) -> Path:
    if configured is not None and not isinstance(configured, str):
        raise ConfigError("cache_dir", f"must be a directory path or null, got {configured!r}")
    path = default_cache_dir() if configured in (None, "") else Path(str(configured)).expanduser()
    return writable_cache_dir(path.absolute())


def _choices(raw: Mapping[Any, Mapping[str, float]]) -> tuple[tuple[str, Choice], ...]:
    out = []
    for name in sorted(raw):
        values = raw[name]
        group = "hardware" if name == "lpu_generation" else "model"
        for label in values:
            field = f"roi.choices.{name}.{label}"
            require_choice(field, str(label), config.group_options(group))
            if name == "lpu_generation":
                kind = config.system(config.load_named(group, label, field)).accelerator.kind
                if kind != "lpu":
                    raise ConfigError(field, f"is a {kind}; allowed: hardware of kind lpu")
        if not values or sum(values.values()) <= 0:
            raise ConfigError(f"roi.choices.{name}", "give at least one value a probability > 0")
        out.append((name, Choice(tuple(values), tuple(values.values()))))
    return tuple(out)


def _variant_fleet(fleet_data: Mapping[str, Any], swaps: Mapping[str, str]) -> dict[str, Any]:
    """The fleet mapping with each discrete input's value swapped into its pools."""
    data = copy.deepcopy(dict(fleet_data))
    base = config.fleet(data)
    lpu_pools = {p.name for p in base.pools if p.system.accelerator.kind == "lpu"}
    for name, pool in data["pools"].items():
        if "model" in swaps:
            pool["model"] = swaps["model"]
        if "lpu_generation" in swaps and name in lpu_pools:
            if pool["hardware"] != swaps["lpu_generation"]:
                pool.pop("chips", None)  # placed anew for the new chip's SRAM
            pool["hardware"] = swaps["lpu_generation"]
    return data


def _variants(
    name: str, option: SizingOption, fleet_name: str, choices: tuple[tuple[str, Choice], ...]
) -> Variants:
    fleet_data = config.load_named("fleet", fleet_name, f"sizing.options.{name}.fleet")
    options, labels = [], []
    for combo in itertools.product(*(c.labels for _, c in choices)):
        swaps = dict(zip((n for n, _ in choices), combo, strict=True))
        field = "roi.choices." + ".".join(f"{k}.{v}" for k, v in swaps.items()) if swaps else ""
        try:
            fleet = config.fleet(_variant_fleet(fleet_data, swaps))
        except ConfigError as err:
            raise ConfigError(field or f"sizing.options.{name}", err.problem) from None
        options.append(SizingOption(name, fleet, option.sized_pools))
        labels.append(" / ".join(combo) if combo else name)
    return Variants(tuple(options), tuple(labels))


def _check_input_names(inputs: tuple[UncertainInput, ...]) -> None:
    names = {i.name for i in inputs}
    for name in INPUT_NAMES:
        if name not in names:
            raise ConfigError(f"mc.inputs.{name}", "is required (a number or a distribution)")
    allowed = (*INPUT_NAMES, *OPTIONAL_INPUTS)
    extra = sorted(names - set(allowed))
    if extra:
        raise config.unknown_key("mc.inputs", extra[0], allowed)


def study_spec(cfg: Mapping[str, Any], base_dir: Path | None = None) -> RoiStudySpec:
    """Convert a composed ``roi.yaml`` mapping (Hydra's, a YAML file's, a notebook's dict).

    Args:
        cfg: The mapping: ``roi``, ``mc``, ``slo``, ``workload``, ``sizing``, ``economics``,
            ``seed``, ``cache_dir``, ``scenario``.
        base_dir: Directory a relative trace path of the workload is resolved against.

    Raises:
        ConfigError: Any bad value, one line naming its dotted field.
    """
    roi = config.roi_options(cfg.get("roi"))
    mc = config.mc_options(cfg.get("mc"))
    continuous = config.uncertain_inputs(mc.inputs, "mc.inputs")
    _check_input_names(continuous)
    choices = _choices(roi.choices)
    discrete = tuple(UncertainInput(name, choice) for name, choice in choices)
    inputs = tuple(sorted((*continuous, *discrete), key=lambda i: i.name))
    seed = config.seed(cfg.get("seed"))
    workload = config.workload(cfg.get("workload"), base_dir=base_dir)
    targets = config.sizing_slo(cfg.get("slo") or {})
    slo = SizingSlo(targets.tree_e2e_p99_s, targets.ttft_p99_s, targets.tpot_p99_s)
    sizing = cfg.get("sizing")
    max_racks, options = config.sizing_options(sizing)
    by_name = {o.name: o for o in options}
    baseline = require_choice("roi.baseline", roi.baseline, by_name)
    candidate = require_choice("roi.candidate", roi.candidate, by_name)
    if baseline == candidate:
        raise ConfigError("roi.candidate", f"must differ from roi.baseline ({baseline})")
    economics = config.economics(cfg.get("economics"))
    cache_dir = _cache_dir(cfg.get("cache_dir"))
    fleets = {n: str(sizing["options"][n]["fleet"]) for n in (baseline, candidate)}  # type: ignore[index]
    variants = {n: _variants(n, by_name[n], fleets[n], choices) for n in (baseline, candidate)}
    fingerprint = stable_key(
        {
            "roi": repr(roi),
            "mc": repr(mc),
            "inputs": repr(inputs),
            "slo": repr(slo),
            "economics": repr(economics),
            "workload": repr(workload),
            "variants": repr(variants),
            "seed": seed,
        }
    )
    return RoiStudySpec(
        scenario=str(cfg.get("scenario") or "roi"),
        baseline=baseline,
        candidate=candidate,
        variants=variants,
        choices=choices,
        inputs=inputs,
        workload=WorkloadSpec(workload.arrivals, workload.tree, n_trees=roi.n_trees),
        slo=slo,
        economics=economics,
        horizon_years=roi.horizon_years,
        curve_points=roi.curve_points,
        spot_checks=roi.spot_checks,
        n_trees=roi.n_trees,
        max_racks=max_racks,
        samples=mc.samples,
        mc_seed=mc.seed,
        chunk_size=mc.chunk_size,
        backend=mc.backend,
        n_jobs=mc.n_jobs,
        ray_address=mc.ray_address,
        seed=seed,
        sensitivity_samples=roi.sensitivity_samples,
        breakeven_grid=roi.breakeven_grid,
        cache_dir=cache_dir,
        fingerprint=fingerprint,
    )
