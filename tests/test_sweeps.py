"""Sweeps (``-m``): the sweep-summary callback, its report, the launchers and the Optuna example."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf

from planner.app.sweep import (
    CSV_FILE,
    JOB_ERROR_FILE,
    NO_RESULT,
    PARQUET_FILE,
    flatten,
    objective,
    select_columns,
)
from planner.cli.callbacks import SweepSummary
from planner.report.sweep import assess, column_order, plot_sweep, sweep_html
from planner.report.sweep_files import PLOT_FILE, REPORT_FILE, summarize_sweep
from planner.specs.errors import ConfigError
from tests.cli_runner import run_cli

BIN = Path(sys.executable).parent
QUICK = ["workload.n_trees=20"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sweep(
    script: str, args: list[str], sweep_dir: Path, flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``script [flags] -m hydra.sweep.dir=... args`` (Hydra wants its flags first)."""
    return run_cli(BIN / script, [*flags, "-m", f"hydra.sweep.dir={sweep_dir}", *args])


def read_table(sweep_dir: Path) -> pd.DataFrame:
    """The CSV, checked against the Parquet copy (same rows, same columns)."""
    table = pd.read_csv(sweep_dir / CSV_FILE, dtype={"error": str})
    table["error"] = table["error"].fillna("")
    parquet = pd.read_parquet(sweep_dir / PARQUET_FILE)
    assert list(parquet.columns) == list(table.columns)
    assert len(parquet) == len(table)
    return table


def assert_self_contained_report(sweep_dir: Path, rows: int) -> str:
    page = (sweep_dir / REPORT_FILE).read_text(encoding="utf-8")
    assert page.count("<tr") == rows + 1  # header + one row per job
    assert "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    return page


def assert_no_temporary_files(sweep_dir: Path) -> None:
    assert not list(sweep_dir.glob(".*.tmp")), "an atomic write left its temporary file"


# ---------------------------------------------------------------------------------------------
# End to end with the CLIs


def test_joblib_sweep_of_four_points_writes_table_plot_and_report(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = [
        *QUICK,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "fleet.pools.gpu.racks=1,2",
        "fleet.router=round_robin,least_outstanding",
    ]
    result = sweep("planner", args, out)
    assert result.returncode == 0, result.stderr
    table = read_table(out)
    assert len(table) == 4
    assert list(table["status"]) == ["ok"] * 4 and list(table["error"]) == [""] * 4
    assert sorted(table["job"]) == [0, 1, 2, 3]
    assert set(zip(table["fleet.pools.gpu.racks"], table["fleet.router"], strict=True)) == {
        (r, router) for r in (1, 2) for router in ("round_robin", "least_outstanding")
    }
    metrics = [
        "calls.completed",
        "trees.completed",
        "calls.e2e_s.p50",
        "trees.e2e_s.p99",
        "calls.ttft_s.p99",
        "calls.tpot_s.p99",
        "pools.gpu.busy_fraction",
        "pools.gpu.headroom.load_fraction",
        "throughput.output_tokens_per_s",
        "slo.attainment",
        "cost.headline.usd",
        "cost.usd_per_million_output_tokens",
        "cost.capex_usd",
    ]
    assert set(metrics) <= set(table.columns)
    assert (table["trees.completed"] == 20).all()
    assert (table["cost.capex_usd"][table["fleet.pools.gpu.racks"] == 2] > 0).all()
    assert (out / PLOT_FILE).read_bytes().startswith(PNG_SIGNATURE)
    page = assert_self_contained_report(out, rows=4)
    assert "trees.e2e_s.p99 vs fleet.pools.gpu.racks" in page
    assert_no_temporary_files(out)


def test_failing_job_becomes_a_row_with_its_error_and_the_others_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = [
        *QUICK,
        "fleet.pools.gpu.racks=1,0,2",
        "hydra.callbacks.sweep_summary.metric=calls.ttft_s.p99",
    ]
    result = sweep("planner", args, out)
    assert result.returncode == 0, result.stderr
    table = read_table(out).set_index("fleet.pools.gpu.racks")
    assert list(table.index) == [1, 0, 2]
    assert list(table["status"]) == ["ok", "failed", "ok"]
    assert "fleet.pools.gpu.racks" in table.loc[0, "error"]
    assert table.loc[1, "error"] == "" and table.loc[2, "error"] == ""
    assert table.loc[1, "trees.completed"] == 20 and table.loc[2, "trees.completed"] == 20
    assert table.loc[2, "cost.capex_usd"] > table.loc[1, "cost.capex_usd"]
    page = assert_self_contained_report(out, rows=3)
    assert "calls.ttft_s.p99 vs fleet.pools.gpu.racks" in page  # metric from the command line
    assert 'class="failed"' in page


def test_submitit_local_launcher(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = sweep(
        "planner", [*QUICK, "hydra/launcher=submitit_local", "fleet.pools.gpu.racks=1,2"], out
    )
    assert result.returncode == 0, result.stderr
    table = read_table(out)
    assert list(table["status"]) == ["ok", "ok"]  # submitit's own .submitit/ folder is no job
    assert list(table["fleet.pools.gpu.racks"]) == [1, 2]
    assert (out / ".submitit").is_dir()


def test_planner_size_sweep_has_racks_and_capex_per_option(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = sweep("planner-size", ["demand.n_trees=300", "demand.trees_per_s=20,40"], out)
    assert result.returncode == 0, result.stderr
    table = read_table(out)
    assert list(table["demand.trees_per_s"]) == [20, 40]
    for option in ("gpu_only", "lpu_only", "gpu_prefill_lpu_decode"):
        assert (table[f"options.{option}.racks_total"] >= 1).all()
        assert (table[f"options.{option}.capex_usd"] > 0).all()
    assert_self_contained_report(out, rows=2)


def test_planner_roi_sweep_has_npv_and_probability(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = [
        "roi.n_trees=600",
        "roi.curve_points=4",
        "mc.samples=400",
        "mc.chunk_size=100",
        "mc.backend=serial",
        "mc.n_jobs=1",
        f"cache_dir={tmp_path / 'cache'}",
        "mc.inputs.discount_rate=0.05,0.15",
    ]
    result = sweep("planner-roi", args, out)
    assert result.returncode == 0, result.stderr
    table = read_table(out)
    assert list(table["mc.inputs.discount_rate"]) == [0.05, 0.15]
    assert table["roi.npv_usd.p50"].notna().all()
    assert table["roi.prob_npv_positive"].between(0, 1).all()
    assert_self_contained_report(out, rows=2)


@pytest.mark.slow
def test_ray_launcher_on_a_local_instance(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_ray_launcher.ray_launcher")
    out = tmp_path / "sweep"
    args = [
        *QUICK,
        "hydra/launcher=ray",
        "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init.include_dashboard=false",
        "fleet.pools.gpu.racks=1,0",
    ]
    result = sweep("planner", args, out)
    assert result.returncode == 0, result.stderr
    table = read_table(out)
    assert list(table["status"]) == ["ok", "failed"]
    assert "fleet.pools.gpu.racks" in table["error"][1]


def test_optuna_example_finds_a_fleet_and_returns_plain_floats(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    out = tmp_path / "sweep"
    args = ["hydra.sweeper.n_trials=4", "workload.n_trees=30"]
    result = sweep("planner", args, out, flags=("--config-name", "optuna_fleet_mix"))
    assert result.returncode == 0, result.stderr
    best = yaml.safe_load((out / "optimization_results.yaml").read_text())
    assert isinstance(best["best_value"], float) and 0 < best["best_value"] < 1e6
    assert set(best["best_params"]) == {
        "fleet.pools.gpu.racks",
        "fleet.pools.gpu.ep",
        "fleet.router",
    }
    table = read_table(out)
    assert len(table) == 4 and (table["status"] == "ok").all()
    assert table["objective"].min() == pytest.approx(best["best_value"])
    assert table["fleet.pools.gpu.racks"].between(1, 5).all()
    page = assert_self_contained_report(out, rows=4)
    assert "Optuna best trial" in page


# ---------------------------------------------------------------------------------------------
# The callback on hand-made job directories


def make_job(
    root: Path,
    num: int,
    overrides: list[str],
    result: dict[str, Any] | None,
    error: str | None = None,
) -> Path:
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num}}}))
    if result is not None:
        (job / "summary.json").write_text(json.dumps(result))
    if error is not None:
        (job / JOB_ERROR_FILE).write_text(json.dumps({"error": error, "type": "ConfigError"}))
    return job


def test_crashed_failed_and_ok_jobs_each_become_a_row(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    summary = {
        "trees": {"e2e_s": {"p99": 3.0}},
        "pools": {"a": {"utilization": 0.5}},
        "fleet": {"a": {"hardware": "gb200"}},
        "tornado": [1, 2],
    }
    make_job(out, 0, ["x=1", "router=rr", "fixed=7"], summary)
    make_job(out, 1, ["x=2", "router=rr", "fixed=7"], None)  # crashed: no result file
    make_job(out, 2, ["x=3", "router=lo", "fixed=7"], None, error="bad <racks>")
    make_job(out, 10, ["x=4", "router=lo", "fixed=7"], {**summary, "trees": {"e2e_s": {"p99": 5}}})
    (out / ".submitit" / "123").mkdir(parents=True)
    table = summarize_sweep(out, metric="trees.e2e_s.p99", columns=["pools.*.utilization"])
    assert list(table["job"]) == [0, 1, 2, 10]
    assert list(table.columns) == [
        "job",
        "x",
        "router",
        "status",
        "error",
        "pools.a.utilization",
        "trees.e2e_s.p99",
        "job_dir",
    ]
    assert list(table["status"]) == ["ok", "failed", "failed", "ok"]
    assert list(table["error"]) == ["", NO_RESULT, "bad <racks>", ""]
    assert list(table["x"]) == ["1", "2", "3", "4"]  # values as given; "fixed" is not swept
    csv = read_table(out)
    assert csv["trees.e2e_s.p99"].tolist()[::3] == [3.0, 5.0]
    assert csv["trees.e2e_s.p99"].isna().tolist() == [False, True, True, False]
    assert (out / PLOT_FILE).read_bytes().startswith(PNG_SIGNATURE)
    page = assert_self_contained_report(out, rows=4)
    assert "bad &lt;racks&gt;" in page and "bad <racks>" not in page
    assert_no_temporary_files(out)


def test_callback_reads_swept_keys_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    make_job(out, 0, ["b=1", "a=x"], {"m": 1.0})
    make_job(out, 1, ["b=1", "a=y"], {"m": 2.0})
    config = OmegaConf.create(
        {
            "hydra": {
                "sweep": {"dir": str(out)},
                "output_subdir": ".hydra",
                "overrides": {"task": ["b=1,2", "a=x,y"]},
                "job": {"name": "simulate"},
            }
        }
    )
    SweepSummary(metric="m", columns=["m"]).on_multirun_end(config)
    table = read_table(out)
    assert list(table.columns[:3]) == ["job", "b", "a"]  # sweep order, even though b is constant
    assert "planner sweep" in (out / REPORT_FILE).read_text()


def test_on_job_end_records_an_exception_that_escaped_the_task(tmp_path: Path) -> None:
    config = OmegaConf.create(
        {"hydra": {"mode": RunMode.MULTIRUN, "runtime": {"output_dir": str(tmp_path)}}}
    )
    job_return = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("worker\nlost"))
    SweepSummary().on_job_end(config, job_return)
    assert json.loads((tmp_path / JOB_ERROR_FILE).read_text()) == {
        "error": "worker lost",
        "type": "RuntimeError",
    }


def test_flatten_and_select_columns() -> None:
    flat = flatten({"a": {"b": 1, "c": {"d": None}}, "e": [1], "f": "x"})
    assert flat == {"a.b": 1, "a.c.d": None, "f": "x"}
    assert select_columns(flat, ["f", "a.*"]) == {"f": "x", "a.b": 1, "a.c.d": None}
    assert select_columns(flat, None) == flat


# ---------------------------------------------------------------------------------------------
# The objective returned to the Optuna sweeper


def objective_cfg(**overrides: Any) -> Any:
    spec = {
        "metric": "cost.usd",
        "penalty": 1000.0,
        "constraints": {"slo.attainment": {"min": 0.9}},
        **overrides,
    }
    return OmegaConf.create({"objective": spec})


def test_objective_is_the_metric_when_constraints_hold_and_a_penalty_otherwise() -> None:
    ok = {"cost": {"usd": 12.5}, "slo": {"attainment": 0.95}}
    value = objective(ok, objective_cfg())
    assert value == 12.5 and type(value) is float
    near = objective({**ok, "slo": {"attainment": 0.85}}, objective_cfg())
    far = objective({**ok, "slo": {"attainment": 0.45}}, objective_cfg())
    assert near is not None and far is not None and 1000.0 < near < far
    assert objective({"slo": {"attainment": 0.95}}, objective_cfg()) == 1000.0  # no metric
    assert objective(ok, objective_cfg(direction="maximize")) == 12.5
    failing = objective({**ok, "slo": {"attainment": 0.5}}, objective_cfg(direction="maximize"))
    assert failing is not None and failing < 0
    assert objective(ok, OmegaConf.create({"seed": 0})) is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"metric": None}, "objective.metric"),
        ({"direction": "up"}, "objective.direction"),
        ({"penalty": -1}, "objective.penalty"),
        ({"constraints": {"slo.attainment": {"least": 1}}}, "objective.constraints.slo.attainment"),
        ({"typo": 1}, "objective.typo"),
    ],
)
def test_objective_refuses_a_malformed_section(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        objective({"cost": {"usd": 1.0}}, objective_cfg(**spec))


# ---------------------------------------------------------------------------------------------
# planner.report.sweep


def sweep_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "job": [0, 1, 2, 3, 4],
            "router": ["rr", "rr", "lo", "lo", "lo"],
            "racks": ["1", "2", "1", "2", "3"],
            "status": ["ok", "ok", "ok", "ok", "failed"],
            "error": ["", "", "", "", "boom"],
            "pools.a.utilization": [0.5, 0.3, 0.4, 0.2, math.nan],
            "pools.b.utilization": [0.1, 0.1, 0.1, 0.1, math.nan],
        }
    )


def test_plot_sweep_draws_numeric_and_categorical_axes_and_skips_failures() -> None:
    rows = sweep_rows()
    numeric = plot_sweep(rows, metric="pools.*.utilization", x="racks", group_by=["router"])
    assert numeric.png is not None and numeric.png.startswith(PNG_SIGNATURE)
    assert "4 successful job(s)" in numeric.caption and "1 job(s)" in numeric.caption
    categorical = plot_sweep(rows, metric="pools.a.utilization", x="router")
    assert categorical.png is not None
    assert plot_sweep(rows, metric="nope", x="racks").png is None
    failed = rows.assign(status="failed")
    assert plot_sweep(failed, metric="pools.a.utilization", x="racks").caption.endswith(
        "no job succeeded"
    )


def test_sweep_html_is_one_escaped_page() -> None:
    rows = sweep_rows().assign(error=["", "", "", "", "<script>alert(1)</script>"])
    plot = plot_sweep(rows, metric="pools.a.utilization", x="racks", group_by=["router"])
    page = sweep_html(rows, title="t & u", plot=plot, notes=["note <b>"])
    assert page.startswith("<!DOCTYPE html>") and "<script>" not in page
    assert "&lt;script&gt;" in page and "t &amp; u" in page and "note &lt;b&gt;" in page
    assert page.count('<tr class="failed">') == 1
    assert "5 job(s): 4 ok, 1 failed" in page


def judged_rows() -> pd.DataFrame:
    """Four points against a 100 s tree SLO: two meet it, one misses, one failed."""
    return pd.DataFrame(
        {
            "job": [0, 1, 2, 3],
            "racks": ["1", "2", "4", "8"],
            "status": ["ok", "ok", "ok", "failed"],
            "error": ["", "", "", "boom"],
            "trees.e2e_s.p99": [130.0, 95.0, 80.0, math.nan],
            "calls.ttft_s.p99": [1.0, 1.0, 0.5, math.nan],
            "slo.tree_e2e_s": [100.0, 100.0, 100.0, math.nan],
            "slo.ttft_s": [10.0, 10.0, 10.0, math.nan],
            "slo.attainment": [0.9, 0.995, 0.999, math.nan],
            "cost.usd_per_million_output_tokens": [1.0, 2.0, 4.0, math.nan],
        }
    )


def test_assess_picks_the_cheapest_point_that_meets_the_slos() -> None:
    rows = judged_rows()
    verdict = assess(rows, ["racks"])
    assert verdict.feasible == {0: False, 1: True, 2: True, 3: None}
    assert verdict.best == 1  # racks=1 is cheaper but misses the tree SLO
    assert verdict.answer.startswith("Best: racks=2, the cheapest of the 2 of 4 points meeting")
    assert "$2.00 per million output tokens" in verdict.answer
    assert "tree p99 95 s ≤ 100 s" in verdict.answer and "99.5%" in verdict.answer
    missed = {"slo.tree_e2e_s": 50.0, "slo.attainment": [0.2, 0.3, 0.4, math.nan]}
    none_ok = assess(rows.assign(**missed), ["racks"])
    assert none_ok.best is None and none_ok.answer.startswith("No point meets the SLOs")
    assert "closest is racks=4: tree p99 80 s > 50 s" in none_ok.answer
    # An objective (Optuna) ranks instead of cost, and its constraints can veto a point.
    optuna = rows.assign(
        objective=[1.0, 2.0, 1.5, math.nan], constraints_met=[True, True, False, None]
    )
    verdict = assess(optuna, ["racks"])
    assert verdict.feasible[2] is False and verdict.best == 1


def test_sweep_page_leads_with_the_answer_and_the_decision_columns() -> None:
    rows = judged_rows()
    verdict = assess(rows, ["racks"])
    plot = plot_sweep(rows, metric="trees.e2e_s.p99", x="racks", assessment=verdict)
    assert plot.png is not None and plot.png.startswith(PNG_SIGNATURE)
    page = sweep_html(rows, title="sweep", plot=plot, keys=["racks"], assessment=verdict)
    assert column_order(rows, ["racks"])[:5] == [
        "racks",
        "status",
        "slo.attainment",
        "cost.usd_per_million_output_tokens",
        "trees.e2e_s.p99",
    ]
    assert column_order(rows, ["racks"])[-2:] == ["job", "error"]
    answer = page[page.index('<div class="answer"') : page.index("</div>", page.index("answer"))]
    assert "Best: racks=2" in answer and "SLOs: tree p99 ≤ 100 s, TTFT p99 ≤ 10 s" in answer
    assert page.count('<tr class="best">') == 1 and page.count('<tr class="infeasible">') == 1
    assert page.count('<tr class="failed">') == 1
    assert "$2.00" in page and "99.5%" in page  # money in $, fractions in %
    assert "slo.tree_e2e_s" not in page.split("<table>")[1]  # constant limits: in the answer box


def test_a_single_run_prints_no_sweep_line_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    single = OmegaConf.create({"hydra": {"mode": RunMode.RUN, "job": {"num": None}}})
    SweepSummary().on_job_end(single, JobReturn(status=JobStatus.COMPLETED))
    assert terminal.getvalue() == ""  # was "sweep: job #None done" after every run
    job = OmegaConf.create(
        {
            "hydra": {
                "mode": RunMode.MULTIRUN,
                "job": {"num": 3},
                "runtime": {"output_dir": str(tmp_path)},
            }
        }
    )
    SweepSummary().on_job_end(job, JobReturn(status=JobStatus.COMPLETED))
    assert terminal.getvalue() == "sweep: job #3 done\n"
