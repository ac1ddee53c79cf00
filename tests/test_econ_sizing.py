"""Sizing: the fewest racks meeting the SLOs, monotone in demand and in SLO strictness."""

from __future__ import annotations

from dataclasses import replace

import pytest

from planner.econ.sizing import (
    SizingOption,
    SizingSlo,
    meets,
    p99_figures,
    size_option,
    workload_at_demand,
)
from planner.sim.config import BatchingSpec, FleetSpec, PoolSpec
from planner.sim.engine import WorkloadSpec, simulate
from planner.specs.errors import ConfigError
from planner.workload import ChatShape, OfflineArrivals, PoissonArrivals
from tests.conftest import load_efficiency, load_model, load_system

CHAT = WorkloadSpec(PoissonArrivals(1.0), ChatShape(), n_trees=400)
SLO = SizingSlo(tree_e2e_p99_s=20.0, ttft_p99_s=1.0, tpot_p99_s=0.05)


def h100_pool(name: str = "gpu", role: str = "unified") -> PoolSpec:
    """Llama-3-70B FP8 TP8 on DGX H100 racks (4 systems, 4 replicas per rack)."""
    return PoolSpec(
        name=name,
        role=role,
        system=load_system("h100"),
        model=load_model("llama3_70b"),
        efficiency=load_efficiency("nvidia_gpu"),
        racks=1,
        precision="fp8",
        kv_precision="fp8",
        tp=8,
        batching=BatchingSpec(max_batch=128, token_budget=4096, prefix_cache_fraction=0.0),
    )


GPU_ONLY = SizingOption("gpu_only", FleetSpec(pools=(h100_pool(),)), ("gpu",))


def test_result_meets_the_slo_and_one_rack_fewer_does_not() -> None:
    result = size_option(GPU_ONLY, CHAT, 60.0, SLO, seed=0, max_racks=32)
    assert result.feasible and result.check.meets_slo
    racks = result.racks["gpu"]
    assert racks >= 2, "demand chosen to need more than the minimum"
    fewer = size_option(GPU_ONLY, CHAT, 60.0, SLO, seed=0, max_racks=racks - 1)
    assert not fewer.feasible


def test_more_demand_never_needs_fewer_racks() -> None:
    racks = [
        size_option(GPU_ONLY, CHAT, demand, SLO, seed=0, max_racks=64).racks["gpu"]
        for demand in (10.0, 30.0, 60.0, 120.0)
    ]
    assert racks == sorted(racks) and racks[-1] > racks[0]


def test_a_looser_slo_never_needs_more_racks() -> None:
    tight = SizingSlo(tree_e2e_p99_s=10.0, ttft_p99_s=0.3, tpot_p99_s=0.02)
    loose = SizingSlo(tree_e2e_p99_s=40.0, ttft_p99_s=3.0, tpot_p99_s=0.1)
    racks = [
        size_option(GPU_ONLY, CHAT, 60.0, slo, seed=0, max_racks=64).racks["gpu"]
        for slo in (tight, SLO, loose)
    ]
    assert racks == sorted(racks, reverse=True)


def test_analytic_estimate_brackets_the_simulated_answer() -> None:
    result = size_option(GPU_ONLY, CHAT, 120.0, SLO, seed=0, max_racks=64)
    assert (
        result.analytic_racks["gpu"] / 4 <= result.racks["gpu"] <= 4 * result.analytic_racks["gpu"]
    )


def test_two_pool_option_sizes_both_pools_and_trims_each_to_its_minimum() -> None:
    fleet = FleetSpec(pools=(h100_pool("prefill", "prefill"), h100_pool("decode", "decode")))
    option = SizingOption("disaggregated", fleet, ("prefill", "decode"))
    result = size_option(option, CHAT, 60.0, SLO, seed=0, max_racks=32)
    assert result.feasible and result.check.meets_slo
    assert set(result.racks) == {"prefill", "decode"}
    at_demand = workload_at_demand(CHAT, 60.0)
    for pool in ("prefill", "decode"):
        fewer = {**result.racks, pool: result.racks[pool] - 1}
        if fewer[pool] < 1:
            continue
        trial = replace(fleet, pools=tuple(replace(p, racks=fewer[p.name]) for p in fleet.pools))
        run = simulate(trial, at_demand, seed=0)
        assert not (run.complete and meets(p99_figures(run), SLO)), pool


def test_sizing_needs_a_rate_based_arrival_process() -> None:
    with pytest.raises(ConfigError) as error:
        workload_at_demand(WorkloadSpec(OfflineArrivals(100), ChatShape(), n_trees=100), 5.0)
    assert error.value.field == "workload.arrivals.kind"


def test_unknown_sized_pool_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        SizingOption("bad", FleetSpec(pools=(h100_pool(),)), ("decode",))
    assert error.value.field == "sizing.options.bad.sized_pools"
