"""What every study shares: the study block, variant configs, one simulated variant with costs.

A study is a scenario that answers its question by comparing several runs (variants) or static
figures. Its config arrives here as a plain mapping (the CLI resolves Hydra's config into one);
nothing in this module imports Hydra or OmegaConf. A variant is the scenario's config with
dotted-key overrides applied (``{"fleet.pools.gpu.racks": 2}``); a value ``"@group/option"``
stands for the whole ``conf/group/option.yaml`` mapping. Every variant runs with the scenario's
seed (common random numbers), so differences between variants are not sampling noise.

A study returns a :data:`StudyResult`: the summary (with an ``answer`` sentence stating the
result in numbers) and its charts as :data:`ChartSpec` mappings (keyword arguments of
:func:`planner.report.plots.line_png`), which the CLI renders: app/ does not draw.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from planner import config
from planner.econ.tco import EconomicsSpec, cost_summary, pool_cost
from planner.perf.replica import Replica
from planner.sim.config import FleetSpec, SloSpec
from planner.sim.engine import SimulationResult, simulate
from planner.sim.headroom import knee_rate_per_s
from planner.sim.metrics import offered_call_rate_per_s, summarize
from planner.sim.pool import pool_replica
from planner.specs.errors import ConfigError

ChartSpec = dict[str, Any]
"""Keyword arguments of :func:`planner.report.plots.line_png` (title, x, ys, labels)."""

StudyResult = tuple[dict[str, Any], dict[str, ChartSpec]]
"""A study's summary and its charts by PNG file name."""


def study_block(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The scenario's ``study`` mapping.

    Raises:
        ConfigError: ``study`` is missing or not a mapping.
    """
    study = cfg.get("study")
    if not isinstance(study, Mapping):
        raise ConfigError("study", f"must be a mapping with a kind, got {type(study).__name__}")
    return dict(study)


def set_dotted(data: dict[str, Any], key: str, value: Any, field: str) -> None:
    """Set ``data[a][b][c] = value`` for ``key = "a.b.c"``, creating missing levels.

    Raises:
        ConfigError: A level on the path is not a mapping (named by ``field``).
    """
    node = data
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(field, f"cannot set {key}: {part} is not a mapping")
        node = child
    node[leaf] = value


def variant_config(
    cfg: Mapping[str, Any], overrides: Mapping[str, Any], name: str
) -> dict[str, Any]:
    """The scenario config with a variant's dotted-key overrides applied (a deep copy).

    Args:
        cfg: The scenario's resolved config.
        overrides: ``{dotted key: value}``; ``"@group/option"`` loads ``conf/group/option.yaml``.
        name: The variant's name (for error messages: ``study.variants.NAME.KEY``).
    """
    variant = copy.deepcopy(dict(cfg))
    for key, value in overrides.items():
        field = f"study.variants.{name}.{key}"
        if isinstance(value, str) and value.startswith("@"):
            # "@fleet/gb200_prefill_lpu_decode": a whole config group option
            group, _, option = value[1:].partition("/")
            value = config.load_named(group, option, field)
        set_dotted(variant, str(key), copy.deepcopy(value), field)
    return variant


def variants(cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``study.variants`` as ``{name: overrides}``.

    Raises:
        ConfigError: ``study.variants`` is not a non-empty mapping of mappings.
    """
    raw = study_block(cfg).get("variants")
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("study.variants", "must map variant names to config overrides")
    out = {}
    for name, overrides in raw.items():
        if overrides is not None and not isinstance(overrides, Mapping):
            raise ConfigError(f"study.variants.{name}", "must be a mapping of dotted overrides")
        out[str(name)] = dict(overrides or {})
    return out


def fleet_cost(
    summary: dict[str, Any], fleet: FleetSpec, economics: EconomicsSpec
) -> dict[str, Any]:
    """The run's cost summary (``summary["cost"]``), as ``planner`` computes it."""
    return cost_summary(
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


def run_variant(
    cfg: Mapping[str, Any], base_dir: Path | None = None, *, headroom: bool = False
) -> tuple[dict[str, Any], SimulationResult]:
    """Simulate one variant and summarize it with its costs and fleet (as ``planner`` does).

    Args:
        cfg: The variant's config (fleet, workload, slo, seed, economics).
        base_dir: Directory relative trace paths are resolved against.
        headroom: Also compute each pool's static knee and load fraction
            (``pools.<name>.headroom``), which needs the fleet spec, and the fleet's busiest
            load fraction with batches capped at ``batching.max_batch`` (``knee_capped``).
    """
    fleet = config.fleet(cfg.get("fleet"))
    workload = config.workload(cfg.get("workload"), base_dir=base_dir)
    slo = config.slo(cfg.get("slo") or {})
    seed = config.seed(cfg.get("seed", 0))
    economics = config.economics(cfg.get("economics") or {})
    result = simulate(fleet, workload, seed=seed)
    summary = summarize(result, slo, fleet) if headroom else summarize(result, slo)
    if headroom:
        busiest, knees = busiest_load_fraction(fleet, result, slo)
        summary["knee_capped"] = {"busiest_load_fraction": busiest, "knee_calls_per_s": knees}
    summary["cost"] = fleet_cost(summary, fleet, economics)
    summary["fleet"] = {
        p.name: {"role": p.role, "hardware": p.system.name, "model": p.model.name, "racks": p.racks}
        for p in fleet.pools
    }
    return summary, result


def run_variants(
    cfg: Mapping[str, Any], base_dir: Path | None = None, *, headroom: bool = False
) -> dict[str, tuple[dict[str, Any], SimulationResult]]:
    """:func:`run_variant` of every ``study.variants`` entry, in the file's order."""
    return {
        name: run_variant(variant_config(cfg, overrides, name), base_dir, headroom=headroom)
        for name, overrides in variants(cfg).items()
    }


class BatchCapped:
    """A replica whose ``max_batch`` is also capped by the pool's configured ``max_batch``.

    :func:`planner.sim.headroom.knee_rate_per_s` sizes the decode batch from KV memory alone; a
    small-active MoE then shows batches of thousands that the serving stack (and the simulator,
    which honours ``batching.max_batch``) never runs. Everything else is the replica's own.
    """

    def __init__(self, replica: Replica, max_batch: int) -> None:
        """Wrap ``replica``; ``max_batch`` is the pool's ``batching.max_batch``."""
        self._replica = replica
        self._cap = max_batch

    def __getattr__(self, name: str) -> Any:
        """Everything but ``max_batch`` is the wrapped replica's."""
        return getattr(self._replica, name)

    def max_batch(self, context_tokens: float) -> int:
        """The replica's KV-bounded batch, at most the pool's ``batching.max_batch``."""
        return min(self._replica.max_batch(context_tokens), self._cap)


def busiest_load_fraction(
    fleet: FleetSpec, result: SimulationResult, slo: SloSpec
) -> tuple[float | None, dict[str, float]]:
    """Offered call rate over each pool's knee, with batches capped at ``batching.max_batch``.

    The knee is :func:`planner.sim.headroom.knee_rate_per_s` at the run's mean input / output
    tokens per call (as ``summary.json``'s ``headroom``), on a replica whose batch is also capped
    by the pool's ``max_batch`` (see :class:`BatchCapped`).

    Returns:
        ``(max load fraction or None, {pool: knee calls/s})``; None when no pool has a knee or
        no call was offered.
    """
    inputs = result.trees.input_tokens.astype(np.float64)
    outputs = result.trees.output_tokens.astype(np.float64)
    offered = offered_call_rate_per_s(result)
    if not inputs.size or not offered:
        return None, {}
    replicas = {stats.name: stats.replicas for stats in result.pools}
    knees = {}
    for pool in fleet.pools:
        perf = pool_replica(pool)
        overhead_s = float(getattr(getattr(perf, "efficiency", None), "request_overhead_s", 0.0))
        capped = cast(Replica, BatchCapped(perf, pool.batching.max_batch))
        knees[pool.name] = knee_rate_per_s(
            capped,
            pool.role,
            replicas[pool.name],
            float(inputs.mean()),
            float(outputs.mean()),
            slo,
            overhead_s,
        )
    if any(k <= 0 for k in knees.values()):
        return None, knees
    return max(offered / k for k in knees.values()), knees
