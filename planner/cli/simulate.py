"""``planner``: simulate a fleet serving an agent workload; ``planner scenario=NAME`` runs a study.

Writes into the Hydra run directory: ``summary.json`` (keys documented in the README), the
per-call table (``calls.parquet`` or ``calls.csv``), ``report.html``, and prints a summary.
The run itself is :func:`planner.app.simulation.run_simulation`.

``scenario=NAME`` selects ``scenarios/NAME.yaml`` as the primary config (it extends
``conf/planner.yaml`` and overrides groups); the other overrides apply on top of it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from planner.app.progress import ProgressDisplay, SimulationUpdate
from planner.app.simulation import SimulationSpec, run_simulation, simulation_spec
from planner.app.studies import run_study
from planner.app.sweep import REPEAT_FILE, objective, score_once
from planner.cli import common
from planner.report.calls import write_calls_table
from planner.report.console import render_run
from planner.report.html import simulation_report
from planner.report.html_study import study_report
from planner.report.plots import line_png
from planner.sim.engine import SimulationResult
from planner.specs.errors import ConfigError

GROUPS = ("fleet", "workload", "economics", "failures")


def run(
    cfg: DictConfig, display: ProgressDisplay | None = None
) -> tuple[dict[str, Any], SimulationResult]:
    """Validate the config, simulate, summarize (no output files); ``display`` shows progress."""
    outcome = run_simulation(_spec(cfg), progress=_hook(display))
    return outcome.summary.to_json(), outcome.result


def _hook(display: ProgressDisplay | None) -> SimulationUpdate | None:
    """The engine's progress hook drawing on ``display`` (None when nothing is drawn)."""
    return display.simulation() if display is not None and display.enabled else None


def _spec(cfg: DictConfig) -> SimulationSpec:
    """The run's spec; a relative trace path is read from the directory the user started in."""
    data = common.to_mapping(cfg, "")
    try:  # the fleet=<name> chosen, named by the verdict (none when not run under Hydra)
        data["fleet_name"] = HydraConfig.get().runtime.choices.get("fleet")
    except ValueError:
        data["fleet_name"] = None
    return simulation_spec(data, base_dir=Path(to_absolute_path(".")))


def _simulate(cfg: DictConfig, out_dir: Path) -> float | None:
    """One run: simulate, write its files, print; returns the sweeper's objective (or None)."""
    spec = _spec(cfg)  # validates every option before simulating
    with common.progress_display() as display:
        outcome = run_simulation(spec, progress=_hook(display))
    summary = outcome.summary.to_json()
    write_calls_table(outcome.result, out_dir, spec.output.calls_table)
    common.atomic_write_json(out_dir / "summary.json", summary)
    choices = HydraConfig.get().runtime.choices
    run_info = {group: str(choices[group]) for group in GROUPS if choices.get(group)}
    if spec.output.report:  # output.report=false skips the page (and its plotting time)
        report = simulation_report(summary, outcome.result, run_info=run_info)
        common.atomic_write_text(out_dir / "report.html", report)
    console = common.make_console()
    render_run(summary, console)
    console.print(f"results written to {out_dir}")
    return objective(summary, common.to_mapping(cfg, ""))  # Optuna's objective; None without one


@hydra.main(version_base="1.3", config_path=str(common.CONF_DIR), config_name="planner")
@common.guarded_task
def _app(cfg: DictConfig) -> float | None:
    if cfg.get("study") is not None:
        _study(cfg)
        return None
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.get("objective") is None or not common.in_multirun():
        return _simulate(cfg, out_dir)
    # An Optuna trial: a configuration an earlier trial scored is not simulated again.
    sweep_dir = Path(HydraConfig.get().sweep.dir)
    value = score_once(
        sweep_dir, out_dir, common.to_mapping(cfg, ""), lambda: _simulate(cfg, out_dir)
    )
    if (out_dir / REPEAT_FILE).exists():
        common.make_console().print(
            f"already scored in this sweep: objective {value}, not simulated"
        )
    return value


def _study(cfg: DictConfig) -> None:
    """Run a scenario's study (:mod:`planner.app.studies`); write its summary, charts, report."""
    try:
        plain = common.to_mapping(cfg, "")
    except Exception as error:  # an interpolation OmegaConf cannot resolve
        raise ConfigError("study", str(error).splitlines()[0]) from None
    summary, charts = run_study(plain, base_dir=Path(to_absolute_path(".")))
    images = {name: line_png(**spec) for name, spec in charts.items()}
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    for name, data in images.items():
        common.atomic_write_bytes(out_dir / name, data)
    common.atomic_write_json(out_dir / "summary.json", summary)
    common.atomic_write_text(out_dir / "report.html", study_report(summary, images))
    console = common.make_console()
    console.print(summary["answer"])
    console.print(f"results written to {out_dir}")


def main() -> None:
    """Console-script entry point."""
    common.run_guarded(_app, sys.argv[1:], GROUPS, "planner")


if __name__ == "__main__":
    main()
