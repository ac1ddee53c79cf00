"""Issue 13 item 5: ``planner-roofline -m hardware=a,b,c`` writes one comparison of the parts."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from planner import config
from planner.app.roofline import comparison_rows, roofline
from tests.cli_runner import run_cli
from tests.conftest import load_model, load_system

SCRIPT = Path(sys.executable).parent / "planner-roofline"
PARTS = ("h200", "tpu_v7_ironwood", "rubin_cpx")


def test_three_part_sweep_writes_table_chart_and_report_section(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        SCRIPT,
        [
            "-m",
            "model=llama3_70b",
            f"hardware={','.join(PARTS)}",
            "precision=fp8",
            "tp=8",
            "ep=1",
            "dp_attention=false",
            f"hydra.sweep.dir={sweep}",
        ],
    )
    assert result.returncode == 0, result.stderr
    with (sweep / "roofline_comparison.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["hardware"] for r in rows) == sorted(PARTS)
    by_part = {r["hardware"]: r for r in rows}
    # Uncalibrated (borrowed factors) and unconfirmed (press-only) parts are marked; H200 is not.
    assert by_part["tpu_v7_ironwood"]["calibrated"] == "False"
    assert "borrowed from nvidia_gpu" in by_part["tpu_v7_ironwood"]["caveat"]
    assert by_part["rubin_cpx"]["caveat"] == "unconfirmed figures"
    assert by_part["h200"]["caveat"] == ""
    speeds = [float(r["max_output_tokens_per_s_per_accelerator"]) for r in rows]
    assert speeds == sorted(speeds, reverse=True) and speeds[-1] > 0
    svg = (sweep / "roofline_comparison.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<path") >= len(PARTS)
    assert "tokens/s per user" in svg and "tpu_v7_ironwood (uncalibrated)" in svg
    report = (sweep / "report.html").read_text()
    assert 'id="comparison"' in report and "roofline_comparison" not in report
    assert report.index('id="comparison"') < report.index('id="points"')


def test_comparison_rows_match_the_in_process_roofline() -> None:
    model = load_model("llama3_70b")
    options = config.roofline_options({"tp": 8, "ep": 1, "dp_attention": False})
    summaries = [roofline(model, load_system(h), options) for h in PARTS]
    rows = comparison_rows(summaries)
    assert [r["hardware"] for r in rows] == [
        s["hardware"]
        for s in sorted(summaries, key=lambda s: -s["max_output_tokens_per_s_per_accelerator"])
    ]
    for summary in summaries:
        curve = summary["curve"]
        assert curve[0]["concurrency"] == 1 and curve[-1]["concurrency"] == summary["max_batch"]
        users = [p["tokens_per_s_per_user"] for p in curve]
        per_accel = [p["output_tokens_per_s_per_accelerator"] for p in curve]
        # more users: slower per user, more tokens per accelerator (the trade-off the chart shows)
        assert users == sorted(users, reverse=True)
        assert per_accel[-1] > per_accel[0]
