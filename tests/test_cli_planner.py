"""``planner`` end to end: outputs, scenarios, determinism, and clean failures on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.cli_runner import run_cli

SCRIPT = Path(sys.executable).parent / "planner"
QUICK = ["workload.n_trees=40"]


def run(args: list[str], run_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(SCRIPT, [f"hydra.run.dir={run_dir}", *args])


def test_default_run_writes_summary_and_per_call_table(tmp_path: Path) -> None:
    result = run(QUICK, tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "tree end-to-end" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    calls = summary["calls"]
    assert calls["arrived"] == calls["completed"] + calls["in_flight"] + calls["failed"]
    for key in ("ttft_s", "tpot_s", "e2e_s", "queue_s"):
        assert set(calls[key]) == {"mean", "p50", "p90", "p99"}
    assert summary["trees"]["completed"] == 40
    assert set(summary["trees"]["e2e_s"]) == {"mean", "p50", "p90", "p99"}
    pool = summary["pools"]["gpu"]
    for key in ("utilization", "tokens_per_s", "power_kw_mean"):
        assert pool[key] > 0
    assert summary["throughput"]["output_tokens_per_s"] > 0
    cost = summary["cost"]
    assert cost["capex_usd"] > 0 and cost["opex_usd_per_year"] > 0
    assert cost["usd_per_million_output_tokens"] > 0
    assert 0 <= summary["slo"]["attainment"] <= 1
    assert summary["seed"] == 0 and summary["sim_time_s"] > 0 and summary["wall_time_s"] > 0
    table = pd.read_parquet(tmp_path / "run" / "calls.parquet")
    assert len(table) == calls["arrived"] + calls["not_arrived"]
    assert {"tree", "prefill_replica", "ready_s", "first_token_s", "finish_s"} <= set(table.columns)


def test_same_seed_gives_the_same_summary_apart_from_wall_time(tmp_path: Path) -> None:
    summaries = []
    for name in ("a", "b"):
        assert run([*QUICK, "seed=3"], tmp_path / name).returncode == 0
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        summary.pop("wall_time_s")
        summaries.append(summary)
    assert summaries[0] == summaries[1]


def test_hybrid_fleet_runs_prefill_on_gpus_and_decode_on_lpus(tmp_path: Path) -> None:
    result = run(
        ["fleet=gb200_prefill_lpu_decode", "workload=chat", "workload.n_trees=100"],
        tmp_path / "run",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["fleet"]["prefill"]["hardware"] == "gb200_nvl72"
    assert summary["fleet"]["decode"]["hardware"] == "groq_lpu_v1"
    assert summary["pools"]["decode"]["output_tokens_per_s"] > 0
    assert summary["calls"]["completed"] == 100


def test_csv_per_call_table(tmp_path: Path) -> None:
    result = run([*QUICK, "output.calls_table=csv"], tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(tmp_path / "run" / "calls.csv")) > 40


# Bad input for planner: see the table in tests/test_bad_input_table.py.


def test_a_run_stopped_before_anything_arrived_reports_nothing_measured(tmp_path: Path) -> None:
    """A clock limit before the first arrival is a valid, empty run: exit 0, 'n/a', no crash."""
    result = run(["run.max_sim_time_s=1e-300", "output.report=false"], tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "SLO attainment n/a" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["calls"]["arrived"] == 0 and summary["slo"]["attainment"] is None
    assert summary["partial"] is True
    assert not (tmp_path / "run" / "report.html").exists()


def test_pool_stack_override_selects_that_profile(tmp_path: Path) -> None:
    """``fleet.pools.<name>.stack=vllm`` is a documented override (the pools declare the key)."""
    fast = run([*QUICK, "seed=3"], tmp_path / "default")
    slow = run([*QUICK, "seed=3", "fleet.pools.gpu.stack=vllm"], tmp_path / "vllm")
    assert fast.returncode == 0 and slow.returncode == 0, (fast.stderr, slow.stderr)
    default = json.loads((tmp_path / "default" / "summary.json").read_text())
    vllm = json.loads((tmp_path / "vllm" / "summary.json").read_text())
    # The vLLM-era profile is the slower stack: decode steps take longer per token.
    assert vllm["calls"]["tpot_s"]["p50"] > default["calls"]["tpot_s"]["p50"]
