"""TCO against hand-computed figures, and the cost keys of planner's summary."""

from __future__ import annotations

from typing import Any

import pytest

from planner import config
from planner.econ.tco import EconomicsSpec, cost_summary, pool_cost
from planner.specs.errors import ConfigError
from tests.conftest import load_system

ECON = EconomicsSpec(
    electricity_usd_per_kwh=0.10,
    pue=1.5,
    depreciation_years=4.0,
    facility_depreciation_years=10.0,
    networking_capex_fraction=0.25,
    facility_capex_usd_per_kw=10_000.0,
    maintenance_fraction_per_year=0.02,
    discount_rate=0.1,
    hours_per_year=8760.0,
)


def test_one_gb200_rack_by_hand() -> None:
    cost = pool_cost("gpu", load_system("gb200_nvl72"), 2, mean_it_power_kw=100.0, economics=ECON)
    assert cost.hardware_capex_usd == pytest.approx(2 * 3.0e6)
    assert cost.networking_capex_usd == pytest.approx(0.25 * 6.0e6)
    assert cost.max_it_power_kw == pytest.approx(240.0)
    assert cost.facility_capex_usd == pytest.approx(240.0 * 10_000)
    assert cost.capex_usd == pytest.approx(6.0e6 + 1.5e6 + 2.4e6)
    assert cost.depreciation_usd_per_year == pytest.approx(7.5e6 / 4 + 2.4e6 / 10)
    assert cost.energy_usd_per_year == pytest.approx(100.0 * 1.5 * 8760 * 0.10)
    assert cost.maintenance_usd_per_year == pytest.approx(0.02 * 6.0e6)


def test_hgx_racks_hold_four_systems() -> None:
    cost = pool_cost("gpu", load_system("b200"), 1, mean_it_power_kw=0.0, economics=ECON)
    assert cost.hardware_capex_usd == pytest.approx(4 * 515_000)
    assert cost.energy_usd_per_year == 0.0


def test_cost_per_million_tokens_and_per_tree() -> None:
    cost = pool_cost("gpu", load_system("gb200_nvl72"), 1, mean_it_power_kw=60.0, economics=ECON)
    summary = cost_summary([cost], output_tokens_per_s=10_000.0, trees_per_s=2.0, economics=ECON)
    per_year = cost.depreciation_usd_per_year + cost.opex_usd_per_year
    tokens_per_year = 10_000.0 * 8760 * 3600
    assert summary["usd_per_year"] == pytest.approx(per_year)
    expected = per_year / tokens_per_year * 1e6
    assert summary["usd_per_million_output_tokens"] == pytest.approx(expected)
    assert summary["usd_per_tree"] == pytest.approx(per_year / (2.0 * 8760 * 3600))
    assert summary["capex_usd"] == pytest.approx(cost.capex_usd)
    idle = cost_summary([cost], output_tokens_per_s=0.0, trees_per_s=0.0, economics=ECON)
    assert idle["usd_per_million_output_tokens"] is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"pue": 0.9}, "economics.pue"),
        ({"electricity_usd_per_kwh": -0.1}, "economics.electricity_usd_per_kwh"),
        ({"discount_rate": 1.5}, "economics.discount_rate"),
        ({"maintenance_fraction_per_year": -0.1}, "economics.maintenance_fraction_per_year"),
        ({"depreciation_years": 0}, "economics.depreciation_years"),
        ({"price": 3}, "economics.price"),
        ({"pue": "high"}, "economics.pue"),
    ],
)
def test_bad_economics_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as error:
        config.economics(data)
    assert error.value.field == field
