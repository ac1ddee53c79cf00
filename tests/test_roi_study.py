"""The ASIC question at hyperscale (issue 12 item 4): ``planner-roi scenario=moe_paradox_roi``.

The bar: a baseline of >= 1,000 accelerators in year one, the four deciding inputs sampled and
changing the sized fleets, breakeven.png and cashflow.png written, variance shares summing to 1
(tolerance 1e-9: they are normalised; the Sobol first-order sum is only bounded, 0..1.1, since
interactions take the rest), and a P(NPV > 0) interval containing the estimate and narrowing
with more futures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from planner.app.roi_study import breakeven_price_factor
from planner.econ.capacity import PoolPrices, StaticCapacity
from planner.econ.montecarlo import Choice, UncertainInput, latin_hypercube, wilson_interval
from planner.econ.roi import RoiModel, irr_summary
from planner.econ.tco import EconomicsSpec
from tests.cli_runner import run_cli

SCRIPT = Path(sys.executable).parent / "planner-roi"
PNG = b"\x89PNG\r\n\x1a\n"
Runs = tuple[Path, dict[str, Any], dict[str, Any]]
DECIDING = ("lpu_price_factor", "lpu_generation", "context_scale", "model")


def _run(tmp_path: Path, name: str, samples: int) -> dict[str, Any]:
    args = [
        str(SCRIPT),
        "scenario=moe_paradox_roi",
        f"hydra.run.dir={tmp_path / name}",
        f"cache_dir={tmp_path / 'cache'}",
        f"mc.samples={samples}",
        "mc.chunk_size=200",
        "mc.backend=serial",
        "roi.sensitivity_samples=64",
        "roi.breakeven_grid=6",
    ]
    result = run_cli(args[0], args[1:])
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads((tmp_path / name / "summary.json").read_text())
    return summary


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The scenario at 400 and at 1,600 futures, sharing one cache."""
    tmp = tmp_path_factory.mktemp("roi")
    return tmp, _run(tmp, "small", 400), _run(tmp, "large", 1600)


def test_hyperscale_baseline_and_deciding_inputs(runs: Runs) -> None:
    """Baseline >= 1,000 accelerators, deciding inputs sampled, fleets vary, charts written."""
    tmp, small, _ = runs
    roi = small["roi"]
    gpu = roi["fleets"]["gpu_only"]
    assert gpu["accelerators_by_year"][0] >= 1000  # base case
    assert gpu["year_one_accelerators"]["p5"] >= 1000  # and nearly every future
    inputs = roi["inputs"]
    for name in DECIDING:
        assert inputs[name]["dist"] != "fixed", name
    assert set(inputs["lpu_generation"]) >= {"groq_lpu_v1", "groq_lpu_v2"}
    # The samples change the sized fleets: the candidate's peak racks spread over futures.
    lpu = roi["fleets"]["gpu_prefill_lpu_decode"]
    assert lpu["peak_racks"]["p95"] > 1.5 * lpu["peak_racks"]["p5"]
    for name in ("breakeven.png", "cashflow.png", "npv_histogram.png", "tornado.png"):
        assert (tmp / "small" / name).read_bytes()[:8] == PNG, name
    html = (tmp / "small" / "report.html").read_text()
    assert html.index("Question") < html.index("Answer") < html.index("Net present value")


def test_sensitivity_shares_and_irr_over_all_futures(runs: Runs) -> None:
    """Shares sum to 1, Sobol bounded, break-even axes are the top two, IRR shares add up."""
    _, small, _ = runs
    sens = small["roi"]["sensitivity"]
    assert abs(sum(sens["shares"].values()) - 1.0) < 1e-9
    assert set(DECIDING) <= set(sens["shares"])
    assert 0.0 < sens["sobol"]["first_order_sum"] <= 1.1
    assert set(sens["ranked"][:2]) == set(small["roi"]["breakeven"]["axes"])
    irr = small["roi"]["irr"]
    none = irr["none_fraction_never_recovers"] + irr["none_fraction_always_saves"]
    assert abs(irr["defined_fraction"] + none - 1.0) < 1e-9
    assert all(abs(t["swing_usd"]) < 1e13 for t in small["roi"]["tornado"])


def test_probability_interval_contains_estimate_and_narrows(runs: Runs) -> None:
    """The Wilson interval holds the estimate and narrows from 400 to 1,600 futures."""
    _, small, large = runs
    widths = []
    for summary in (small, large):
        roi = summary["roi"]
        low, high = roi["prob_npv_positive_ci95"]
        assert low <= roi["prob_npv_positive"] <= high
        widths.append(high - low)
    assert widths[1] < widths[0]
    assert large["curves"]["gpu_only"]["from_cache"]


def test_wilson_interval_narrows_and_contains_the_estimate() -> None:
    """Wilson intervals on fixed counts: contain k/n, narrow with n."""
    for k, n in ((30, 100), (120, 400), (480, 1600)):
        low, high = wilson_interval(k, n)
        assert low < k / n < high
    assert (
        np.diff(
            [
                np.subtract(*wilson_interval(k, n)[::-1])
                for k, n in ((30, 100), (120, 400), (480, 1600))
            ]
        ).max()
        < 0
    )


def _static(slopes: list[list[float]]) -> StaticCapacity:
    price = PoolPrices("lpu", 1.0e6, 20.0, 6.0, 72.0)
    return StaticCapacity(
        option="x",
        choice_names=("lpu_generation",),
        choice_sizes=(2,),
        context_scales=np.array([0.5, 1.0, 2.0]),
        racks_per_trees_per_s={"p": np.array(slopes)},
        rack_units={"p": np.array([2.0, 1.0])},
        prices={"p": (price, price)},
        load_fraction=0.7,
        labels=("v1", "v2"),
    )


def test_static_capacity_follows_the_sampled_variant_and_context() -> None:
    """Racks follow each future's variant and context scale, in whole replicas."""
    curve = _static([[10.0, 20.0, 40.0], [1.0, 2.0, 4.0]])
    inputs = {
        "lpu_generation": np.array([0.0, 1.0, 1.0]),
        "context_scale": np.array([1.0, 1.0, 2.0]),
    }
    loads = np.full((3, 1), 100.0)
    racks = curve.racks_for("p", loads, inputs)[:, 0]
    np.testing.assert_allclose(racks, [2000.0, 200.0, 400.0])
    # Between grid points: linear in the scale, rounded up to whole replicas (2 racks on v1).
    mid = curve.racks_for(
        "p",
        np.array([[1.0]]),
        {"lpu_generation": np.array([0.0]), "context_scale": np.array([1.5])},
    )
    assert mid[0, 0] == 30.0


def test_choice_draws_each_value_in_its_share() -> None:
    """A discrete input under LHS is drawn in exactly its shares."""
    choice = Choice(("a", "b", "c"), (0.5, 0.25, 0.25))
    draws = latin_hypercube([UncertainInput("pick", choice)], 400, 3)["pick"]
    assert np.bincount(draws.astype(int)).tolist() == [200, 100, 100]


def test_irr_percentiles_count_futures_without_one() -> None:
    """IRR percentiles rank futures without an IRR instead of dropping them."""
    savings = np.array([[-10.0, -1.0, -1.0], [-10.0, 6.0, 6.0], [-10.0, 8.0, 8.0], [1.0, 1.0, 1.0]])
    out = irr_summary(savings)
    assert out["defined_fraction"] == 0.5
    assert out["none_fraction_never_recovers"] == 0.25
    assert out["none_fraction_always_saves"] == 0.25
    assert out["p5"] is None and out["p95"] is None
    assert out["p50"] is not None and 0.0 < out["p50"] < 0.2


def test_breakeven_price_factor_zeroes_the_npv() -> None:
    """At each future's break-even LPU price NPV is 0; losing even at price 0 gives NaN."""
    gpu = StaticCapacity(
        option="g",
        choice_names=(),
        choice_sizes=(),
        context_scales=np.array([0.5, 2.0]),
        racks_per_trees_per_s={"p": np.array([[10.0, 10.0]])},
        rack_units={"p": np.array([1.0])},
        prices={"p": (PoolPrices("gpu", 3.0e6, 120.0, 20.0, 72.0),)},
        load_fraction=0.7,
        labels=("g",),
    )
    lpu = _static([[4.0, 4.0, 4.0], [4.0, 4.0, 4.0]])
    model = RoiModel(gpu, lpu, EconomicsSpec(), horizon_years=3)
    n = 3
    draws = {
        "base_demand_trees_per_s": np.array([10.0, 10.0, 10.0]),
        "demand_growth_per_year": np.zeros(n),
        "fanout_growth_per_year": np.zeros(n),
        "efficiency_gain_per_year": np.zeros(n),
        "gpu_price_change_per_year": np.zeros(n),
        "lpu_price_change_per_year": np.zeros(n),
        "electricity_usd_per_kwh": np.full(n, 0.08),
        "pue": np.full(n, 1.3),
        "discount_rate": np.full(n, 0.1),
        "lpu_generation": np.array([0.0, 1.0, 0.0]),
        "context_scale": np.ones(n),
    }
    factor = breakeven_price_factor(model, draws)
    assert np.all(np.isfinite(factor)) and np.all(factor > 0)
    at = model.npv_usd({**draws, "lpu_price_factor": factor})
    np.testing.assert_allclose(at, 0.0, atol=1e-3 * 3.0e6)
    # A candidate needing 100x the racks loses even with free racks (power and facility).
    costly = RoiModel(gpu, _static([[400.0] * 3, [400.0] * 3]), EconomicsSpec(), horizon_years=3)
    assert np.isnan(breakeven_price_factor(costly, draws)).all()
