"""Chaos: ``kill -9`` at seeded random moments of each CLI's run, then run it again.

For ``planner``, ``planner-size`` and ``planner-roi`` a seeded schedule picks moments across an
uninterrupted run's duration; the process is killed with SIGKILL there. A killed run leaves no
partial output (each output file is either absent or complete and readable), and the same
command run again into the same directory (and, for ``planner-roi``, the same cache) gives the
uninterrupted run's ``summary.json``, wall-clock fields and cache provenance aside.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

BIN = Path(sys.executable).parent
SCHEDULE_SEED = 20261130
KILLS_PER_CLI = 3

CASES: dict[str, list[str]] = {
    "planner": ["workload.n_trees=120", "failures=llama3_rates", "failures.rate_multiplier=1000"],
    "planner-size": ["demand.n_trees=300", "demand.trees_per_s=40"],
    "planner-roi": [
        "roi.n_trees=600",
        "roi.curve_points=4",
        "mc.samples=20000",
        "mc.chunk_size=500",
        "mc.backend=serial",
    ],
}
OUTPUTS = ("summary.json", "report.html", "calls.parquet", "npv_histogram.png", "tornado.png")
# Fields that legitimately differ between an interrupted-then-resumed run and a fresh one.
VOLATILE = re.compile(
    r'"(wall_time_s|wall_s|from_cache|chunks_resumed|checkpoint|seconds)": [^,\n}]+'
)


def _command(script: str, run_dir: Path, cache: Path) -> list[str]:
    extra = [f"cache_dir={cache}"] if script == "planner-roi" else []
    return [str(BIN / script), f"hydra.run.dir={run_dir}", *CASES[script], *extra]


def _comparable(path: Path) -> str:
    return VOLATILE.sub(r'"\1": 0', path.read_text())


def _assert_no_partial_output(run_dir: Path) -> None:
    """Every output present is complete: JSON parses, HTML closes, PNG and parquet end right."""
    for name in OUTPUTS:
        path = run_dir / name
        if not path.exists():
            continue
        data = path.read_bytes()
        if name.endswith(".json"):
            json.loads(data)
        elif name.endswith(".html"):
            assert data.rstrip().endswith(b"</html>"), f"{path} is cut short"
        elif name.endswith(".png"):
            assert data.endswith(b"IEND\xaeB`\x82"), f"{path} is cut short"
        elif name.endswith(".parquet"):
            assert data[:4] == data[-4:] == b"PAR1", f"{path} is cut short"


def _kill_at(command: list[str], delay_s: float) -> int | None:
    """Start ``command``, SIGKILL it after ``delay_s`` (None if it had already finished)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    if process.poll() is not None:
        return None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return process.returncode


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CASES))
def test_killed_runs_leave_no_partial_output_and_rerun_to_the_same_answer(
    script: str, tmp_path: Path
) -> None:
    reference_dir = tmp_path / "reference"
    started = time.monotonic()
    reference = subprocess.run(
        _command(script, reference_dir, tmp_path / "reference_cache"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    duration_s = time.monotonic() - started
    assert reference.returncode == 0, reference.stderr
    expected = _comparable(reference_dir / "summary.json")

    rng = np.random.default_rng([SCHEDULE_SEED, sorted(CASES).index(script)])
    # Early enough that load noise rarely lets a run finish first; a run that does is still
    # rerun and compared, and at least one kill must land inside its run.
    moments = np.sort(rng.uniform(0.1, 0.75, KILLS_PER_CLI)) * duration_s
    killed: list[dict[str, Any]] = []
    for index, moment in enumerate(moments):
        run_dir = tmp_path / f"run{index}"
        cache = tmp_path / f"cache{index}"  # cold, as the reference's was: the kill lands mid-study
        code = _kill_at(_command(script, run_dir, cache), float(moment))
        killed.append({"at_s": float(moment), "killed": code is not None})
        _assert_no_partial_output(run_dir)
        again = subprocess.run(
            _command(script, run_dir, cache), capture_output=True, text=True, timeout=600
        )
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stderr
        _assert_no_partial_output(run_dir)
        assert _comparable(run_dir / "summary.json") == expected, (script, killed[-1])
    print(f"{script}: uninterrupted {duration_s:.1f} s, kills {killed}")
    assert any(k["killed"] for k in killed), f"no kill landed inside a run: {killed}"
