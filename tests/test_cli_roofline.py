"""``planner-roofline`` end to end: the report, summary.json, and clean failures on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

SCRIPT = Path(sys.executable).parent / "planner-roofline"


def run(args: list[str], run_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(SCRIPT, [f"hydra.run.dir={run_dir}", *args])


def test_default_run_prints_a_table_and_writes_summary(tmp_path: Path) -> None:
    result = run([], tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "tok/s/accelerator" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["model"] == "qwen35_397b_a17b" and summary["hardware"] == "gb200_nvl72"
    assert summary["accelerators_per_replica"] == 8
    assert summary["max_batch"] > 0
    assert summary["max_output_tokens_per_s_per_accelerator_at_tpot"] > 0
    assert (
        summary["max_output_tokens_per_s_per_accelerator_at_tpot"]
        <= summary["max_output_tokens_per_s_per_accelerator"]
    )
    assert not list((tmp_path / "run").glob(".summary.json.*.tmp"))


def test_lpu_run_reports_chips_per_replica(tmp_path: Path) -> None:
    result = run(
        [
            "model=llama3_70b",
            "hardware=groq_lpu_v1",
            "precision=int8",
            "tp=1",
            "ep=1",
            "isl=2048",
            "osl=256",
        ],
        tmp_path / "run",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["accelerators_per_replica"] >= 305
    assert summary["racks_per_replica"] == summary["accelerators_per_replica"] / 72


BAD_INPUTS = [
    (["model=not_a_model"], "model"),
    (["hardware=h999"], "hardware"),
    (["tp=0"], "tp"),
    (["ep=-2"], "ep"),
    (["isl=-5"], "isl"),
    (["osl=abc"], "osl"),
    (["tpot_limit_s=0"], "tpot_limit_s"),
    (["precision=fp16"], "precision"),
    (["model=llama3_70b", "hardware=h100", "precision=fp4", "tp=8", "ep=1"], "precision"),
    (["model=llama3_70b", "hardware=h100", "precision=bf16", "tp=1", "ep=1"], "model"),
    (["model=llama3_70b", "ep=8"], "ep"),
    (["tp=128", "ep=8"], "tp"),
    (["tp=1", "ep=8"], "ep"),  # the old DEP8 spelling: the error says tp=8 ep=8 dp_attention=true
    (["tp=8", "ep=3"], "ep"),
    (["dp_attention=maybe"], "dp_attention"),
    (["stack=tgi"], "stack"),
    (["model=deepseek_r1", "hardware=mi300x", "stack=trtllm", "ep=1"], "stack"),
    (["concurrency=0"], "concurrency"),
    (["kv_precision=int4"], "kv_precision"),
    (
        ["model=llama3_70b", "hardware=groq_lpu_v1", "precision=int8", "tp=1", "ep=1", "chips=100"],
        "chips",
    ),
]


@pytest.mark.parametrize(("args", "field"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_fails_with_one_line_and_exit_2(
    tmp_path: Path, args: list[str], field: str
) -> None:
    run_dir = tmp_path / "run"
    result = run(args, run_dir)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"error: {field}"), lines[0]
    assert not run_dir.exists(), list(run_dir.rglob("*"))


def test_concurrency_sweep_writes_the_serving_curve(tmp_path: Path) -> None:
    """``-m concurrency=...`` (a Hydra sweep) gives one at_concurrency point per job."""
    sweep = tmp_path / "sweep"
    result = run_cli(
        SCRIPT,
        [
            "-m",
            "model=deepseek_r1",
            "hardware=h200",
            "precision=fp8",
            "stack=sglang",
            "tp=8",
            "ep=1",
            "dp_attention=false",
            "isl=922",
            "osl=922",
            "concurrency=4,64",
            f"hydra.sweep.dir={sweep}",
            "hydra.sweep.subdir=c${concurrency}",
        ],
    )
    assert result.returncode == 0, result.stderr
    points = {c: json.loads((sweep / f"c{c}" / "summary.json").read_text()) for c in (4, 64)}
    for c, summary in points.items():
        at = summary["at_concurrency"]
        assert summary["concurrency"] == c and summary["stack"] == "sglang"
        assert summary["calibrated"] is True
        assert set(at) == {
            "output_tokens_per_s_per_accelerator",
            "tokens_per_s_per_user",
            "ttft_s",
            "tpot_s",
            "batch",
        }
        assert at["tokens_per_s_per_user"] == pytest.approx(1.0 / at["tpot_s"])
    low, high = points[4]["at_concurrency"], points[64]["at_concurrency"]
    assert high["output_tokens_per_s_per_accelerator"] > low["output_tokens_per_s_per_accelerator"]
    assert high["tokens_per_s_per_user"] < low["tokens_per_s_per_user"]


def test_borrowed_profile_says_calibrated_false(tmp_path: Path) -> None:
    result = run(
        [
            "model=deepseek_r1",
            "hardware=mi355x",
            "precision=fp4",
            "stack=vllm",
            "tp=8",
            "ep=8",
            "dp_attention=true",
            "concurrency=16",
        ],
        tmp_path / "run",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["calibrated"] is False and summary["stack"] == "sglang"
