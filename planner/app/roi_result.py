"""The typed result of a ``planner-roi`` study and its ``summary.json`` (:meth:`RoiResult.to_json`).

Units are in the names (``_usd``, ``_mw``, ``_years``); every figure over futures is over ALL
sampled futures (a future without an IRR or a payback is counted, never dropped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from planner.app.formatting import fmt_usd
from planner.app.provenance import fleet_provenance
from planner.econ.capacity import StaticCapacity
from planner.econ.montecarlo import SobolIndices, TornadoBar
from planner.econ.roi import OptionCosts, SpotCheck

if TYPE_CHECKING:
    from planner.app.roi_spec import RoiStudySpec

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class BreakevenGrid:
    """P(NPV > 0) over a grid of two inputs, every other input drawn as in the study.

    Attributes:
        axes: The two inputs (largest first-order Sobol shares first).
        x_values: Grid values of ``axes[0]`` (its unit; the index for a discrete input).
        y_values: Grid values of ``axes[1]``.
        prob_positive: Shape (len(y_values), len(x_values)).
        futures_per_cell: Futures evaluated at each grid point.
        labels: Per axis, the discrete input's value names (empty for a continuous one).
    """

    axes: tuple[str, str]
    x_values: FloatArray
    y_values: FloatArray
    prob_positive: FloatArray
    futures_per_cell: int
    labels: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class CashFlows:
    """Yearly savings of the candidate against the baseline (baseline cost - candidate cost).

    Attributes:
        capex_saving_usd: Base case, capex part per year, USD.
        opex_saving_usd: Base case, opex part per year, USD.
        savings_percentiles_usd: p5, p50, p95 over futures per year, shape (3, years), USD.
        cumulative_npv_percentiles_usd: Cumulative discounted savings, p5/p50/p95, (3, years).
    """

    capex_saving_usd: FloatArray
    opex_saving_usd: FloatArray
    savings_percentiles_usd: FloatArray
    cumulative_npv_percentiles_usd: FloatArray


@dataclass(frozen=True)
class FleetFigures:
    """One option's fleet: base case by year and the peak over the horizon across futures.

    Attributes:
        racks_by_year: Base case racks owned (floor space), per year.
        power_mw_by_year: Base case provisioned IT power, MW, per year.
        accelerators_by_year: Base case accelerators owned, per year.
        peak_racks: p5, p50, p95 over futures of the most racks owned.
        peak_power_mw: p5, p50, p95 over futures of the most IT power provisioned, MW.
        year_one_accelerators: p5, p50, p95 over futures of year one's accelerators.
    """

    racks_by_year: FloatArray
    power_mw_by_year: FloatArray
    accelerators_by_year: FloatArray
    peak_racks: tuple[float, float, float]
    peak_power_mw: tuple[float, float, float]
    year_one_accelerators: tuple[float, float, float]


def _p5_50_95(values: FloatArray) -> tuple[float, float, float]:
    low, mid, high = np.percentile(values, [5, 50, 95])
    return float(low), float(mid), float(high)


def fleet_figures(futures: OptionCosts, base: OptionCosts) -> FleetFigures:
    """:class:`FleetFigures` from an option's costs over the futures and in the base case."""
    return FleetFigures(
        racks_by_year=base.racks[0],
        power_mw_by_year=base.power_mw[0],
        accelerators_by_year=base.accelerators[0],
        peak_racks=_p5_50_95(futures.racks.max(axis=1)),
        peak_power_mw=_p5_50_95(futures.power_mw.max(axis=1)),
        year_one_accelerators=_p5_50_95(futures.accelerators[:, 0]),
    )


def _none_if_inf(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class RoiResult:
    """Everything a ``planner-roi`` study found (see :mod:`planner.app.roi_study`).

    Attributes:
        spec: The study.
        npv_usd: NPV of every sampled future, USD.
        npv_stats: Percentiles and moments of ``npv_usd`` (montecarlo.summarize_samples).
        prob_positive: Share of futures with NPV > 0.
        prob_positive_ci: 95 % Wilson interval of ``prob_positive``.
        irr: IRR over all futures (planner.econ.roi.irr_summary).
        payback_years: Per future, years to payback (inf: not within the horizon).
        base_inputs: Every input at its median.
        base_npv_usd: NPV of the base case, USD.
        base_irr: IRR of the base case (None: none).
        base_payback_years: Payback of the base case (None: not within the horizon).
        base_savings_usd: Base case savings per year, USD.
        base_loads: Base case load per year, trees/s of today's workload.
        tornado: One-at-a-time p10/p90 bars (NPV, USD), largest swing first.
        sobol: Sobol indices of NPV.
        rank_shares: Variance shares from squared rank correlations (sum to 1).
        rank_r2: Sum of the squared rank correlations before normalising.
        breakeven: P(NPV > 0) over the two inputs that matter most.
        breakeven_lpu_price_factor: Per future, the LPU price (multiple of list) at which NPV
            is 0; NaN where even free LPUs lose, inf where any price pays back.
        cash_flows: Yearly savings and cumulative NPV.
        fleets: Per option, racks, power and accelerators.
        curves: Per option, its static curves.
        curves_cached: Per option, whether the curves came from the cache.
        spot_checks: Futures re-sized by simulation.
        chunks_total: Monte Carlo chunks.
        chunks_resumed: Chunks found in the checkpoint.
        checkpoint_path: Directory of the on-disk checkpoint ("" without).
    """

    spec: RoiStudySpec
    npv_usd: FloatArray
    npv_stats: Mapping[str, float | int]
    prob_positive: float
    prob_positive_ci: tuple[float, float]
    irr: Mapping[str, float | None]
    payback_years: FloatArray
    base_inputs: Mapping[str, float]
    base_npv_usd: float
    base_irr: float | None
    base_payback_years: float | None
    base_savings_usd: FloatArray
    base_loads: FloatArray
    tornado: tuple[TornadoBar, ...]
    sobol: SobolIndices
    rank_shares: Mapping[str, float]
    rank_r2: float
    breakeven: BreakevenGrid
    breakeven_lpu_price_factor: FloatArray
    cash_flows: CashFlows
    fleets: Mapping[str, FleetFigures]
    curves: Mapping[str, StaticCapacity]
    curves_cached: Mapping[str, bool]
    spot_checks: tuple[SpotCheck, ...]
    chunks_total: int
    chunks_resumed: int
    checkpoint_path: str

    def answer(self) -> str:
        """The verdict sentence: does the candidate pay back, how often, how sure."""
        spec, stats = self.spec, self.npv_stats
        low, high = self.prob_positive_ci
        year_one = self.fleets[spec.baseline].year_one_accelerators[1]
        return (
            f"{spec.candidate} against {spec.baseline} over {spec.horizon_years} years "
            f"(baseline {year_one:,.0f} accelerators in year one, median future): NPV > 0 in "
            f"{self.prob_positive:.1%} of {spec.samples:,} sampled futures (95% CI "
            f"{low:.1%}-{high:.1%}); median NPV {fmt_usd(stats['p50'])} (p5 "
            f"{fmt_usd(stats['p5'])}, p95 {fmt_usd(stats['p95'])})."
        )

    def _sensitivity(self) -> dict[str, Any]:
        s = self.sobol
        first = dict(zip(s.names, s.first_order, strict=True))
        shares = dict(self.rank_shares)
        return {
            "method": "variance shares: squared Spearman rank correlations of NPV with each "
            "input, normalised to sum to 1; Sobol indices: scipy.stats.sobol_indices "
            f"(Saltelli 2010, {s.evaluations:,} evaluations)",
            "shares": shares,
            "shares_sum": float(sum(shares.values())),
            "rank_r2": self.rank_r2,
            "ranked": [n for _, n in sorted(((v, n) for n, v in shares.items()), reverse=True)],
            "sobol": {
                "first_order": first,
                "total_order": dict(zip(s.names, s.total_order, strict=True)),
                "first_order_sum": float(sum(s.first_order)),
                "interaction_share": float(1.0 - sum(s.first_order)),
            },
        }

    def _breakeven_price(self) -> dict[str, Any]:
        """Percentiles over ALL futures of the break-even LPU price (as irr_summary ranks)."""
        f = self.breakeven_lpu_price_factor
        ranked = np.where(np.isnan(f), -np.inf, f)
        out: dict[str, Any] = {}
        for name, q in (("p5", 5.0), ("p50", 50.0), ("p95", 95.0)):
            value = float(np.percentile(ranked, q, method="inverted_cdf"))
            out[name] = value if math.isfinite(value) else None
        out["none_fraction"] = float(np.isnan(f).mean())
        out["note"] = (
            "multiple of today's LPU list price at which NPV = 0; none where the candidate "
            "loses even with free LPU racks (ranked lowest)"
        )
        return out

    def _fleets(self) -> dict[str, Any]:
        return {
            name: {
                "racks_by_year": f.racks_by_year.tolist(),
                "power_mw_by_year": f.power_mw_by_year.tolist(),
                "accelerators_by_year": f.accelerators_by_year.tolist(),
                "peak_racks": dict(zip(("p5", "p50", "p95"), f.peak_racks, strict=True)),
                "peak_power_mw": dict(zip(("p5", "p50", "p95"), f.peak_power_mw, strict=True)),
                "year_one_accelerators": dict(
                    zip(("p5", "p50", "p95"), f.year_one_accelerators, strict=True)
                ),
            }
            for name, f in self.fleets.items()
        }

    def to_json(self) -> dict[str, Any]:
        """``summary.json``: plain Python types only (keys documented in the README)."""
        spec, stats, cf = self.spec, self.npv_stats, self.cash_flows
        paybacks = self.payback_years
        b = self.breakeven
        return {
            "scenario": spec.scenario,
            "question": (
                f"Does {spec.candidate} pay back against {spec.baseline} over "
                f"{spec.horizon_years} years, serving the same demand under the same SLOs?"
            ),
            "answer": self.answer(),
            "roi": {
                "baseline": spec.baseline,
                "candidate": spec.candidate,
                "horizon_years": spec.horizon_years,
                "samples": spec.samples,
                "inputs": {i.name: i.distribution.to_dict() for i in spec.inputs},
                "npv_usd": {k: stats[k] for k in ("p5", "p50", "p95", "mean", "std")},
                "standard_error_usd": stats["standard_error"],
                "prob_npv_positive": self.prob_positive,
                "prob_npv_positive_ci95": list(self.prob_positive_ci),
                "irr": dict(self.irr),
                "payback_years": {
                    "p50": _none_if_inf(float(np.percentile(paybacks, 50, method="inverted_cdf"))),
                    "within_horizon_fraction": float(np.isfinite(paybacks).mean()),
                },
                "base_case": {
                    "inputs": dict(self.base_inputs),
                    "npv_usd": self.base_npv_usd,
                    "irr": self.base_irr,
                    "payback_years": self.base_payback_years,
                    "savings_usd_by_year": self.base_savings_usd.tolist(),
                    "capex_saving_usd_by_year": cf.capex_saving_usd.tolist(),
                    "opex_saving_usd_by_year": cf.opex_saving_usd.tolist(),
                    "load_trees_per_s_by_year": self.base_loads.tolist(),
                },
                "cash_flows": {
                    "savings_usd_by_year": dict(
                        zip(("p5", "p50", "p95"), cf.savings_percentiles_usd.tolist(), strict=True)
                    ),
                    "cumulative_npv_usd_by_year": dict(
                        zip(
                            ("p5", "p50", "p95"),
                            cf.cumulative_npv_percentiles_usd.tolist(),
                            strict=True,
                        )
                    ),
                },
                "fleets": self._fleets(),
                "sensitivity": self._sensitivity(),
                "tornado": [
                    {
                        "input": t.name,
                        "low_input": t.low_value_input,
                        "high_input": t.high_value_input,
                        "npv_at_low_usd": t.output_at_low,
                        "npv_at_high_usd": t.output_at_high,
                        "swing_usd": t.swing,
                    }
                    for t in self.tornado
                ],
                "breakeven_lpu_price_factor": self._breakeven_price(),
                "breakeven": {
                    "axes": list(b.axes),
                    "x_values": b.x_values.tolist(),
                    "y_values": b.y_values.tolist(),
                    "labels": [list(v) for v in b.labels],
                    "prob_npv_positive": b.prob_positive.tolist(),
                    "futures_per_cell": b.futures_per_cell,
                },
            },
            "calibration": {
                name: fleet_provenance(v.options[0].fleet) for name, v in spec.variants.items()
            },
            "calibration_by_variant": {
                name: {
                    label: fleet_provenance(option.fleet)
                    for label, option in zip(v.labels, v.options, strict=True)
                }
                for name, v in spec.variants.items()
            },
            "curves": {
                name: {**c.to_dict(), "from_cache": self.curves_cached[name]}
                for name, c in self.curves.items()
            },
            "spot_checks": [
                {
                    "option": c.option,
                    "load_trees_per_s": c.load_trees_per_s,
                    "fast_racks": c.fast_racks,
                    "simulated_racks": c.simulated_racks,
                    "relative_error": c.relative_error,
                }
                for c in self.spot_checks
            ],
            "mc": {
                "backend": spec.backend,
                "chunks_total": self.chunks_total,
                "chunks_resumed": self.chunks_resumed,
                "checkpoint": self.checkpoint_path,
            },
            "seed": spec.seed,
            "mc_seed": spec.mc_seed,
        }
