"""``planner-roi``: NPV, IRR and payback of an ASIC option against a GPU-only baseline.

Compose (Hydra) -> convert (:func:`planner.app.roi_spec.study_spec`) -> run
(:func:`planner.app.roi_study.run_roi_study`) -> write ``summary.json``, the charts and
``report.html`` into the Hydra run directory -> print the answer. The study itself is in
:mod:`planner.app.roi_study`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from planner.app.progress import ProgressDisplay
from planner.app.roi_result import RoiResult
from planner.app.roi_spec import study_spec
from planner.app.roi_study import run_roi_study
from planner.cli import common
from planner.report.console import roi_lines
from planner.report.html_roi import roi_images, roi_report

GROUPS = ("workload", "sizing", "economics")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run(cfg: DictConfig, display: ProgressDisplay | None = None) -> RoiResult:
    """Convert the composed config (every bad value fails here) and run the study."""
    spec = study_spec(common.to_mapping(cfg, "config"), base_dir=Path(to_absolute_path(".")))
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if display is None:
            return
        if stage not in bars:
            bars[stage] = display.counter(stage, total, unit="futures" if "Monte" in stage else "")
        bars[stage](done, total)

    return run_roi_study(spec, checkpoint=True, progress=progress, warn=_warn)


@hydra.main(version_base="1.3", config_path=str(common.CONF_DIR), config_name="roi")
@common.guarded_task
def _app(cfg: DictConfig) -> None:
    with common.progress_display() as display:
        result = run(cfg, display)
    summary = result.to_json()
    images = roi_images(result)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    for name, data in images.items():
        common.atomic_write_bytes(out_dir / name, data)
    common.atomic_write_json(out_dir / "summary.json", summary)
    choices = HydraConfig.get().runtime.choices
    run_info = {group: str(choices[group]) for group in GROUPS if choices.get(group)}
    common.atomic_write_text(
        out_dir / "report.html", roi_report(summary, images, run_info=run_info)
    )
    console = common.make_console()
    for line in roi_lines(summary):
        console.print(line, markup=False, highlight=False)
    console.print(f"results written to {out_dir}")


def main() -> None:
    """Console-script entry point."""
    common.run_guarded(_app, sys.argv[1:], GROUPS, "roi")


if __name__ == "__main__":
    main()
