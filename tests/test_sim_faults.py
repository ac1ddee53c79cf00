"""Fault injection: failures, blast radius, retries, and nothing lost even at extreme rates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from planner import config
from planner.sim.config import SloSpec
from planner.sim.engine import simulate
from planner.sim.faults import LLAMA3_FAILURES_PER_GPU_HOUR, FailureSpec
from planner.sim.metrics import summarize
from planner.sim.results import SimulationResult
from planner.specs.errors import ConfigError
from planner.workload import ChatShape, DelayLaw
from planner.workload.trees import MIXED_AGENT_SHAPE
from tests.sim_helpers import (
    checked_engine,  # noqa: F401 (autouse: census after every run)
    gpu_fleet,
    tree_workload,
)


def conserved(result: SimulationResult) -> dict[str, Any]:
    calls: dict[str, Any] = summarize(result, SloSpec())["calls"]
    assert calls["arrived"] == calls["completed"] + calls["in_flight"] + calls["failed"]
    assert (
        calls["arrived"] + calls["not_arrived"] + calls["census"]["tree_pending"]
        == result.trees.n_calls
    )
    return calls


def test_a_hundred_times_the_default_rate_keeps_every_call_accounted_for() -> None:
    """The issue's bar: 100x the Llama-3 rate, a long run, conservation holds and it finishes."""
    failures = FailureSpec(rate_multiplier=100.0, blast_radius="host")
    workload = tree_workload(0.02, 600, MIXED_AGENT_SHAPE)  # ~8 simulated hours
    result = simulate(gpu_fleet(), workload, seed=2, failures=failures)
    calls = conserved(result)
    pool = summarize(result, SloSpec())["pools"]["gpu"]
    assert pool["failures"] >= 1, "the run must actually see failures"
    assert 0.0 < pool["availability"] < 1.0
    assert calls["in_flight"] == 0  # the run drained
    finished = np.isfinite(result.tree_finish_s)
    dead = np.zeros(result.trees.n_trees, dtype=bool)
    dead[result.call_tree[result.failed]] = True
    assert (finished | dead).all()  # every tree finished or lost a call past its retries


def test_extreme_failure_rates_retry_and_fail_calls_without_losing_any() -> None:
    failures = FailureSpec(
        rate_multiplier=2e6,
        blast_radius="domain",
        max_retries=2,
        repair_time=DelayLaw("exponential", mean_s=30.0),
    )
    result = simulate(
        gpu_fleet(replicas=8), tree_workload(1.0, 300, ChatShape()), seed=5, failures=failures
    )
    calls = conserved(result)
    assert calls["retries"] > 0
    assert calls["failed"] > 0 and calls["in_flight"] == 0
    failed_trees = np.unique(result.call_tree[result.failed])
    assert np.isnan(result.tree_finish_s[failed_trees]).all()
    # A failed call was restarted max_retries times; its next loss failed it (not a restart).
    assert result.retries is not None and result.failed is not None
    assert (result.retries[result.failed] == 2).all()
    assert calls["retries"] == int(result.retries.sum())


def test_workload_is_the_same_with_and_without_failures() -> None:
    workload = tree_workload(0.5, 100, MIXED_AGENT_SHAPE)
    plain = simulate(gpu_fleet(), workload, seed=9)
    faulty = simulate(gpu_fleet(), workload, seed=9, failures=FailureSpec(rate_multiplier=1e4))
    np.testing.assert_array_equal(plain.tree_arrival_s, faulty.tree_arrival_s)
    np.testing.assert_array_equal(plain.trees.input_tokens, faulty.trees.input_tokens)


def test_same_seed_same_faulty_run() -> None:
    failures = FailureSpec(rate_multiplier=5e4, blast_radius="host")
    workload = tree_workload(2.0, 200, ChatShape())
    a = summarize(simulate(gpu_fleet(), workload, seed=4, failures=failures), SloSpec())
    b = summarize(simulate(gpu_fleet(), workload, seed=4, failures=failures), SloSpec())
    a.pop("wall_time_s"), b.pop("wall_time_s")
    assert a == b


@pytest.mark.parametrize(("radius", "expected"), [("replica", 1), ("host", 4), ("domain", 4)])
def test_blast_radius_takes_down_the_right_replicas(radius: str, expected: int) -> None:
    """H200 TP2 replicas: a host (8-GPU node) and an 8-GPU NVLink domain hold 4 replicas."""
    from planner.sim.engine import _Engine
    from planner.sim.faults import FaultInjector
    from planner.workload import TreeFactory

    fleet = gpu_fleet()
    trees = TreeFactory(ChatShape()).sample_batch(np.random.default_rng(0), 2)
    engine = _Engine(fleet, trees, np.array([0.0, 1.0]), np.random.SeedSequence(0), False)
    pool = next(iter(engine.pools.values()))
    injector = FaultInjector(engine, FailureSpec(blast_radius=radius), np.random.default_rng(0))
    hit = injector._replicas_hit(pool, 13)  # GPU 13: replica 6, node 1 (GPUs 8-15)
    assert len(hit) == expected
    assert 6 in hit


def test_default_rate_is_the_llama3_figure() -> None:
    rate = FailureSpec().rate_per_accelerator_s("gpu")
    assert rate == pytest.approx(LLAMA3_FAILURES_PER_GPU_HOUR / 3600)
    assert pytest.approx(50_700) == 1 / LLAMA3_FAILURES_PER_GPU_HOUR


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"enabled": True, "blast_radius": "galaxy"}, "failures.blast_radius"),
        ({"enabled": True, "rate_multiplier": -1}, "failures.rate_multiplier"),
        (
            {"enabled": True, "gpu_failures_per_accelerator_hour": "often"},
            "failures.gpu_failures_per_accelerator_hour",
        ),
        ({"enabled": True, "max_retries": -1}, "failures.max_retries"),
        ({"enabled": "yes"}, "failures.enabled"),
        ({"enabled": True, "mtbf": 3}, "failures.mtbf"),
    ],
)
def test_bad_failure_config_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as error:
        config.failures(data)
    assert error.value.field.startswith(field)


def test_disabled_failures_build_nothing() -> None:
    assert config.failures({"enabled": False}) is None


def test_sizing_with_failures_needs_at_least_as_many_racks() -> None:
    """Sizing while failures happen meets the SLO with the failures on, so never needs fewer."""
    from planner.econ.sizing import SizingOption, SizingSlo, size_option
    from planner.sim.config import FleetSpec
    from planner.sim.engine import WorkloadSpec
    from planner.workload import PoissonArrivals
    from tests.test_econ_sizing import h100_pool

    option = SizingOption("gpu", FleetSpec(pools=(h100_pool(),)), ("gpu",))
    workload = WorkloadSpec(PoissonArrivals(1.0), ChatShape(), n_trees=2000)
    slo = SizingSlo(tree_e2e_p99_s=20.0, ttft_p99_s=1.0, tpot_p99_s=0.05)
    plain = size_option(option, workload, 60.0, slo, seed=0, max_racks=32)
    stormy = FailureSpec(
        rate_multiplier=3e5, blast_radius="host", repair_time=DelayLaw("fixed", value_s=20.0)
    )
    faulty = size_option(option, workload, 60.0, slo, seed=0, max_racks=32, failures=stormy)
    assert faulty.feasible and faulty.check.meets_slo
    assert faulty.racks["gpu"] >= plain.racks["gpu"]
    assert sum(p.failures for p in faulty.check.result.pools) > 0
