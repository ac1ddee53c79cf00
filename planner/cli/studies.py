"""``planner scenario=NAME`` for scenarios with a ``study:`` block: the CLI shell of a study.

The study logic lives in :mod:`planner.app.studies`; this module turns Hydra's config into a
plain mapping, resolves trace paths against the user's working directory and draws the charts
the study describes (:func:`planner.report.plots.line_png`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from planner.app.studies import STUDIES
from planner.app.studies import run_study as run_app_study
from planner.config.scenario import SCENARIO_DIR
from planner.report.html_study import study_question
from planner.report.plots import line_png
from planner.specs.errors import ConfigError

__all__ = ["STUDIES", "run_study"]


def run_study(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Run the scenario's study; returns its summary and its charts as PNG bytes by file name.

    Raises:
        ConfigError: The config cannot be resolved, or the study refuses a field.
    """
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception as error:  # an interpolation OmegaConf cannot resolve
        raise ConfigError("study", str(error).splitlines()[0]) from None
    assert isinstance(plain, dict)
    summary, charts = run_app_study(
        {str(k): v for k, v in plain.items()}, base_dir=Path(to_absolute_path("."))
    )
    configured = (plain.get("study") or {}).get("question")
    scenario_file = SCENARIO_DIR / f"{summary['scenario']}.yaml"
    header = scenario_file.read_text(encoding="utf-8") if scenario_file.is_file() else None
    summary["question"] = study_question(
        str(summary["study"]), None if configured is None else str(configured), header
    )
    return summary, {name: line_png(**spec) for name, spec in charts.items()}
