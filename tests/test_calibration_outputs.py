"""Issue 13 bar: every output built on an uncalibrated family says ``calibrated: false``.

A fleet on Google TPU v7 Ironwood (``google_tpu`` borrows ``nvidia_gpu``'s factors) through
``planner``, ``planner-size`` and ``planner-roi``: summary.json carries ``calibrated``,
``borrowed_from`` and ``hardware_confirmed`` per pool (per option for the studies) and the
report shows a note; the calibrated GB200 fleet carries ``calibrated: true`` and no note.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from planner import config
from planner.app.provenance import all_calibrated, fleet_provenance
from planner.report.notes import calibration_notes
from tests.cli_runner import run_cli

BIN = Path(sys.executable).parent
TPU_OPTION = "+sizing.options.tpu_only={fleet:ironwood_llama70b,sized_pools:[tpu]}"
ONLY_GPU_AND_TPU = ["~sizing.options.lpu_only", "~sizing.options.gpu_prefill_lpu_decode"]


def run(script: str, args: list[str], run_dir: Path) -> dict[str, Any]:
    result = run_cli(BIN / script, [f"hydra.run.dir={run_dir}", *args])
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return summary


def test_fleet_provenance_follows_the_efficiency_rule() -> None:
    fleet = config.fleet(config.load_named("fleet", "ironwood_llama70b", "fleet"))
    assert fleet_provenance(fleet) == {
        "tpu": {"calibrated": False, "borrowed_from": "nvidia_gpu", "hardware_confirmed": True}
    }
    gpu = config.fleet(config.load_named("fleet", "gb200_llama70b", "fleet"))
    assert fleet_provenance(gpu)["gpu"]["calibrated"] is True
    assert not all_calibrated(fleet_provenance(fleet)) and all_calibrated(fleet_provenance(gpu))


def test_notes_name_the_pool_the_donor_and_unconfirmed_parts() -> None:
    notes = calibration_notes(
        {
            "a": {"calibrated": False, "borrowed_from": "nvidia_gpu", "hardware_confirmed": False},
            "b": {"calibrated": True, "borrowed_from": None, "hardware_confirmed": True},
        }
    )
    assert len(notes) == 2 and all(n.startswith("a: ") for n in notes)
    assert "calibrated: false" in notes[0] and "nvidia_gpu" in notes[0]
    assert "unconfirmed" in notes[1]


def test_planner_run_on_ironwood_says_calibrated_false(tmp_path: Path) -> None:
    common = ["workload=chat", "run.max_sim_time_s=20"]
    tpu = run("planner", ["fleet=ironwood_llama70b", *common], tmp_path / "tpu")
    assert tpu["pools"]["tpu"]["calibrated"] is False
    assert tpu["pools"]["tpu"]["borrowed_from"] == "nvidia_gpu"
    assert tpu["pools"]["tpu"]["hardware_confirmed"] is True
    assert "tpu: calibrated: false" in (tmp_path / "tpu" / "report.html").read_text()
    gpu = run("planner", ["fleet=gb200_llama70b", *common], tmp_path / "gpu")
    assert (
        gpu["pools"]["gpu"]["calibrated"] is True and gpu["pools"]["gpu"]["borrowed_from"] is None
    )
    assert "calibrated: false" not in (tmp_path / "gpu" / "report.html").read_text()


def test_planner_size_marks_the_uncalibrated_option(tmp_path: Path) -> None:
    args = ["demand.n_trees=300", "demand.trees_per_s=40", TPU_OPTION, *ONLY_GPU_AND_TPU]
    summary = run("planner-size", args, tmp_path / "run")
    options = summary["options"]
    assert options["tpu_only"]["pools"]["tpu"]["calibrated"] is False
    assert options["gpu_only"]["pools"]["gpu"]["calibrated"] is True
    assert "calibrated: false for tpu_only" in summary["answer"]
    assert "tpu_only/tpu: calibrated: false" in (tmp_path / "run" / "report.html").read_text()


def test_planner_roi_marks_the_uncalibrated_candidate(tmp_path: Path) -> None:
    args = [
        "roi.n_trees=300",
        "roi.curve_points=3",
        "mc.samples=200",
        "mc.chunk_size=100",
        "mc.backend=serial",
        "mc.n_jobs=1",
        f"cache_dir={tmp_path / 'cache'}",
        TPU_OPTION,
        *ONLY_GPU_AND_TPU,
        "roi.candidate=tpu_only",
    ]
    summary = run("planner-roi", args, tmp_path / "run")
    assert summary["calibration"]["tpu_only"]["tpu"]["calibrated"] is False
    assert summary["calibration"]["gpu_only"]["gpu"]["calibrated"] is True
    assert "tpu_only/tpu: calibrated: false" in (tmp_path / "run" / "report.html").read_text()
