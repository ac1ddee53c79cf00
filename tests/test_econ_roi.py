"""ROI: the yearly cash flows by hand, IRR and payback, and the fast path against the simulator."""

from __future__ import annotations

import numpy as np
import numpy_financial as npf
import pytest

from planner import config
from planner.econ.capacity import CapacityCurve, PoolPrices, measure_curve
from planner.econ.montecarlo import latin_hypercube
from planner.econ.roi import RoiModel, irr, payback_years, spot_check
from planner.econ.sizing import SizingOption, SizingSlo
from planner.econ.tco import EconomicsSpec
from planner.sim.config import BatchingSpec, FleetSpec, PoolSpec
from planner.sim.engine import WorkloadSpec
from planner.workload import CallLengths, ChatShape, LengthLaw, PoissonArrivals
from tests.conftest import load_efficiency, load_model

ECON = EconomicsSpec(
    networking_capex_fraction=0.5,
    facility_capex_usd_per_kw=100.0,
    maintenance_fraction_per_year=0.1,
    hours_per_year=1000.0,
)


def curve(
    name: str, racks: list[float], power: list[float], kind: str, price: float
) -> CapacityCurve:
    return CapacityCurve(
        option=name,
        demand_trees_per_s=np.array([1.0, 2.0, 4.0]),
        racks={"p": np.array(racks)},
        mean_power_kw={"p": np.array(power)},
        prices={
            "p": PoolPrices(
                kind=kind, rack_capex_usd=price, rack_max_power_kw=10.0, rack_idle_power_kw=2.0
            )
        },
        feasible=np.array([True, True, True]),
    )


def one_future(**overrides: float) -> dict[str, np.ndarray]:
    values = {
        "base_demand_trees_per_s": 1.0,
        "demand_growth_per_year": 1.0,
        "fanout_growth_per_year": 0.0,
        "efficiency_gain_per_year": 0.0,
        "gpu_price_change_per_year": 0.0,
        "lpu_price_change_per_year": -0.5,
        "electricity_usd_per_kwh": 0.1,
        "pue": 1.5,
        "discount_rate": 0.1,
    }
    values.update(overrides)
    return {k: np.array([v]) for k, v in values.items()}


def test_yearly_costs_by_hand() -> None:
    gpu = curve("gpu", [1, 2, 4], [5.0, 10.0, 20.0], "gpu", 1000.0)
    model = RoiModel(gpu, gpu, ECON, horizon_years=3)
    future = one_future()
    np.testing.assert_allclose(model.loads(future)[0], [1.0, 2.0, 4.0])
    costs = model.yearly_costs(gpu, future)[0]
    # Year 0: buy 1 rack: 1000 x 1.5 (networking) + 10 kW x 100 facility; energy 5 kW x 1.5 x
    # 1000 h x 0.1; maintenance 0.1 x 1000.
    year0 = 1000 * 1.5 + 10 * 100 + 5 * 1.5 * 1000 * 0.1 + 0.1 * 1000
    year1 = 1000 * 1.5 + 10 * 100 + 10 * 1.5 * 1000 * 0.1 + 0.1 * 2000
    year2 = 2 * 1000 * 1.5 + 2 * 10 * 100 + 20 * 1.5 * 1000 * 0.1 + 0.1 * 4000
    np.testing.assert_allclose(costs, [year0, year1, year2])


def test_price_trends_apply_to_the_accelerator_kind_and_idle_racks_draw_idle_power() -> None:
    lpu = curve("lpu", [2, 2, 2], [8.0, 8.0, 8.0], "lpu", 1000.0)
    model = RoiModel(lpu, lpu, ECON, horizon_years=2)
    future = one_future(demand_growth_per_year=-0.5)  # load halves: racks already owned stay
    costs = model.yearly_costs(lpu, future)[0]
    year0 = 2 * 1000 * 1.5 + 2 * 10 * 100 + 8 * 1.5 * 100 + 0.1 * 2000
    assert costs[0] == pytest.approx(year0)
    # Year 1: load 0.5 -> the curve's first point (2 racks) is still needed: nothing bought.
    assert costs[1] == pytest.approx(8 * 1.5 * 100 + 0.1 * 2000)


def test_npv_irr_and_payback_of_the_savings() -> None:
    cheap = curve("gpu", [1, 2, 4], [5.0, 10.0, 20.0], "gpu", 1000.0)
    dear = curve("lpu", [1, 1, 1], [1.0, 1.0, 1.0], "lpu", 5000.0)
    model = RoiModel(cheap, dear, ECON, horizon_years=3)
    future = one_future()
    savings = model.savings(future)[0]
    discount = 1.1 ** np.arange(3)
    assert model.npv_usd(future)[0] == pytest.approx((savings / discount).sum())
    if savings.min() < 0 < savings.max():
        assert irr(savings[None, :])[0] == pytest.approx(npf.irr(savings))
    series = np.array([[-100.0, 60.0, 60.0], [50.0, 1.0, 1.0], [-100.0, 10.0, 10.0]])
    np.testing.assert_allclose(payback_years(series), [1 + 40 / 60, 0.0, np.inf])


def toy_option(name: str) -> SizingOption:
    """Single-sequence servers with a constant iteration time, one server per rack."""
    system = config.system(
        {
            "name": "toy",
            "accelerators_per_system": 1,
            "scale_up_domain_size": 1,
            "system_power_kw": 1.0,
            "system_capex_usd": 10_000.0,
            "accelerator": {
                "name": "toy",
                "kind": "gpu",
                "family": "nvidia_gpu",
                "memory_bytes": 1e11,
                "memory_bandwidth_bytes_per_s": 1e12,
                "peak_flops_per_s": {"fp8": 1e15},
                "idle_power_w": 100.0,
                "max_power_w": 1000.0,
                "scale_up_bandwidth_bytes_per_s": 1e11,
                "scale_up_latency_s": 1e-6,
                "unit_price_usd": 10_000.0,
            },
        }
    )
    pool = PoolSpec(
        name="q",
        role="unified",
        system=system,
        model=load_model("llama3_70b"),
        efficiency=load_efficiency("nvidia_gpu"),
        racks=1,
        fixed_step_s=0.005,
        batching=BatchingSpec(max_batch=1, token_budget=1, prefix_cache_fraction=0.0),
    )
    return SizingOption(name, FleetSpec(pools=(pool,), router="central_queue"), ("q",))


def test_fast_path_agrees_with_the_simulator_at_20_sampled_futures() -> None:
    """The issue's agreement bar: required racks within 10% at 20 sampled points."""
    option = toy_option("toy")
    workload = WorkloadSpec(
        PoissonArrivals(1.0),
        ChatShape(call=CallLengths(LengthLaw.fixed(1), LengthLaw("geometric", mean_value=20))),
        n_trees=3000,
    )
    slo = SizingSlo(tree_e2e_p99_s=1.0, ttft_p99_s=1.0, tpot_p99_s=1.0)
    grid = list(np.geomspace(100.0, 400.0, 6))
    measured = measure_curve(option, workload, slo, grid, seed=0, max_racks=200)
    model = RoiModel(measured, measured, EconomicsSpec(), horizon_years=2)
    inputs = config.uncertain_inputs(
        {
            "base_demand_trees_per_s": {"dist": "uniform", "loc": 100.0, "scale": 150.0},
            "demand_growth_per_year": {"dist": "uniform", "loc": 0.0, "scale": 0.5},
            "fanout_growth_per_year": 0.0,
            "efficiency_gain_per_year": 0.0,
            "gpu_price_change_per_year": 0.0,
            "lpu_price_change_per_year": 0.0,
            "electricity_usd_per_kwh": 0.08,
            "pue": 1.3,
            "discount_rate": 0.1,
        }
    )
    draws = latin_hypercube(inputs, 20, seed=3)
    # The baseline curve only (both options share it here), at every one of the 20 futures.
    checks = spot_check(
        model, lambda _name, _future: option, workload, slo, draws, 20, 0, 200, both=False
    )
    assert len(checks) == 20
    errors = [c.relative_error for c in checks]
    assert max(errors) <= 0.10, [
        (c.load_trees_per_s, c.fast_racks, c.simulated_racks) for c in checks
    ]
