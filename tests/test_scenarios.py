"""Every scenario runs with its command and its report states its answer."""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.cli_runner import run_cli

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"planner": "planner", "size": "planner-size", "roi": "planner-roi"}
SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))


def test_every_scenario_states_its_question() -> None:
    for name in SCENARIOS:
        text = (ROOT / "scenarios" / f"{name}.yaml").read_text()
        assert text.startswith("# Question"), name
        assert "?" in text.split("\n\n")[0] or "?" in text[:800], name


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_runs_and_its_report_states_the_answer(tmp_path: Path, name: str) -> None:
    base = yaml.safe_load((ROOT / "scenarios" / f"{name}.yaml").read_text())["defaults"][0]
    command = Path(sys.executable).parent / COMMANDS[base]
    extra = [f"cache_dir={tmp_path / 'cache'}"] if base == "roi" else []
    result = run_cli(command, [f"scenario={name}", f"hydra.run.dir={tmp_path / 'run'}", *extra])
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    report = html.unescape((tmp_path / "run" / "report.html").read_text())
    if base == "planner" and "study" not in summary:
        assert summary["calls"]["completed"] > 0
        return
    answer = summary["answer"]
    assert any(ch.isdigit() for ch in answer), "the answer must be stated in numbers"
    assert answer in report
