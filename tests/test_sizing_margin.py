"""Sizing that shows its margin: replications, p99 intervals, the fleet one unit smaller."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from planner.app.sizing import CandidateProgress, SizingSpec, run_sizing
from planner.econ.sizing import (
    SizingOption,
    SizingSlo,
    confidence_interval,
    meets,
    replication_seeds,
    size_option,
)
from planner.report.sizing import p99_chart_png, size_report
from planner.sim.config import FleetSpec
from planner.sim.engine import WorkloadSpec
from planner.specs.errors import ConfigError
from planner.workload import ChatShape, PoissonArrivals
from tests.test_econ_sizing import h100_pool

CHAT = WorkloadSpec(PoissonArrivals(1.0), ChatShape(), n_trees=300)
SLO = SizingSlo(tree_e2e_p99_s=20.0, ttft_p99_s=1.0, tpot_p99_s=0.05)
GPU_ONLY = SizingOption("gpu_only", FleetSpec(pools=(h100_pool(),)), ("gpu",))

# The study's spec, its progress events and its summary.json.
Study = tuple[SizingSpec, list[CandidateProgress], dict[str, Any]]


@pytest.fixture(scope="module")
def study() -> Study:
    """One study of the H100 option at a demand that needs several racks (3 replications)."""
    spec = SizingSpec(CHAT, 200.0, SLO, (GPU_ONLY,), max_racks=32, replications=3)
    events: list[CandidateProgress] = []
    result = run_sizing(spec, events.append)
    return spec, events, result.to_json()


def test_replication_seeds_are_independent_children_of_the_root() -> None:
    assert replication_seeds(7, 1) == [7]
    three = replication_seeds(7, 3)
    assert len(set(three)) == 3
    assert replication_seeds(7, 2) == three[:2]  # child i does not depend on the count
    assert replication_seeds(8, 3) != three
    with pytest.raises(ConfigError, match=r"replication\.count"):
        replication_seeds(0, 0)


def test_confidence_interval_is_student_t() -> None:
    interval = confidence_interval([1.0, 2.0, 3.0], 0.95)
    assert interval is not None
    low, high = interval
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) x s / sqrt(n)
    assert low == pytest.approx(2.0 - half) and high == pytest.approx(2.0 + half)
    assert confidence_interval([1.0], 0.95) is None
    assert confidence_interval([1.0, math.inf], 0.95) == (math.inf, math.inf)


def test_chosen_fleet_passes_by_its_upper_bound_and_one_unit_fewer_fails(study: Study) -> None:
    _, _, summary = study
    option = summary["options"]["gpu_only"]
    assert option["feasible"] and option["replications"] == 3
    racks = option["racks"]["gpu"]
    assert racks >= 2, "the demand should need more than one rack for a margin to show"
    below = option["below"]["gpu"]
    assert below["racks"]["gpu"] == racks - 1 and below["meets_slo"] is False
    slo = {"tree_e2e_s": 20.0, "ttft_s": 1.0, "tpot_s": 0.05}
    for check in [option, below, *option["candidates"]]:
        upper = check["p99_upper"]
        finite = all(v is not None for v in upper.values())
        assert check["meets_slo"] == (
            check["complete"] and finite and all(upper[m] <= slo[m] for m in slo)
        )
        for metric, (low, high) in (check["p99_ci"] or {}).items():
            mean = check["p99"][metric]
            if mean is not None:
                assert low <= mean <= high
                runs = [r[metric] for r in check["p99_replications"]]
                assert mean == pytest.approx(float(np.mean(runs)))
    # the replications differ (independent seeds), so the intervals have a width
    runs = option["p99_replications"]
    assert len(runs) == 3 and len({r["tree_e2e_s"] for r in runs}) == 3


def test_upper_bound_is_stricter_than_the_mean() -> None:
    """An SLO between a candidate's mean p99 and its upper bound.

    The mean would pass, the study must not.
    """
    base = size_option(GPU_ONLY, CHAT, 200.0, SLO, seed=0, max_racks=32, replications=3)
    check = base.check
    tree_mean, tree_high = check.p99["tree_e2e_s"], check.p99_upper["tree_e2e_s"]
    assert tree_mean < tree_high
    between = SizingSlo((tree_mean + tree_high) / 2, 1e6, 1e6)
    assert meets(check.p99, between) and not meets(check.p99_upper, between)
    strict = size_option(GPU_ONLY, CHAT, 200.0, between, seed=0, max_racks=32, replications=3)
    assert strict.racks["gpu"] >= 1
    for candidate in strict.candidates:
        assert candidate.meets_slo == (candidate.complete and meets(candidate.p99_upper, between))
    same = {tuple(c.racks.values()): c for c in strict.candidates}.get((base.racks["gpu"],))
    if same is not None:  # the same candidate re-simulated: same seeds, same figures, now failing
        assert same.p99 == check.p99 and not same.meets_slo


def test_progress_reports_every_candidate_once(study: Study) -> None:
    _, events, summary = study
    option = summary["options"]["gpu_only"]
    assert len(events) == option["simulations"] == len(option["candidates"])
    assert len({tuple(e.check.racks.items()) for e in events}) == len(events)
    line = events[0].line()
    assert "\n" not in line and line.startswith("[1/1] gpu_only: gpu ")
    assert ("meets the SLOs" in line) == events[0].check.meets_slo


def test_summary_names_model_stack_power_and_floor_space(study: Study) -> None:
    _, _, summary = study
    json.dumps(summary, allow_nan=False)  # strict JSON: no inf / NaN
    option = summary["options"]["gpu_only"]
    assert option["model"] == "llama3_70b" and option["stack"] == {"gpu": "trtllm"}
    assert option["floor_space_racks"] == option["racks_total"] == option["racks"]["gpu"]
    assert 0 < option["power_mw"] < option["power_mw_peak"] < option["facility_power_mw_peak"]
    assert option["facility_power_mw_peak"] == pytest.approx(option["power_mw_peak"] * 1.3)
    assert summary["replications"] == 3 and summary["confidence"] == 0.95
    assert "gpu_only" in summary["answer"] and "misses" in summary["answer"]


def test_report_embeds_the_chart_with_slo_lines(study: Study) -> None:
    _, _, summary = study
    png = p99_chart_png(summary)
    assert png.startswith(b"\x89PNG") and png == p99_chart_png(summary)  # deterministic
    page = size_report(summary, png)
    assert "data:image/png;base64," in page and "p99 against racks" in page
    assert "one rack unit fewer" in page and "llama3_70b" in page and "trtllm" in page
    assert "Candidates simulated" in page


def test_cli_writes_chart_report_and_refuses_bad_replication(tmp_path: Path) -> None:
    from tests.test_cli_size import QUICK, run

    result = run([*QUICK, "replication.count=2"], tmp_path / "run")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["replications"] == 2
    assert (tmp_path / "run" / "sizing.png").read_bytes().startswith(b"\x89PNG")
    page = (tmp_path / "run" / "report.html").read_text()
    assert "p99 against racks" in page and "data:image/png;base64," in page
    assert result.stderr == ""  # not a terminal: no progress lines
    bad_values = {"replication.count=0": "replication.count"}
    bad_values["replication.confidence=1.5"] = "replication.confidence"
    for bad, field in bad_values.items():
        failed = run([*QUICK, bad], tmp_path / "bad")
        assert failed.returncode == 2 and failed.stderr.startswith(f"error: {field}")
        assert len(failed.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
