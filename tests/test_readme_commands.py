"""Every command in the README's ``bash`` code blocks runs (the README stays true).

Commands are parsed from the README itself (continuation lines joined, comments dropped) and run
as the console scripts of this environment, in the repository root, with output directories
under ``tmp_path`` and small overrides appended so each takes seconds (fewer trees, samples or
trials, appended after the command's own options so they win). A command that cannot run here is
listed in :data:`NOT_RUN` with the reason; that list must stay tiny.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

NOT_RUN = {
    "make run": "sets up .venv with pip (network) before running `planner`, which is run below",
    "make test": "runs this whole suite, this test included",
    "mc.backend=ray mc.ray_address=ray://head:10001": "needs a Ray cluster at head:10001",
}
"""A substring of a command that cannot run in CI -> why."""

FAST = {
    "planner": ["workload.n_trees=20", "run.max_sim_time_s=600"],
    "planner-size": ["demand.n_trees=100", "replication.count=1"],
    "planner-roi": ["mc.samples=100", "roi.n_trees=100", "roi.curve_points=2"],
    "planner-roofline": [],
}
"""Overrides appended per console script to keep a command fast (its results are not checked)."""

OPTUNA_FAST = ["hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1"]


def readme_commands(text: str) -> list[str]:
    """The commands of every fenced ``bash`` block: continuations joined, comments dropped."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        joined = re.sub(r"\s*\\\n\s*", " ", block)
        for line in joined.splitlines():
            command = line.split(" #", 1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


COMMANDS = readme_commands(README.read_text())


def test_the_readme_has_commands_of_every_tool() -> None:
    tools = {shlex.split(c)[0].removeprefix(".venv/bin/") for c in COMMANDS}
    assert {"planner", "planner-size", "planner-roi", "planner-roofline", "make"} <= tools
    assert len(COMMANDS) >= 20
    assert any("workload=trace workload.arrivals.path=" in c for c in COMMANDS)


def _skip_reason(command: str) -> str | None:
    return next((why for key, why in NOT_RUN.items() if key in command), None)


def test_not_run_list_is_tiny_and_current() -> None:
    skipped = [c for c in COMMANDS if _skip_reason(c)]
    assert len(skipped) == len(NOT_RUN) <= 3, skipped


def argv_of(command: str, tmp_path: Path) -> list[str]:
    """The command as run here: this environment's script, its overrides, then fast ones."""
    words = shlex.split(command)
    tool = words[0].removeprefix(".venv/bin/")
    multirun = "-m" in words or "--multirun" in words
    # Appended last, so they win (Hydra applies overrides in order): the command's shape is
    # what is checked here, not its size (the 100,000-tree region run shrinks to 20 trees).
    extra = list(FAST[tool])
    if tool == "planner-roi":
        extra.append(f"cache_dir={tmp_path / 'cache'}")
    if "optuna_fleet_mix" in command:
        extra += OPTUNA_FAST
    out = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    return [str(BIN / tool), *words[1:], *extra, f"{out}={tmp_path / 'out'}"]


@pytest.mark.parametrize("command", COMMANDS, ids=[c.removeprefix(".venv/bin/") for c in COMMANDS])
def test_readme_command_runs(command: str, tmp_path: Path) -> None:
    reason = _skip_reason(command)
    if reason:
        pytest.skip(reason)
    argv = argv_of(command, tmp_path)
    result = run_cli(argv[0], argv[1:], cwd=ROOT)
    assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr
    outputs = list((tmp_path / "out").rglob("summary.json"))
    assert outputs, f"no summary.json from {argv}"
    for path in outputs:
        json.loads(path.read_text())


def test_trace_replay_replays_every_row(tmp_path: Path) -> None:
    """``workload=trace workload.arrivals.path=FILE``: one chat call per trace row, as given."""
    trace = ROOT / "tests" / "data" / "synthetic_azure_format.csv"
    rows = len(trace.read_text().strip().splitlines()) - 1
    run_dir = tmp_path / "run"
    argv = [str(BIN / "planner"), "workload=trace", f"workload.arrivals.path={trace}"]
    argv.append(f"hydra.run.dir={run_dir}")
    result = run_cli(argv[0], argv[1:])
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["trees"]["arrived"] == summary["calls"]["arrived"] == rows
    assert summary["calls"]["completed"] == rows
    missing = run_cli(BIN / "planner", ["workload=trace", f"hydra.run.dir={tmp_path / 'none'}"])
    assert missing.returncode == 2
    assert (
        missing.stderr.strip() == "error: workload.arrivals.path: is required: the trace CSV file"
    )


def test_readme_python_blocks_run_without_hydra() -> None:
    """Every ``python`` block of the README runs as written, and never imports Hydra."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)
    assert blocks, "the README shows the Python API"
    code = "\n".join(blocks) + "\nimport sys\nassert 'hydra' not in sys.modules\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
