"""``planner-size`` end to end: the comparison table, summary.json, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

SCRIPT = Path(sys.executable).parent / "planner-size"
QUICK = ["demand.n_trees=300", "demand.trees_per_s=40"]


def run(args: list[str], run_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(SCRIPT, [f"hydra.run.dir={run_dir}", *args])


def test_sizes_every_option_and_reports_costs(tmp_path: Path) -> None:
    result = run(QUICK, tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "gpu_prefill_lpu_decode" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["options"]) == {"gpu_only", "lpu_only", "gpu_prefill_lpu_decode"}
    for option in summary["options"].values():
        assert option["feasible"]
        for key in (
            "racks",
            "accelerators",
            "capex_usd",
            "opex_usd_per_year",
            "usd_per_million_output_tokens",
            "p99",
            "analytic_racks",
        ):
            assert key in option
        assert option["p99"]["tpot_s"] <= summary["slo"]["tpot_p99_s"]
        assert option["capex_usd"] > 0


BAD_INPUTS = [
    (["demand.trees_per_s=0"], "demand.trees_per_s"),
    (["demand.n_trees=-3"], "demand.n_trees"),
    (["slo.tpot_p99_s=-1"], "slo.tpot_p99_s"),
    (["sizing=nope"], "sizing"),
    (["sizing.max_racks=0"], "sizing.max_racks"),
    (["sizing.options.gpu_only.fleet=nope"], "sizing.options.gpu_only.fleet"),
    (["sizing.options.gpu_only.sized_pools=[cpu]"], "sizing.options.gpu_only.sized_pools"),
    (["economics.pue=0.5"], "economics.pue"),
    (["workload=no_such"], "workload"),
]


@pytest.mark.parametrize(("args", "field"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_fails_with_one_line_and_exit_2(
    tmp_path: Path, args: list[str], field: str
) -> None:
    run_dir = tmp_path / "run"
    result = run([*QUICK, *args], run_dir)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"error: {field}"), lines[0]
    assert not run_dir.exists()
