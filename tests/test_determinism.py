"""Same config and seed: byte-identical summary.json (wall time aside) across runs and launchers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tests.cli_runner import run_cli

PLANNER = Path(sys.executable).parent / "planner"
ARGS = ["workload.n_trees=60", "failures=llama3_rates", "failures.rate_multiplier=1000"]


def _bytes_without_wall_time(path: Path) -> bytes:
    """summary.json with the wall-clock field zeroed (the only field allowed to differ)."""
    text = path.read_text()
    return re.sub(r'"wall_time_s": [0-9.eE+-]+', '"wall_time_s": 0', text).encode()


def _run(args: list[str]) -> None:
    result = run_cli(PLANNER, args)
    assert result.returncode == 0, result.stderr


def test_same_seed_is_byte_identical_across_runs_and_launchers(tmp_path: Path) -> None:
    _run([*ARGS, "seed=11", f"hydra.run.dir={tmp_path / 'a'}"])
    _run([*ARGS, "seed=11", f"hydra.run.dir={tmp_path / 'b'}"])
    _run(["-m", "hydra/launcher=joblib", *ARGS, "seed=11", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    a = _bytes_without_wall_time(tmp_path / "a" / "summary.json")
    assert a == _bytes_without_wall_time(tmp_path / "b" / "summary.json")
    assert a == _bytes_without_wall_time(tmp_path / "sweep" / "0" / "summary.json")


def test_different_seeds_give_different_results(tmp_path: Path) -> None:
    _run([*ARGS, "seed=11", f"hydra.run.dir={tmp_path / 'a'}"])
    _run([*ARGS, "seed=12", f"hydra.run.dir={tmp_path / 'b'}"])
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert a["seed"] != b["seed"]
    assert a["calls"]["e2e_s"] != b["calls"]["e2e_s"]
