"""``planner-roi`` end to end: outputs, a resumed Monte Carlo study, and bad distributions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

SCRIPT = Path(sys.executable).parent / "planner-roi"
QUICK = [
    "roi.n_trees=600",
    "roi.curve_points=4",
    "mc.samples=400",
    "mc.chunk_size=100",
    "mc.backend=serial",
    "mc.n_jobs=1",
]


def command(args: list[str], run_dir: Path, cache: Path) -> list[str]:
    return [str(SCRIPT), f"hydra.run.dir={run_dir}", f"cache_dir={cache}", *args]


def run(args: list[str], run_dir: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    argv = command(args, run_dir, cache)
    return run_cli(argv[0], argv[1:])


def test_roi_run_writes_npv_percentiles_plots_and_answer(tmp_path: Path) -> None:
    result = run(QUICK, tmp_path / "run", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    roi = summary["roi"]
    assert set(roi["npv_usd"]) >= {"p5", "p50", "p95"}
    assert roi["npv_usd"]["p5"] <= roi["npv_usd"]["p50"] <= roi["npv_usd"]["p95"]
    assert 0.0 <= roi["prob_npv_positive"] <= 1.0
    assert roi["samples"] == 400 and roi["standard_error_usd"] > 0
    assert "p50" in roi["payback_years"]
    assert len(roi["tornado"]) >= 3
    assert "NPV > 0 in" in summary["answer"]
    low, high = roi["prob_npv_positive_ci95"]
    assert low <= roi["prob_npv_positive"] <= high
    for name in ("npv_histogram.png", "tornado.png", "breakeven.png", "cashflow.png"):
        assert (tmp_path / "run" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["mc"]["chunks_resumed"] == 0
    # Second run: the capacity curves come from the cache, the samples from the checkpoint.
    again = run(QUICK, tmp_path / "run2", tmp_path / "cache")
    assert again.returncode == 0, again.stderr
    second = json.loads((tmp_path / "run2" / "summary.json").read_text())
    assert all(c["from_cache"] for c in second["curves"].values())
    assert second["mc"]["chunks_resumed"] == second["mc"]["chunks_total"] == 4
    assert second["roi"]["npv_usd"] == roi["npv_usd"]


@pytest.mark.slow
def test_killed_study_resumes_without_redoing_finished_samples(tmp_path: Path) -> None:
    """Kill a Monte Carlo study midway; the rerun evaluates only the chunks not yet saved."""
    cache = tmp_path / "cache"
    total_chunks = 200
    args = [*QUICK, "mc.samples=100000", "mc.chunk_size=500"]
    warm = run([*QUICK], tmp_path / "warm", cache)  # fills the capacity-curve cache
    assert warm.returncode == 0, warm.stderr
    known = set(cache.glob("montecarlo/*"))
    process = subprocess.Popen(command(args, tmp_path / "killed", cache), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    study: list[Path] = []
    while time.monotonic() < deadline and process.poll() is None:
        study = [d for d in cache.glob("montecarlo/*") if d not in known]
        if study and len(list(study[0].glob("chunk_*.npy"))) >= 3:
            break
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert study, "the study never started"
    before = {p.name: p.stat().st_mtime_ns for p in study[0].glob("chunk_*.npy")}
    assert 3 <= len(before) < total_chunks, f"must be killed midway, had {len(before)} chunks"
    assert not (tmp_path / "killed" / "summary.json").exists()

    resumed = run(args, tmp_path / "resumed", cache)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert summary["mc"]["chunks_total"] == total_chunks
    assert summary["mc"]["chunks_resumed"] == len(before)
    after = {p.name: p.stat().st_mtime_ns for p in study[0].glob("chunk_*.npy")}
    assert len(after) == total_chunks
    assert all(after[name] == mtime for name, mtime in before.items()), (
        "a finished chunk was redone"
    )
    fresh = run(args, tmp_path / "fresh", tmp_path / "other_cache")
    assert fresh.returncode == 0, fresh.stderr
    expected = json.loads((tmp_path / "fresh" / "summary.json").read_text())["roi"]["npv_usd"]
    assert summary["roi"]["npv_usd"] == expected


BAD_INPUTS = [
    (["mc.inputs.pue={dist: uniform, loc: 1.2, scale: -0.3}"], "mc.inputs.pue"),
    (
        ["mc.inputs.demand_growth_per_year={dist: weibull, c: 2}"],
        "mc.inputs.demand_growth_per_year",
    ),
    (["mc.inputs.efficiency_gain_per_year.c=3"], "mc.inputs.efficiency_gain_per_year"),
    (
        [
            "~mc.inputs.electricity_usd_per_kwh",
            "+mc.inputs.electricity_usd_per_kwh={dist: loguniform, a: 0.2, b: 0.1}",
        ],
        "mc.inputs.electricity_usd_per_kwh",
    ),
    (["mc.inputs.pue={dist: uniform, lo: 1}"], "mc.inputs.pue.lo"),
    (["mc.inputs.pue.scale=[1"], "overrides"),
    (["no_such_key=3"], "no_such_key"),
    (["~mc.inputs.pue"], "mc.inputs.pue"),
    (["mc.samples=0"], "mc.samples"),
    (["mc.samples=100000000000"], "mc.samples"),  # 6.5 TiB of draws: refused, not attempted
    (["mc.inputs.pue={dist: norm, loc: 1e308, scale: 1e308}"], "mc.inputs.pue"),  # overflow
    (["mc.backend=spark"], "mc.backend"),
    (["roi.candidate=gpu_only"], "roi.candidate"),
    (["roi.baseline=tpu_only"], "roi.baseline"),
    (["roi.horizon_years=0"], "roi.horizon_years"),
    (["+roi.choices.lpu_generation={h100: 1.0}"], "roi.choices.lpu_generation.h100"),
    (["+roi.choices.model={no_such_model: 1.0}"], "roi.choices.model.no_such_model"),
    (["+roi.choices.model={llama3_70b: 0.0}"], "roi.choices.model"),
    (["+roi.choices.flavour={a: 1.0}"], "roi.choices"),
    (
        ["+mc.inputs.lpu_price_factor={dist: uniform, loc: -1, scale: 1}"],
        "mc.inputs.lpu_price_factor",
    ),
    (["+mc.inputs.context_scal=1.0"], "mc.inputs"),
]


@pytest.mark.parametrize(("args", "field"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_fails_with_one_line_and_exit_2(
    tmp_path: Path, args: list[str], field: str
) -> None:
    run_dir = tmp_path / "run"
    result = run([*QUICK, *args], run_dir, tmp_path / "cache")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"error: {field}"), lines[0]
    assert not run_dir.exists()
