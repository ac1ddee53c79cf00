"""``planner-roofline``: static per-replica figures for ``model=`` on ``hardware=``.

Prints a table (:func:`planner.report.console.render_roofline`) and writes ``summary.json``
(:func:`planner.app.roofline.roofline`) into the Hydra run directory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from planner import config
from planner.app.roofline import roofline
from planner.cli import common
from planner.report.console import render_roofline

GROUPS = ("model", "hardware")


def compute(cfg: DictConfig) -> dict[str, Any]:
    """Validate the config and compute the roofline summary (no I/O)."""
    data = common.to_mapping(cfg, "")
    model = config.model(data.get("model"))
    system = config.system(data.get("hardware"))
    options = config.roofline_options(
        {k: v for k, v in data.items() if k not in (*GROUPS, "scenario")}
    )
    return roofline(model, system, options)


@hydra.main(version_base="1.3", config_path=str(common.CONF_DIR), config_name="roofline")
@common.guarded_task
def _app(cfg: DictConfig) -> None:
    summary = compute(cfg)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    common.atomic_write_json(out_dir / "summary.json", summary)
    console = common.make_console()
    render_roofline(summary, console)
    console.print(f"summary.json written to {out_dir}")


def main() -> None:
    """Console-script entry point."""
    common.run_guarded(_app, sys.argv[1:], GROUPS, "roofline")


if __name__ == "__main__":
    main()
