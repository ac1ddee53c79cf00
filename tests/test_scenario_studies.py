"""The issue-13 scenarios (rubin_cpx_prefill, price_per_task, reasoning_split, silicon_mix_2026).

Each runs under its command with small overrides (fewer trees or trials) and its answer sentence
is checked against the figures it claims, recomputed here from ``summary.json``. The study
helpers refuse bad input with one line naming the field. The full-size runs are in
tests/test_scenarios.py.
"""

from __future__ import annotations

import html
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from planner.app.studies_base import set_dotted, variant_config
from planner.app.studies_mix import SHARE_STEPS, silicon_mix
from planner.app.studies_reasoning import SECONDS_PER_YEAR, usd_per_answer_at_load
from planner.app.studies_tree import tree_cost
from planner.specs.errors import ConfigError
from tests.cli_runner import run_cli

BIN = Path(sys.executable).parent


def run_planner(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str, str]:
    """Run ``planner`` with ``args``; returns summary.json, report.html text and stdout."""
    result = run_cli(BIN / "planner", [*args, f"hydra.run.dir={tmp_path / 'run'}"])
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    report = html.unescape((tmp_path / "run" / "report.html").read_text())
    if "study" in summary:
        assert summary["answer"] in report
    return summary, report, result.stdout


def test_rubin_cpx_prefill_answer_follows_the_runs(tmp_path: Path) -> None:
    """Knee costs, the cheapest fleet and the head-to-head in the answer follow the rows."""
    summary, _, _ = run_planner(tmp_path, "scenario=rubin_cpx_prefill", "workload.n_trees=40")
    rows, answer = summary["variants"], summary["answer"]
    assert set(rows) == {"cpx_prefill_rubin_decode", "cpx_prefill_lpu_decode", "rubin_unified"}
    for name, row in rows.items():
        assert row["hardware_confirmed"] is False  # press-only parts must say so
        knee_cost = row["usd_per_tree"] * row["busiest_pool_load_fraction"]
        assert row["usd_per_tree_at_knee"] == pytest.approx(knee_cost)
        assert f"{name}: ${knee_cost:,.3f} per tree at its knee" in answer
    cheapest = min(rows, key=lambda n: rows[n]["usd_per_tree_at_knee"])
    assert f"{cheapest} is cheapest" in answer
    a, b = rows["cpx_prefill_rubin_decode"], rows["cpx_prefill_lpu_decode"]
    ratio = b["usd_per_tree_at_knee"] / a["usd_per_tree_at_knee"]
    word = f"{ratio:,.1f}x cheaper" if ratio >= 1 else f"{1 / ratio:,.1f}x dearer"
    assert f"cpx_prefill_rubin_decode against cpx_prefill_lpu_decode: {word}" in answer
    assert summary["head_to_head"]["cost_ratio"] == pytest.approx(ratio)


def test_price_per_task_sets_the_cost_against_the_seeds(tmp_path: Path) -> None:
    """The $0.15 ratio, tasks a year and the four agents' bill are computed from the rows."""
    summary, _, _ = run_planner(tmp_path, "scenario=price_per_task", "workload.n_trees=30")
    rows, answer, ref = summary["variants"], summary["answer"], summary["reference"]
    assert ref == {"usd_per_task": 0.15, "usd_per_year": 10000.0, "agents": 4.0}
    assert set(rows) == {"gb200", "mi355x", "lpu_v1"}
    best = min(rows, key=lambda n: rows[n]["usd_per_tree_at_knee"])
    row = rows[best]
    assert row["calls_per_tree"] > 10  # many tool-calling turns per task
    assert f"costs {row['usd_per_tree_at_knee'] / 0.15:,.2f}x" in answer
    tasks = 4 * 365.0 * 86400.0 / row["tree_e2e_s_p50"]
    assert f"finish {tasks:,.0f} tasks a year on {best}" in answer
    assert f"${tasks * row['usd_per_tree_at_knee']:,.0f} a year at its knee cost" in answer
    assert f"costs ${row['usd_per_year'] / 1e6:,.2f} M a year" in answer


def test_reasoning_split_sweep_and_flips_follow_the_cells(tmp_path: Path) -> None:
    """The cheapest fleet per load and the flips follow the simulated cells."""
    summary, _, _ = run_planner(
        tmp_path,
        "scenario=reasoning_split",
        "workload.n_trees=12",
        "study.loads_per_s=[0.01,1,1000]",
    )
    loads, cells, sweep = summary["loads_per_s"], summary["cells"], summary["sweep"]
    assert loads == [0.01, 1.0, 1000.0]
    assert set(cells) == {"single_long", "debate_4"}
    assert (
        cells["debate_4"]["gpu"]["calls_per_answer"]
        > cells["single_long"]["gpu"]["calls_per_answer"]
    )
    for arch, fleets in cells.items():
        assert set(fleets) == {"gpu", "lpu", "hybrid"}
        for i, load in enumerate(loads):
            costs = {f: usd_per_answer_at_load(c, load) for f, c in fleets.items()}
            priced = {f: v for f, v in costs.items() if v is not None}
            assert sweep[arch]["cheapest"][i] == min(priced, key=lambda f: priced[f])
        fastest = min(fleets, key=lambda f: fleets[f]["answer_s_p50"])
        assert f"{arch}: " in summary["answer"] and f"fastest {fastest}" in summary["answer"]
        for fleet, cell in fleets.items():
            assert f"{fleet} p50 {cell['answer_s_p50']:,.1f} s" in summary["answer"]
        flips = sweep[arch]["flips"]
        cheapest = sweep[arch]["cheapest"]
        assert len(flips) == sum(cheapest[i] != cheapest[i - 1] for i in range(1, len(loads)))


def test_usd_per_answer_counts_whole_fleet_copies() -> None:
    """A load beyond one fleet's knee pays for a second whole copy."""
    cell = {"knee_answers_per_s": 2.0, "usd_per_year": SECONDS_PER_YEAR}  # $1 per fleet-second
    assert usd_per_answer_at_load(cell, 1.0) == pytest.approx(1.0)  # one copy, half used
    assert usd_per_answer_at_load(cell, 2.0) == pytest.approx(0.5)  # one copy at its knee
    assert usd_per_answer_at_load(cell, 3.0) == pytest.approx(2 / 3)  # two copies
    assert usd_per_answer_at_load({**cell, "knee_answers_per_s": 0.0}, 1.0) is None


def test_silicon_mix_is_never_worse_than_its_extremes_and_scores_each_mix_once(
    tmp_path: Path,
) -> None:
    """The mix beats or ties all-GPU and all-ASIC; every trial is scored or looked up."""
    summary, _, _ = run_planner(tmp_path, "scenario=silicon_mix_2026", "study.n_trials=40")
    cost, search = summary["cost"], summary["search"]
    assert summary["static_model"] is True
    assert search["trials"] == 40 and search["scored"] + search["repeats"] == 40
    for kind in ("gpu", "asic"):
        extreme = summary[f"all_{kind}_usd_per_year"]
        assert extreme is None or cost["usd_per_year"] <= extreme + 1e-6
    share = cost["gpu_spend_share"]
    assert f"GPU/ASIC share of spend {share:.0%}/{1 - share:.0%}" in summary["answer"]
    assert "against the projected 60%/40%" in summary["answer"]
    assert f"${cost['usd_per_year'] / 1e6:,.1f} M a year" in summary["answer"]
    for mix in summary["mix"].values():
        assert round(mix["gpu_share"] * SHARE_STEPS) == pytest.approx(mix["gpu_share"] * 10)
    # A part with borrowed factors or press-only figures in the mix is named as such.
    for caveat in summary["caveats"]:
        assert "calibrated: false" in caveat or "unconfirmed" in caveat


def test_planner_terminal_names_borrowed_factors(tmp_path: Path) -> None:
    """A pool on borrowed factors prints calibrated: false and its donor."""
    _, _, stdout = run_planner(
        tmp_path, "fleet=ironwood_llama70b", "workload.n_trees=20", "output.report=true"
    )
    line = next(x for x in stdout.splitlines() if "calibrated: false" in x)
    assert "borrowed from nvidia_gpu" in line


MIX_BASE: dict[str, Any] = {
    "seed": 0,
    "study": {
        "kind": "silicon_mix",
        "model": "llama3_70b",
        "n_trials": 5,
        "classes": {
            "chat": {
                "calls_per_s": 10,
                "input_tokens": 1000,
                "output_tokens": 200,
                "ttft_s": 2.0,
                "tpot_s": 0.05,
            }
        },
        "gpus": {"gb200": {"hardware": "gb200_nvl72", "precision": "fp8", "tp": 4}},
        "asics": {"lpu_v1": {"hardware": "groq_lpu_v1", "precision": "int8", "chips": 1152}},
    },
}


def _with(key: str, value: Any) -> dict[str, Any]:
    """A deep copy of MIX_BASE with ``key`` (dotted) set to ``value``."""
    cfg: dict[str, Any] = json.loads(json.dumps(MIX_BASE))
    set_dotted(cfg, key, value, key)
    return cfg


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("study.classes.chat.tpot_s", -1, "study.classes.chat.tpot_s"),
        ("study.classes.chat.rate", 3, "study.classes.chat.rate"),
        ("study.gpus.gb200.hardware", "nope", "study.gpus.gb200.hardware"),
        ("study.model", "nope", "study.model"),
        ("study.asics", {}, "study.asics"),
        ("study.reference_gpu_share", 1.5, "study.reference_gpu_share"),
    ],
)
def test_silicon_mix_refuses_bad_fields(key: str, value: Any, field: str) -> None:
    """Bad study fields fail with one line naming the field."""
    with pytest.raises(ConfigError) as raised:
        silicon_mix(_with(key, value))
    assert str(raised.value).startswith(field) and "\n" not in str(raised.value)


def test_small_silicon_mix_serves_the_class_at_the_cheaper_option() -> None:
    """A one-class mix is priced and never dearer than its extremes."""
    summary, charts = silicon_mix(MIX_BASE)
    assert charts == {}
    knees = summary["knee_calls_per_s_per_replica"]["chat"]
    assert knees["gb200"] > 0 and knees["lpu_v1"] > 0
    racks = summary["cost"]["racks"]
    assert sum(racks.values()) >= 1
    assert (
        summary["cost"]["usd_per_year"]
        <= min(v for v in (summary["all_gpu_usd_per_year"], summary["all_asic_usd_per_year"]) if v)
        + 1e-6
    )
    assert math.isfinite(summary["cost"]["usd_per_year"])


def test_variant_overrides_and_their_errors() -> None:
    """Dotted overrides copy the config; bad paths name the variant's field."""
    cfg: dict[str, Any] = {"fleet": {"pools": {"gpu": {"racks": 1}}}, "seed": 0}
    out = variant_config(cfg, {"fleet.pools.gpu.racks": 3, "workload.n_trees": 5}, "v")
    assert out["fleet"]["pools"]["gpu"]["racks"] == 3 and out["workload"] == {"n_trees": 5}
    assert cfg["fleet"]["pools"]["gpu"]["racks"] == 1  # the scenario's config is untouched
    with pytest.raises(ConfigError) as raised:
        variant_config(cfg, {"seed.x": 1}, "v")
    assert str(raised.value).startswith("study.variants.v.seed.x")
    with pytest.raises(ConfigError) as raised:
        variant_config(cfg, {"fleet": "@fleet/nope"}, "v")
    assert str(raised.value).startswith("study.variants.v.fleet")


@pytest.mark.parametrize(
    ("reference", "field"),
    [
        ({"usd_per_task": -1}, "study.reference.usd_per_task"),
        ({"price": 1}, "study.reference.price"),
        ("x", "study.reference"),
    ],
)
def test_tree_cost_refuses_a_bad_reference(reference: Any, field: str) -> None:
    """A malformed reference block names its field."""
    cfg = {"study": {"kind": "tree_cost", "reference": reference, "variants": {"a": {}}}}
    with pytest.raises(ConfigError) as raised:
        tree_cost(cfg)
    assert str(raised.value).startswith(field)
