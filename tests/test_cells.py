"""Region scale: ``run.cells=N`` (planner.app.cells) plans, runs and merges cells exactly.

Every cell run in this process goes through the engine census check of ``checked_engine``
(imported from sim_helpers); Ray and joblib cells run in worker processes, and their merged
results are compared with ``==`` against the serial ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir

from planner import config
from planner.app.cells import (
    CellTask,
    assign_trees,
    cell_streams,
    plan_cells,
    plan_summary,
    run_tasks,
    simulate_cells,
)
from planner.app.cells_merge import coarsen_timeline, merge_pool
from planner.cli import simulate as cli_simulate
from planner.config import CONF_DIR
from planner.sim.config import FleetSpec, SloSpec
from planner.sim.engine import draw_workload, simulate
from planner.sim.faults import FailureSpec
from planner.sim.metrics import call_latencies, summarize
from planner.sim.results import CENSUS_PLACES, SimulationResult
from planner.specs.errors import ConfigError
from planner.workload import LengthLaw
from planner.workload.trees import MIXED_AGENT_SHAPE
from tests.sim_helpers import (
    assert_census,
    chat_workload,
    checked_engine,  # noqa: F401  (autouse: census and KV ledgers checked after every run)
    gpu_fleet,
    tree_workload,
)

BIN = Path(sys.executable).parent
SLO = SloSpec(tree_e2e_s=120.0, ttft_s=10.0, tpot_s=0.08)
CALL_ARRAYS = (
    "ready_s",
    "admit_s",
    "first_token_s",
    "finish_s",
    "cached_tokens",
    "prefill_replica",
    "decode_replica",
    "call_tree",
    "tree_finish_s",
)


def region_fleet(racks: int = 4, replicas: int | None = 12, jitter_cv: float = 0.1) -> FleetSpec:
    """Llama-3-70B TP2 on H200 racks (16 replicas a rack), ``replicas`` of them in all."""
    fleet = gpu_fleet(jitter_cv=jitter_cv)
    return replace(fleet, pools=(replace(fleet.pools[0], racks=racks, replicas=replicas),))


def chat(n: int = 600, rate_per_s: float = 20.0) -> Any:
    """Single-call trees: 2,000-token prompts, 200-token answers."""
    return chat_workload(rate_per_s, n, LengthLaw.fixed(200), LengthLaw.fixed(2000))


def summary_of(result: SimulationResult, fleet: FleetSpec) -> dict[str, Any]:
    """The summary without the wall-clock time (the only figure a rerun may change)."""
    summary = summarize(result, SLO, fleet)
    summary.pop("wall_time_s")
    return summary


def assert_same_tables(a: SimulationResult, b: SimulationResult) -> None:
    for name in CALL_ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    for pa, pb in zip(a.pools, b.pools, strict=True):
        assert np.array_equal(pa.busy_s, pb.busy_s) and np.array_equal(pa.batch_s, pb.batch_s)
        assert np.array_equal(pa.busy_timeline_s, pb.busy_timeline_s)


# ------------------------------------------------------------------------------- the plan
def test_plan_deals_whole_racks_and_replicas_evenly() -> None:
    plan = plan_cells(region_fleet(racks=5, replicas=None), 2)
    assert plan.racks == {"gpu": (3, 2)}
    assert plan.replicas == {"gpu": (48, 32)}  # 16 TP2 replicas a rack
    assert plan.weights.tolist() == [0.6, 0.4]
    explicit = plan_cells(region_fleet(racks=4, replicas=10), 4)
    assert explicit.replicas == {"gpu": (3, 3, 2, 2)} and explicit.racks == {"gpu": (1,) * 4}
    for k, cell in enumerate(explicit.cells):
        assert cell.pools[0].replicas == explicit.replicas["gpu"][k]
        assert cell.pools[0].racks == 1 and cell.router == explicit.fleet.router
    # Explicit replicas follow what each cell's racks hold: all 80 of 5 racks fit 48 + 32.
    assert plan_cells(region_fleet(racks=5, replicas=80), 2).replicas == {"gpu": (48, 32)}
    one = plan_cells(region_fleet(), 1)
    assert one.cells == (one.fleet,)  # one cell is the region itself


def test_replicas_never_span_two_cells() -> None:
    """Llama-3-70B TP16 on NVL72 racks: 9 replicas on 2 racks, one across the rack boundary."""
    data = yaml.safe_load((CONF_DIR / "fleet" / "gb200_llama70b.yaml").read_text())
    data["pools"]["gpu"].update(racks=2, tp=16)
    fleet = config.fleet(data)
    plan = plan_cells(fleet, 2)
    assert plan.replicas == {"gpu": (4, 4)}
    assert plan_summary(plan)["pools"]["gpu"]["replicas_lost"] == 1


def test_a_pool_that_cannot_give_every_cell_a_replica_is_refused() -> None:
    data = yaml.safe_load((CONF_DIR / "fleet" / "lpu_llama70b.yaml").read_text())
    data["pools"]["lpu"]["racks"] = 32  # two 16-rack LPU chains
    fleet = config.fleet(data)
    assert plan_cells(fleet, 2).replicas == {"lpu": (1, 1)}
    with pytest.raises(ConfigError) as caught:
        plan_cells(fleet, 3)
    assert caught.value.field == "run.cells"
    assert "pool lpu" in caught.value.problem and "allowed: run.cells <= 2" in caught.value.problem
    with pytest.raises(ConfigError, match=r"allowed: run\.cells <= 3"):
        plan_cells(region_fleet(racks=4, replicas=3), 4)


def test_seeds_and_balancer() -> None:
    streams = cell_streams(7, 4)
    assert [s.spawn_key for s in streams] == [(0,), (1,), (2,), (3,)]
    assert cell_streams(7, 1)[0].spawn_key == ()  # the region's own root
    weights = np.array([0.5, 0.25, 0.25])
    cells = assign_trees(40_000, weights, seed=7)
    assert np.array_equal(cells, assign_trees(40_000, weights, seed=7))
    shares = np.bincount(cells, minlength=3) / cells.size
    assert np.allclose(shares, weights, atol=0.01)
    # Independent thinning: which cell a tree goes to says nothing about the next tree's.
    same_as_next = float(np.mean(cells[1:] == cells[:-1]))
    assert abs(same_as_next - float((weights**2).sum())) < 0.01


def test_coarsen_timeline_merges_pairwise() -> None:
    timeline = np.arange(8, dtype=np.float64)
    assert coarsen_timeline(timeline, 1.0, 4.0).tolist() == [6.0, 22.0, 0, 0, 0, 0, 0, 0]
    assert coarsen_timeline(timeline, 2.0, 2.0).tolist() == timeline.tolist()
    with pytest.raises(ValueError):
        coarsen_timeline(timeline, 1.0, 3.0)


def test_merge_refuses_a_pool_figure_it_does_not_combine() -> None:
    """A PoolStats field that differs between cells must be combined, never silently dropped."""
    result = simulate(region_fleet(), chat(n=20), seed=1)
    stats = result.pools[0]
    merged = merge_pool([stats, stats], racks=8, n_cells=2)
    assert merged.replicas == 2 * stats.replicas and merged.racks == 8
    assert merged.busy_s.tolist() == [*stats.busy_s.tolist(), *stats.busy_s.tolist()]
    with pytest.raises(RuntimeError, match="idle_power_w differs between cells"):
        merge_pool([stats, replace(stats, idle_power_w=1.0)], racks=8, n_cells=2)


# ---------------------------------------------------------------------------- the results
def test_one_cell_equals_the_run_without_cells() -> None:
    fleet = region_fleet(jitter_cv=0.1)
    workload = tree_workload(0.05, 20, MIXED_AGENT_SHAPE)
    failures = FailureSpec(rate_multiplier=1_000_000.0, max_retries=1)
    plain = simulate(fleet, workload, seed=3, failures=failures)
    one = simulate_cells(fleet, workload, seed=3, cells=1, backend="serial", failures=failures)
    assert_same_tables(plain, one)
    expected = summary_of(plain, fleet)
    merged = summary_of(one, fleet)
    assert merged.pop("cells")["count"] == 1
    assert merged == expected
    assert expected["calls"]["retries"] > 0 and expected["calls"]["failed"] > 0  # failures hit


def test_four_cells_merge_the_cells_tables_exactly() -> None:
    fleet = region_fleet()
    workload = chat()
    result = simulate_cells(fleet, workload, seed=5, cells=4, backend="serial")
    drawn = draw_workload(workload, seed=5)
    # Every tree of the region, in the region's order, each in exactly one cell.
    assert np.array_equal(result.tree_arrival_s, drawn.arrival_s)
    assert np.array_equal(result.trees.input_tokens, drawn.trees.input_tokens)
    per_cell = result.cells["per_cell"] if result.cells else []
    assert sum(c["trees"] for c in per_cell) == drawn.trees.n_trees
    # The merged percentiles are those of the merged per-call table.
    summary = summarize(result, SLO, fleet)
    ttft = call_latencies(result)["ttft_s"]
    assert summary["calls"]["ttft_s"]["p99"] == float(np.percentile(ttft, 99))
    # Region replica ids: every replica of the 12 served calls, none twice across cells.
    assert sorted(set(result.decode_replica.tolist())) == list(range(12))
    pool = summary["pools"]["gpu"]
    assert pool["replicas"] == 12 and pool["racks"] == 4
    busy = result.pools[0].busy_s
    assert pool["busy_fraction"] == float(busy.sum() / (12 * result.sim_time_s))
    assert result.sim_time_s == max(c["sim_time_s"] for c in per_cell)
    assert result.pools[0].busy_timeline_s.sum() == pytest.approx(busy.sum(), rel=1e-9)
    census = assert_census(result)
    assert census["finished"] == drawn.trees.n_calls


def disaggregated_fleet() -> FleetSpec:
    """H200 prefill pool (2 racks, 6 replicas) feeding an H200 decode pool (3 racks, 9)."""
    unified = region_fleet().pools[0]
    prefill = replace(unified, name="pre", role="prefill", racks=2, replicas=6)
    decode = replace(unified, name="dec", role="decode", racks=3, replicas=9)
    return FleetSpec(pools=(prefill, decode), router="least_outstanding")


def test_disaggregated_cells_merge_both_pools() -> None:
    fleet = disaggregated_fleet()
    workload = chat(n=200)
    plain = simulate(fleet, workload, seed=2)
    one = simulate_cells(fleet, workload, seed=2, cells=1, backend="serial")
    assert_same_tables(plain, one)
    assert plain.kv_landed_s is not None and one.kv_landed_s is not None
    assert np.array_equal(plain.kv_landed_s, one.kv_landed_s, equal_nan=True)
    two = simulate_cells(fleet, workload, seed=2, cells=2, backend="serial")
    assert two.cells is not None and two.cells["pools"]["dec"]["replicas"] == [6, 3]
    assert two.cells["weights"] == pytest.approx([(3 / 6 + 6 / 9) / 2, (3 / 6 + 3 / 9) / 2])
    assert_census(two)
    assert two.kv_landed_s is not None and np.isfinite(two.kv_landed_s).all()
    assert sorted(set(two.prefill_replica.tolist())) == list(range(6))
    assert sorted(set(two.decode_replica.tolist())) == list(range(9))
    summary = summarize(two, SLO, fleet)
    assert summary["pools"]["pre"]["replicas"] == 6 and summary["pools"]["dec"]["replicas"] == 9
    with pytest.raises(ConfigError, match=r"pool pre .* allowed: run\.cells <= 2"):
        plan_cells(fleet, 3)


def test_census_holds_when_cells_stop_mid_run_under_failures() -> None:
    fleet = region_fleet(racks=4, replicas=8)
    workload = tree_workload(0.2, 40, MIXED_AGENT_SHAPE)
    failures = FailureSpec(rate_multiplier=50_000.0, max_retries=1, blast_radius="host")
    result = simulate_cells(
        fleet,
        workload,
        seed=11,
        cells=4,
        backend="serial",
        failures=failures,
        max_sim_time_s=120.0,
    )
    census = assert_census(result)
    summary = summarize(result, SLO, fleet)
    calls = summary["calls"]
    assert calls["arrived"] == calls["completed"] + calls["in_flight"] + calls["failed"]
    assert sum(census[p] for p in CENSUS_PLACES) == result.trees.n_calls
    assert summary["stop_reason"] == "max_sim_time" and result.sim_time_s == 120.0
    assert calls["in_flight"] > 0 and summary["pools"]["gpu"]["failures"] > 0
    assert summary["trees"]["arrived"] == int((result.tree_arrival_s <= 120.0).sum())


def test_four_cells_on_ray_equal_four_cells_run_serially() -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'planner[ray]')")
    fleet = region_fleet()
    workload = tree_workload(0.1, 24, MIXED_AGENT_SHAPE)
    serial = simulate_cells(fleet, workload, seed=9, cells=4, backend="serial")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        remote = simulate_cells(fleet, workload, seed=9, cells=4, backend="ray")
    finally:
        ray.shutdown()
    expected = summary_of(serial, fleet)
    assert summary_of(remote, fleet) == expected
    assert_same_tables(serial, remote)
    assert expected["cells"]["count"] == 4 and expected["calls"]["completed"] > 0


def test_joblib_cells_equal_serial_cells_whatever_the_worker_count() -> None:
    fleet = region_fleet()
    workload = chat(n=300)
    drawn_seed = 4
    serial = simulate_cells(fleet, workload, seed=drawn_seed, cells=4, backend="serial")
    pooled = simulate_cells(fleet, workload, seed=drawn_seed, cells=4, backend="joblib", n_jobs=2)
    assert summary_of(pooled, fleet) == summary_of(serial, fleet)
    assert_same_tables(serial, pooled)


def test_a_cell_refusing_its_input_is_a_config_error() -> None:
    fleet = region_fleet()
    drawn = draw_workload(chat(n=5), seed=0)
    huge = replace(drawn.trees, input_tokens=drawn.trees.input_tokens * 10**6)
    task = CellTask(
        0, fleet, replace(drawn, trees=huge), 0, cell_streams(0, 1)[0], False, None, None, None, 1.0
    )
    with pytest.raises(ConfigError, match="does not fit the KV memory"):
        run_tasks([task], "serial")
    with pytest.raises(ConfigError) as caught:
        run_tasks([task], "dask")
    assert caught.value.field == "run.cells_backend"


# ------------------------------------------------------------------------------------ CLI
def _compose(*overrides: str) -> Any:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("planner", overrides=list(overrides))


def test_cli_run_with_cells_reports_them() -> None:
    cfg = _compose(
        "workload.n_trees=8",
        "fleet.pools.gpu.racks=2",
        "run.cells=2",
        "run.cells_backend=serial",
    )
    summary, result = cli_simulate.run(cfg)
    assert summary["cells"]["count"] == 2
    assert summary["cells"]["pools"]["gpu"]["racks"] == [1, 1]
    assert summary["pools"]["gpu"]["replicas"] == 18 and summary["fleet"]["gpu"]["racks"] == 2
    assert result.trees.n_trees == 8
    json.dumps(summary)  # the section is plain JSON


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("run.cells=0", "run.cells"),
        ("run.cells=1.5", "run.cells"),
        ("run.cells_backend=dask", "run.cells_backend"),
    ],
)
def test_bad_cells_options_are_config_errors(override: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        cli_simulate.run(_compose("workload.n_trees=4", override))
    assert caught.value.field == field and "\n" not in str(caught.value)


def test_a_bad_split_exits_2_with_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [str(BIN / "planner"), f"hydra.run.dir={run_dir}", "workload.n_trees=10", "run.cells=3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, (result.stdout[-500:], result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: run.cells: pool gpu (2 racks, 18 replicas)"), lines[0]
    assert "allowed: run.cells <= 2" in lines[0]
    assert not run_dir.exists()
