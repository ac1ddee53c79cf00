"""The Python API behind the thin CLI (issue 9).

run_simulation's typed summary, the sweep store that never re-scores a configuration, infeasible
sweep points, and scenarios run with the wrong console script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from planner.app import sweep
from planner.app.simulation import run_simulation, simulation_spec, summary_mapping
from planner.app.summary import CostSummary, PoolStats, RunSummary
from planner.cli import common
from planner.config import CONF_DIR
from planner.config.scenario import COMMANDS, SCENARIO_DIR, scenario_tool
from planner.report import sweep as report_sweep
from planner.specs.errors import ConfigError

DATA = Path(__file__).parent / "data"
BIN = Path(sys.executable).parent


def _paths(data: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        out.add(path)
        if isinstance(value, dict):
            out |= _paths(value, path)
    return out


@pytest.fixture(scope="module")
def default_run() -> tuple[Any, Any]:
    """``planner workload.n_trees=40`` through the API: the spec and its RunResult."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("planner", ["workload.n_trees=40"])
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    spec = simulation_spec({str(k): v for k, v in data.items()})
    return spec, run_simulation(spec)


def test_run_summary_has_exactly_the_keys_summary_json_had(default_run: tuple[Any, Any]) -> None:
    _, outcome = default_run
    expected = set(json.loads((DATA / "summary_keys.json").read_text())["keys"])
    assert _paths(outcome.summary.to_json()) == expected


def test_run_summary_is_typed_and_round_trips(default_run: tuple[Any, Any]) -> None:
    spec, outcome = default_run
    summary = outcome.summary
    assert isinstance(summary, RunSummary) and isinstance(summary.cost, CostSummary)
    assert all(isinstance(p, PoolStats) for p in summary.pools.values())
    assert summary.calls.arrived == summary.calls.completed + summary.calls.in_flight + (
        summary.calls.failed
    )
    assert summary.verdict.text.startswith(("PASS", "FAIL"))
    assert summary.cost.capex_usd > 0 and summary.cost.headline.metric.startswith("usd_per")
    assert RunSummary.from_json(summary.to_json()) == summary
    # to_json is the mapping the CLI writes: the same run summarized again gives the same JSON
    again = summary_mapping(spec, outcome.result)
    again["wall_time_s"] = summary.wall_time_s
    assert json.dumps(again, sort_keys=True) == json.dumps(summary.to_json(), sort_keys=True)


def test_run_summary_refuses_a_drifted_layout(default_run: tuple[Any, Any]) -> None:
    data = default_run[1].summary.to_json()
    with pytest.raises(ValueError, match="unknown"):
        RunSummary.from_json({**data, "surprise": 1})
    with pytest.raises(ValueError, match="missing"):
        RunSummary.from_json({k: v for k, v in data.items() if k != "slo"})


def test_simulation_spec_names_the_bad_field(default_run: tuple[Any, Any]) -> None:
    with pytest.raises(ConfigError, match=r"^fleet\.pools: "):
        simulation_spec({"fleet": {}, "seed": -1})  # fields are checked in order
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("planner", ["seed=-1"])
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    with pytest.raises(ConfigError, match=r"^seed: "):
        simulation_spec({str(k): v for k, v in data.items()})


# ---------------------------------------------------------------------------------------------
# The scored-configuration store (an Optuna trial never re-runs a configuration)


def test_a_repeated_configuration_is_not_scored_again(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    calls: list[str] = []

    def job(num: int, config: dict[str, Any], value: float) -> float | None:
        job_dir = sweep_dir / str(num)
        job_dir.mkdir(parents=True)

        def score() -> float:
            calls.append(str(num))
            (job_dir / sweep.SUMMARY_FILE).write_text(json.dumps({"cost": {"usd": value}}))
            return value

        return sweep.score_once(sweep_dir, job_dir, config, score)

    assert job(0, {"racks": 2, "router": "rr"}, 5.0) == 5.0
    assert job(1, {"racks": 3, "router": "rr"}, 7.0) == 7.0
    assert job(2, {"router": "rr", "racks": 2}, 99.0) == 5.0  # same config, other key order
    assert calls == ["0", "1"]
    repeat = sweep.read_job(sweep_dir / "2", None)
    assert repeat.repeat_of == "0" and repeat.summary == {"cost": {"usd": 5.0}}
    table = sweep.sweep_table(
        [sweep.read_job(sweep_dir / str(n), None) for n in range(3)], [], None, sweep_dir
    )
    assert list(table["status"]) == ["ok", "ok", "ok"]
    assert table["repeat_of"].tolist()[2] == "0" and table["repeat_of"].isna().tolist()[:2] == [
        True,
        True,
    ]


def test_config_key_ignores_the_hydra_node_and_key_order() -> None:
    key = sweep.config_key({"a": 1, "b": {"c": 2}})
    assert key == sweep.config_key({"b": {"c": 2}, "a": 1, "hydra": {"job": {"num": 3}}})
    assert key != sweep.config_key({"a": 1, "b": {"c": 3}})


# ---------------------------------------------------------------------------------------------
# Infeasible points are never the cheapest, in the ranking or on the plot's lines


def test_an_infeasible_point_is_neither_ranked_nor_drawn_on_a_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = pd.DataFrame(
        {
            "racks": [1, 2, 3],
            "status": ["ok", "ok", "ok"],
            "objective": [1.0e6, 20.0, 30.0],  # the penalty a failed constraint scores
            "constraints_met": [False, True, True],
            "cost.usd_per_million_output_tokens": [5.0, 20.0, 30.0],
        }
    )
    verdict = report_sweep.assess(table, ["racks"])
    assert verdict.best == 1 and verdict.feasible[0] is False
    drawn: dict[str, Any] = {}

    def capture(x: Any, ys: Any, **kwargs: Any) -> bytes:
        drawn.update(x=list(x), ys={k: list(v) for k, v in ys.items()}, **kwargs)
        return b"png"

    monkeypatch.setattr(report_sweep, "line_png", capture)
    report_sweep.plot_sweep(
        table,
        metric="cost.usd_per_million_output_tokens",
        x="racks",
        exclude=["racks", "constraints_met", "objective"],
        assessment=verdict,
    )
    (line,) = drawn["ys"].values()
    assert pd.isna(line[0]) and line[1:] == [20.0, 30.0]  # racks=1 (cost 5) not on the line
    assert drawn["flagged"][1] == [1.0] and drawn["best"][1:] == (2.0, 20.0)


# ---------------------------------------------------------------------------------------------
# Scenarios belong to one console script


def test_every_scenario_names_its_console_script() -> None:
    tools = {p.stem: scenario_tool(p.stem) for p in SCENARIO_DIR.glob("*.yaml")}
    assert tools and set(tools.values()) <= set(COMMANDS)
    for name, tool in tools.items():
        assert tool is not None
        assert common.scenario_arguments([f"scenario={name}"], tool)[-1] == name
        for other in set(COMMANDS) - {tool}:
            with pytest.raises(ConfigError) as info:
                common.scenario_arguments([f"scenario={name}"], other)
            command = COMMANDS[tool]
            expected = f"{name} is a {command} scenario: run `{command} scenario={name}`"
            assert str(info.value) == f"scenario: {expected}"


def test_wrong_tool_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "planner"), "scenario=moe_paradox_roi", f"hydra.run.dir={tmp_path / 'r'}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: scenario: moe_paradox_roi is a planner-roi scenario: run "
        "`planner-roi scenario=moe_paradox_roi`"
    ]
    assert not (tmp_path / "r").exists()


def test_a_sweep_with_an_objective_runs_a_repeated_configuration_once(tmp_path: Path) -> None:
    """``seed=0,0,1``: the second job has the first one's configuration; it is not simulated."""
    out = tmp_path / "sweep"
    args = ["-m", f"hydra.sweep.dir={out}", "seed=0,0,1", "workload.n_trees=20"]
    args += ["+objective={metric:cost.usd_per_million_output_tokens}", "output.report=false"]
    proc = subprocess.run(
        [str(BIN / "planner"), *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "0" / "summary.json").exists() and (out / "2" / "summary.json").exists()
    assert not (out / "1" / "summary.json").exists() and not (out / "1" / "calls.parquet").exists()
    repeat = json.loads((out / "1" / sweep.REPEAT_FILE).read_text())
    assert repeat["job_dir"] == "../0"
    table = pd.read_csv(out / sweep.CSV_FILE)
    assert list(table["status"]) == ["ok", "ok", "ok"]
    assert table["objective"][0] == table["objective"][1] == repeat["objective"]
    assert table["objective"][2] != table["objective"][0]  # another seed: simulated
    assert "not simulated" in proc.stdout
