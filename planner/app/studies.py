"""Studies: scenarios that answer a question by comparing runs or static figures.

A scenario file with a ``study:`` block is run by ``planner scenario=NAME`` as a study; its
``kind`` picks the function below. Every study returns a summary with an ``answer`` sentence
stating the result in numbers, plus its charts as data (the CLI draws them).

Kinds (module):

* ``hybrid_vs_gpu``, ``fanout_tail``, ``shared_prefix``: simulated variants (:mod:`.studies_sim`).
* ``lpu_latency``, ``long_context``, ``silicon_cases``, ``long_documents``: static figures
  (:mod:`.studies_static`).
* ``tree_cost``: cost and latency per agent tree of simulated fleet variants, against reference
  prices (``rubin_cpx_prefill``, ``price_per_task``; :mod:`.studies_tree`).
* ``reasoning_split``: one long reasoning call against a parallel debate on GPU, LPU and hybrid
  fleets, with a load sweep (:mod:`.studies_reasoning`).
* ``silicon_mix``: the cheapest GPU/ASIC fleet mix for a workload mix (Optuna,
  :mod:`.studies_mix`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from planner.app import studies_mix, studies_reasoning, studies_sim, studies_static, studies_tree
from planner.app.studies_base import StudyResult, study_block
from planner.app.study_questions import study_question
from planner.config.scenario import SCENARIO_DIR
from planner.specs.errors import require_choice

Study = Callable[[Mapping[str, Any], "Path | None"], StudyResult]

STUDIES: dict[str, Study] = {
    "hybrid_vs_gpu": studies_sim.hybrid_vs_gpu,
    "fanout_tail": studies_sim.fanout_tail,
    "shared_prefix": studies_sim.shared_prefix,
    "lpu_latency": studies_static.lpu_latency,
    "long_context": studies_static.long_context,
    "silicon_cases": studies_static.silicon_cases,
    "long_documents": studies_static.long_documents,
    "tree_cost": studies_tree.tree_cost,
    "reasoning_split": studies_reasoning.reasoning_split,
    "silicon_mix": studies_mix.silicon_mix,
}
"""Study kind -> function(config, base_dir)."""


def run_study(cfg: Mapping[str, Any], base_dir: Path | None = None) -> StudyResult:
    """Run the scenario's study; the summary carries ``scenario``, ``study``, ``answer``, ``seed``.

    Args:
        cfg: The scenario's resolved config as a plain mapping.
        base_dir: Directory relative trace paths resolve against (None: as given).

    Raises:
        ConfigError: The study block or one of its fields is invalid (one line naming it).
    """
    study = study_block(cfg)
    kind = require_choice("study.kind", str(study.get("kind")), STUDIES)
    summary, charts = STUDIES[kind](cfg, base_dir)
    summary = {"scenario": str(cfg.get("scenario", kind)), "study": kind, **summary}
    scenario_file = SCENARIO_DIR / f"{summary['scenario']}.yaml"
    header = scenario_file.read_text(encoding="utf-8") if scenario_file.is_file() else None
    configured = study.get("question")
    summary["question"] = study_question(
        kind, None if configured is None else str(configured), header
    )
    summary["seed"] = cfg.get("seed", 0)
    return summary, charts
