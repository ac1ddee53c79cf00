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
from hydra.utils import to_absolute_path
from omegaconf import DictConfig
from rich.console import Console

from planner.app.progress import on_terminal
from planner.app.sizing import CandidateProgress, Progress, SizingSpec, run_sizing, sizing_spec
from planner.cli import common
from planner.report.sizing import p99_chart_png, size_report, terminal_table

GROUPS = ("workload", "sizing", "economics", "failures")


def build_spec(cfg: DictConfig) -> SizingSpec:
    """The typed study from the composed config (``ConfigError`` naming a bad field)."""
    return sizing_spec(common.to_mapping(cfg, ""), base_dir=Path(to_absolute_path(".")))


def run(cfg: DictConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Validate, size every option, and return ``summary.json`` (no files written)."""
    return run_sizing(build_spec(cfg), progress).to_json()


@hydra.main(version_base="1.3", config_path=str(common.CONF_DIR), config_name="size")
@common.guarded_task
def _app(cfg: DictConfig) -> None:
    terminal = on_terminal()
    err = Console(stderr=True, highlight=False)

    def progress(event: CandidateProgress) -> None:
        if terminal:
            err.print(event.line(), markup=False)

    summary = run(cfg, progress)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    chart = p99_chart_png(summary)
    common.atomic_write_json(out_dir / "summary.json", summary)
    common.atomic_write_bytes(out_dir / "sizing.png", chart)
    choices = HydraConfig.get().runtime.choices
    run_info = {group: str(choices[group]) for group in GROUPS if choices.get(group)}
    common.atomic_write_text(
        out_dir / "report.html", size_report(summary, chart, run_info=run_info)
    )
    console = common.make_console()
    console.print(terminal_table(summary))
    console.print(summary["answer"])
    console.print(f"summary.json, sizing.png and report.html written to {out_dir}")


def main() -> None:
    """Console-script entry point."""
    common.run_guarded(_app, sys.argv[1:], GROUPS, "size")


if __name__ == "__main__":
    main()
