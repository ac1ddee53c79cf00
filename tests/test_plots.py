"""Report plots: valid PNGs, byte-identical for the same data; the inline SVG charts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from planner.econ.montecarlo import TornadoBar
from planner.report.plots import (
    _unit,
    _with_unit,
    cdf_png,
    histogram_png,
    histogram_range,
    line_png,
    tornado_png,
)
from planner.report.svg import (
    ccdf,
    cdf_chart,
    ecdf,
    linear_ticks,
    log_ticks,
    tail_chart,
    tick_label,
    timeline_chart,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_RNG = np.random.default_rng(0)
_NPV_USD = _RNG.normal(2e6, 5e6, size=2000)
_TTFT_S = _RNG.gamma(2.0, 0.1, size=500)
_BARS = [
    TornadoBar("demand_growth_per_yr", 0.1, 0.6, -3e6, 9e6, 12e6),
    TornadoBar("moe_efficiency_gain", 1.0, 3.0, 5e6, -1e6, 6e6),
    TornadoBar("electricity_usd_per_kwh", 0.05, 0.15, 2.5e6, 1.5e6, 1e6),
]

PLOTS: dict[str, Callable[[], bytes]] = {
    "histogram": lambda: histogram_png(
        _NPV_USD,
        title="NPV of 4 LPU racks",
        xlabel="NPV (USD)",
        markers={"p5": -6e6, "p50": 2e6, "p95": 1e7, "break-even": 0.0},
    ),
    "histogram_no_markers": lambda: histogram_png(np.full(10, 3.0), title="constant", xlabel="x"),
    "tornado": lambda: tornado_png(
        _BARS, title="NPV sensitivity", base_value=2e6, xlabel="NPV (USD)"
    ),
    "line": lambda: line_png(
        [1, 2, 4, 8],
        {"p99 TTFT": [3.0, 1.2, 0.5, 0.4], "p99 TPOT": np.array([0.2, 0.1, 0.05, 0.05])},
        title="Latency vs racks",
        xlabel="LPU racks",
        ylabel="latency (s)",
    ),
    "cdf": lambda: cdf_png(
        {"gpu": _TTFT_S, "lpu": np.array([0.05, 0.1, np.nan, 0.2])},
        title="TTFT",
        xlabel="TTFT (s)",
    ),
}


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_plot_is_a_deterministic_png(name: str) -> None:
    first = PLOTS[name]()
    assert first.startswith(PNG_SIGNATURE)
    assert len(first) > 2000
    assert PLOTS[name]() == first


def test_png_dimensions() -> None:
    png = PLOTS["line"]()
    width = int.from_bytes(png[16:20], "big")  # IHDR chunk: width, height
    height = int.from_bytes(png[20:24], "big")
    assert (width, height) == (900, 540)


def test_line_png_rejects_mismatched_series() -> None:
    with pytest.raises(ValueError, match="series"):
        line_png([1, 2, 3], {"a": [1.0, 2.0]}, title="t", xlabel="x", ylabel="y")


def test_different_data_gives_different_images() -> None:
    assert histogram_png(_NPV_USD, title="a", xlabel="x") != histogram_png(
        _NPV_USD * 2, title="a", xlabel="x"
    )


# ---------------------------------------------------------------------------------------------
# ROI histogram range and the inline SVG charts of the run page


def test_histogram_range_follows_the_bulk_and_counts_the_tails() -> None:
    data = np.concatenate([_RNG.normal(-31.0, 0.2, 2000), [-400.0, 900.0]])  # $M, two outliers
    low, high = histogram_range(data, {"p50": -31.0, "break-even": 0.0})
    assert -32.5 < low < -31.5 and -30.5 < high < -29.5  # not stretched to -400 .. 900
    # A marker within half the range of an edge widens it; break-even at 0 is far: left out.
    bulk_high = histogram_range(data, {})[1]
    assert histogram_range(data, {"near": -30.1})[1] > max(bulk_high, -30.1)
    assert histogram_range(np.full(10, 3.0), {}) == pytest.approx((2.8, 3.2), abs=0.06)


def test_dollar_labels_carry_the_unit() -> None:
    assert _unit("NPV (USD M)") == "USD M" and _unit("latency (s)") == "s" and _unit("x") == ""
    assert _with_unit(-31.06, "USD M") == "-$31.1M" and _with_unit(2e6, "USD") == "$2,000,000"


def test_ticks_are_nice_and_cover_the_data() -> None:
    low, high, ticks = linear_ticks(0.3, 97.0)
    assert low <= 0.3 and high >= 97.0 and ticks == [0, 20, 40, 60, 80, 100]
    low, high, ticks = log_ticks(0.02, 150.0)
    assert low <= 0.02 and high >= 150 and ticks[0] == 0.01 and ticks[-1] == 1000
    assert log_ticks(2.0, 30.0)[2] == [2, 5, 10, 20, 50]  # under three decades: 1-2-5
    assert tick_label(1e-3) == "0.001" and tick_label(12000) == "12,000"


def test_ecdf_and_ccdf_step_through_the_samples() -> None:
    x, f = ecdf([3.0, 1.0, 2.0, np.nan])
    np.testing.assert_array_equal(x, [1, 1, 2, 3])
    np.testing.assert_allclose(f, [0, 1 / 3, 2 / 3, 1])
    x, tail = ccdf([3.0, 1.0, 2.0, 4.0])
    np.testing.assert_array_equal(x, [1, 2, 3])  # P(X > x) after each sample; the final 0 dropped
    np.testing.assert_allclose(tail, [0.75, 0.5, 0.25])
    big = _RNG.lognormal(0, 1, 100_000)
    x, tail = ccdf(big, max_points=1000)
    assert x.size <= 1000 and x[-1] == np.sort(big)[-2]  # the top of the tail is kept in full


def test_svg_charts_are_escaped_markup_with_their_reference_lines() -> None:
    tail = tail_chart(
        {"call <e2e>, s": _TTFT_S},
        title="Tail & more",
        xlabel="latency (s)",
        markers={"SLO = 1 s": 1.0},
    )
    assert tail.startswith('<svg class="chart"') and tail.endswith("</svg>")
    assert "call &lt;e2e&gt;, s (n=500)" in tail and "Tail &amp; more" in tail
    assert "SLO = 1 s" in tail and "p99 level (1% slower)" in tail
    assert "<script" not in tail and "http" not in tail
    cdf = cdf_chart({"ttft, s": _TTFT_S}, title="t", xlabel="s", x_log=True)
    assert cdf.count("<path") == 1 and "100%" in cdf
    with pytest.raises(ValueError, match="series"):
        timeline_chart([0, 1], {"gpu": [0.1]}, title="u", xlabel="s", ylabel="%")
