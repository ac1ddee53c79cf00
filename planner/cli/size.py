"""``planner-size``: the fewest racks of each fleet option meeting the SLOs at a demand.

Composes the config, converts it (:mod:`planner.config`), calls
:func:`planner.app.sizing.run_sizing`, and writes ``summary.json``, ``sizing.png`` and
``report.html`` into the Hydra run directory; prints one line per candidate simulated (on a
terminal), the comparison table and the answer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console

from planner import config
from planner.app.progress import on_terminal
from planner.app.sizing import CandidateProgress, Progress, SizingSpec, run_sizing
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
from planner.econ.sizing import SizingSlo
from planner.report.sizing import p99_chart_png, size_report, terminal_table

GROUPS = ("workload", "sizing", "economics", "failures")


def build_spec(cfg: DictConfig) -> SizingSpec:
    """The typed study from the composed config (``ConfigError`` naming a bad field)."""
    demand = config.demand_options(to_mapping(cfg.get("demand") or {}, "demand"))
    workload = build_workload(cfg.get("workload"))
    targets = config.sizing_slo(to_mapping(cfg.get("slo") or {}, "slo"))
    max_racks, options = config.sizing_options(to_mapping(cfg.get("sizing"), "sizing"))
    replication = config.replication_options(
        to_mapping(cfg.get("replication") or {}, "replication")
    )
    return SizingSpec(
        workload=type(workload)(workload.arrivals, workload.tree, n_trees=demand.n_trees),
        trees_per_s=demand.trees_per_s,
        slo=SizingSlo(targets.tree_e2e_p99_s, targets.ttft_p99_s, targets.tpot_p99_s),
        options=tuple(options),
        max_racks=max_racks,
        economics=build_economics(cfg.get("economics")),
        failures=config.failures(to_mapping(cfg.get("failures") or {}, "failures")),
        seed=config.seed(cfg.get("seed")),
        replications=replication.count,
        confidence=replication.confidence,
        scenario=str(cfg.get("scenario", "size")),
    )


def run(cfg: DictConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Validate, size every option, and return ``summary.json`` (no files written)."""
    return run_sizing(build_spec(cfg), progress).to_json()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="size")
@guarded_task
def _app(cfg: DictConfig) -> None:
    terminal = on_terminal()
    err = Console(stderr=True, highlight=False)

    def progress(event: CandidateProgress) -> None:
        if terminal:
            err.print(event.line(), markup=False)

    summary = run(cfg, progress)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    chart = p99_chart_png(summary)
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_bytes(out_dir / "sizing.png", chart)
    choices = HydraConfig.get().runtime.choices
    run_info = {group: str(choices[group]) for group in GROUPS if choices.get(group)}
    atomic_write_text(out_dir / "report.html", size_report(summary, chart, run_info=run_info))
    console = make_console()
    console.print(terminal_table(summary))
    console.print(summary["answer"])
    console.print(f"summary.json, sizing.png and report.html written to {out_dir}")


def main() -> None:
    """Console-script entry point."""
    run_guarded(_app, sys.argv[1:], GROUPS, "size")


if __name__ == "__main__":
    main()
