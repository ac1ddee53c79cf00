"""One ``planner`` run through the Python API: validated spec in, typed summary out.

:func:`simulation_spec` turns plain mappings (a Hydra config as a container, a YAML file, a
notebook's dicts) into a :class:`SimulationSpec` through :mod:`planner.config`;
:func:`run_simulation` simulates it and assembles the :class:`~planner.app.summary.RunSummary`
(metrics, cost, fleet, verdict) that ``planner`` writes as ``summary.json``. Nothing here
writes files or imports Hydra.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from planner import config
from planner.app.cells import cells_simulator
from planner.app.costing import summary_cost
from planner.app.summary import RunSummary
from planner.app.verdict import headline_cost, verdict
from planner.config.options import OutputOptions, RunOptions
from planner.econ.tco import EconomicsSpec
from planner.sim.config import FleetSpec, SloSpec
from planner.sim.engine import SimulationResult, WorkloadSpec, simulate
from planner.sim.faults import FailureSpec
from planner.sim.metrics import summarize

SimulationUpdate = Callable[[float, float], None]
"""``update(sim_time_s, last_arrival_s)``: the engine's progress hook."""


@dataclass(frozen=True)
class SimulationSpec:
    """Everything one run needs, validated (build it with :func:`simulation_spec`).

    Attributes:
        fleet: Pools, routing and KV links.
        workload: Arrivals and tree shapes.
        slo: Latency limits (s) the run is judged against.
        seed: Root of the run's random streams.
        run: Stepwise mode and the simulated/wall-clock limits (s).
        failures: Accelerator failures to inject (``None``: none).
        economics: Prices and depreciation for the cost section.
        output: What the CLI writes (calls table format, HTML report); unused by the run.
        scenario: The name recorded in the summary.
        fleet_name: The fleet's config name (``fleet=<name>``), named by the verdict and the
            terminal; ``None`` when the fleet was built inline.
    """

    fleet: FleetSpec
    workload: WorkloadSpec
    slo: SloSpec = field(default_factory=SloSpec)
    seed: int = 0
    run: RunOptions = field(default_factory=RunOptions)
    failures: FailureSpec | None = None
    economics: EconomicsSpec = field(default_factory=EconomicsSpec)
    output: OutputOptions = field(default_factory=OutputOptions)
    scenario: str = "default"
    fleet_name: str | None = None


def simulation_spec(data: Mapping[str, Any], base_dir: Path | None = None) -> SimulationSpec:
    """A :class:`SimulationSpec` from ``planner``'s config as plain mappings.

    Keys: ``fleet`` and ``workload`` (required), ``slo``, ``seed``, ``run``, ``output``,
    ``failures``, ``economics``, ``scenario``; they are validated in that order, so the first
    bad field is the one reported.

    Args:
        data: The config (``conf/planner.yaml``'s layout).
        base_dir: Directory a relative trace path is resolved against.

    Raises:
        ConfigError: A value is invalid (names the dotted field and what is allowed).
    """
    return SimulationSpec(
        fleet=config.fleet(data.get("fleet")),
        workload=config.workload(data.get("workload"), base_dir=base_dir),
        slo=config.slo(data.get("slo") or {}),
        seed=config.seed(data.get("seed", 0)),
        run=config.run_options(data.get("run") or {}),
        output=config.output_options(data.get("output") or {}),
        failures=config.failures(data.get("failures") or {}),
        economics=config.economics(data.get("economics") or {}),
        scenario=str(data.get("scenario", "default")),
        fleet_name=None if data.get("fleet_name") is None else str(data["fleet_name"]),
    )


@dataclass(frozen=True)
class RunResult:
    """A run: its typed summary and the simulator's per-call arrays (for tables and plots)."""

    summary: RunSummary
    result: SimulationResult


def fleet_section(fleet: FleetSpec) -> dict[str, dict[str, Any]]:
    """``summary.json``'s ``fleet``: per pool its role, hardware, model, racks and mapping."""
    return {
        p.name: {
            "role": p.role,
            "hardware": p.system.name,
            "model": p.model.name,
            "racks": p.racks,
            "precision": p.precision,
            "tp": p.tp,
            "ep": p.ep,
            "stack": p.stack,
        }
        for p in fleet.pools
    }


def summary_mapping(spec: SimulationSpec, result: SimulationResult) -> dict[str, Any]:
    """The ``summary.json`` mapping of a finished run: metrics, cost, fleet, verdict."""
    summary = summarize(result, spec.slo, spec.fleet)
    summary["cost"] = summary_cost(spec.fleet, summary, spec.economics)
    summary["scenario"] = spec.scenario
    summary["fleet_name"] = spec.fleet_name
    summary["fleet"] = fleet_section(spec.fleet)
    headline = headline_cost(summary)
    processed = headline["metric"] == "usd_per_million_tokens_processed"
    summary["cost"]["usd_per_million_tokens_processed"] = headline["usd"] if processed else None
    summary["cost"]["headline"] = headline
    summary["verdict"] = verdict(summary)
    return summary


def run_simulation(spec: SimulationSpec, progress: SimulationUpdate | None = None) -> RunResult:
    """Simulate ``spec`` and summarize it.

    Args:
        spec: The validated run.
        progress: Called as the simulated clock advances (a progress bar), or ``None``.

    Returns:
        The typed summary (``summary.to_json()`` is ``summary.json``) and the raw result.
    """
    # A region split into cells (planner.app.cells) runs without a progress bar.
    simulator: Callable[..., SimulationResult] = (
        cells_simulator(spec.run) if spec.run.cells > 1 else partial(simulate, progress=progress)
    )
    result = simulator(
        spec.fleet,
        spec.workload,
        seed=spec.seed,
        stepwise=spec.run.stepwise,
        max_sim_time_s=spec.run.max_sim_time_s,
        failures=spec.failures,
        max_wall_s=spec.run.max_wall_s,
    )
    return RunResult(RunSummary.from_json(summary_mapping(spec, result)), result)
