"""The ``planner-roi`` charts as PNG bytes: NPV histogram, tornado, break-even map, cash flows.

Money is shown in USD millions with no axis offset. The histogram spans the futures' NPVs
(0.5-99.5 % quantiles, widened slightly), not the markers: a break-even line far outside the
data is named in the legend instead of squeezing the bars into a sliver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from planner.report.plots import HIGH_COLOR, LOW_COLOR, MAX_BINS, _new_axes, _png

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from planner.app.roi_result import BreakevenGrid, CashFlows
    from planner.econ.montecarlo import TornadoBar

MUSD = 1e6


def _plain_axis(ax: Axes, axis: str = "x") -> None:
    """Plain numbers with thousands separators: no offset, no scientific notation."""
    from matplotlib.ticker import FuncFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))


def _to_symlog(v: np.ndarray, linthresh: float) -> np.ndarray:
    """Coordinate on a symmetric-log axis (linear within +-linthresh)."""
    return np.asarray(np.sign(v) * np.log10(1.0 + np.abs(v) / linthresh))


def _from_symlog(t: np.ndarray, linthresh: float) -> np.ndarray:
    """Inverse of :func:`_to_symlog`."""
    return np.asarray(np.sign(t) * linthresh * (10.0 ** np.abs(t) - 1.0))


def npv_histogram_png(npv_usd: np.ndarray, *, title: str) -> bytes:
    """Histogram of NPV in $M with p5/p50/p95 and break-even (when inside the data's span).

    When the futures span far more than their inter-quartile range (a heavy tail), the axis is
    symmetric-log with bins of equal width on it, so the bulk and the tail both stay readable.
    """
    values = np.asarray(npv_usd, dtype=float) / MUSD
    low, q25, p50, q75, high = (float(v) for v in np.percentile(values, [0.5, 25, 50, 75, 99.5]))
    bins = int(min(MAX_BINS, max(10, np.sqrt(values.size))))
    heavy_tail = q75 > q25 and (high - low) > 20.0 * (q75 - q25)
    if heavy_tail:
        linthresh = max(abs(p50) / 10.0, (q75 - q25) / 10.0, 1e-6)
        ends = _to_symlog(np.array([low, high]), linthresh)
        pad = 0.05 * float(ends[1] - ends[0])
        t = np.linspace(ends[0] - pad, ends[1] + pad, bins + 1)
        edges: list[float] | int = _from_symlog(t, linthresh).tolist()
        low, high = (
            float(_from_symlog(t[:1], linthresh)[0]),
            float(_from_symlog(t[-1:], linthresh)[0]),
        )
    else:
        pad = max((high - low) * 0.08, abs(high) * 1e-3, 1e-6)
        low, high, edges = low - pad, high + pad, bins
    xlabel = "NPV of candidate - baseline (USD M" + (", symmetric log)" if heavy_tail else ")")
    ax = _new_axes(title, xlabel, "futures")
    ax.hist(np.clip(values, low, high), bins=edges, range=(low, high), color=LOW_COLOR, alpha=0.8)
    if heavy_tail:
        ax.set_xscale("symlog", linthresh=linthresh)
    p5, p95 = np.percentile(values, [5, 95])
    for name, value, style in (("p5", p5, ":"), ("p50", p50, "--"), ("p95", p95, ":")):
        ax.axvline(value, color="black", linestyle=style, label=f"{name} ${value:,.0f} M")
    if low <= 0 <= high:
        ax.axvline(0.0, color="tab:red", linewidth=2, label="break-even $0 M")
    else:
        side = "right" if high < 0 else "left"
        label = f"break-even $0 M: off the chart ({side})"
        ax.plot([], [], color="tab:red", linewidth=2, label=label)
    ax.set_xlim(low, high)
    _plain_axis(ax)
    ax.legend(loc="best", fontsize=8)
    return _png(ax)


def tornado_musd_png(bars: Sequence[TornadoBar], *, base_npv_usd: float, title: str) -> bytes:
    """One-at-a-time swings of NPV in $M around the base case (largest on top)."""
    shown = list(bars)[:10][::-1]
    ax = _new_axes(title, "NPV (USD M)", "", height_in=max(3.0, 0.45 * len(shown) + 1.5))
    base = base_npv_usd / MUSD
    for i, bar in enumerate(shown):
        low, high = bar.output_at_low / MUSD, bar.output_at_high / MUSD
        ax.barh(i, low - base, left=base, color=LOW_COLOR, label="input at p10" if i == 0 else None)
        ax.barh(
            i, high - base, left=base, color=HIGH_COLOR, label="input at p90" if i == 0 else None
        )
    ax.axvline(base, color="black", linewidth=1, label=f"base case ${base:,.0f} M")
    ax.set_yticks(range(len(shown)), [b.name for b in shown], fontsize=8)
    _plain_axis(ax)
    ax.legend(loc="best", fontsize=8)
    return _png(ax)


def _ticks(ax: Axes, axis: str, labels: Sequence[str]) -> None:
    if not labels:
        return
    setter = ax.set_xticks if axis == "x" else ax.set_yticks
    setter(range(len(labels)), list(labels), fontsize=8)


def breakeven_png(grid: BreakevenGrid, *, title: str) -> bytes:
    """P(NPV > 0) over the two inputs that matter most, with the 50 % contour (break-even)."""
    x_label, y_label = grid.labels[0], grid.labels[1]
    x = np.arange(len(grid.x_values)) if x_label else grid.x_values
    y = np.arange(len(grid.y_values)) if y_label else grid.y_values
    ax = _new_axes(title, grid.axes[0], grid.axes[1])
    mesh = ax.pcolormesh(
        x, y, grid.prob_positive, vmin=0.0, vmax=1.0, cmap="RdYlGn", shading="nearest"
    )
    ax.figure.colorbar(mesh, ax=ax, label="P(NPV > 0)")
    if 0.0 < grid.prob_positive.min() < 0.5 < grid.prob_positive.max():
        ax.contour(x, y, grid.prob_positive, levels=[0.5], colors="black", linewidths=1.5)
    elif grid.prob_positive.max() <= 0.5:
        ax.text(
            0.5,
            0.5,
            f"P(NPV > 0) <= {grid.prob_positive.max():.0%} everywhere",
            transform=ax.transAxes,
            ha="center",
            va="center",
            bbox={"facecolor": "white", "alpha": 0.8},
        )
    _ticks(ax, "x", x_label)
    _ticks(ax, "y", y_label)
    ax.grid(False)
    return _png(ax)


def cashflow_png(flows: CashFlows, *, title: str) -> bytes:
    """Yearly savings (base case capex/opex parts, p5-p95 over futures) and cumulative NPV."""
    years = np.arange(1, flows.capex_saving_usd.size + 1)
    ax = _new_axes(title, "year", "USD M (candidate saves > 0)")
    capex, opex = flows.capex_saving_usd / MUSD, flows.opex_saving_usd / MUSD
    ax.bar(years - 0.2, capex, width=0.4, color=LOW_COLOR, label="capex saving, base case")
    ax.bar(years + 0.2, opex, width=0.4, color=HIGH_COLOR, label="opex saving, base case")
    p5, p50, p95 = flows.savings_percentiles_usd / MUSD
    ax.errorbar(
        years,
        p50,
        yerr=[p50 - p5, p95 - p50],
        fmt="o",
        color="black",
        capsize=4,
        label="yearly saving, p50 (p5-p95) of futures",
    )
    c5, c50, c95 = flows.cumulative_npv_percentiles_usd / MUSD
    ax.plot(years, c50, color="tab:green", linewidth=2, label="cumulative NPV, p50")
    ax.fill_between(years, c5, c95, color="tab:green", alpha=0.2, label="cumulative NPV, p5-p95")
    ax.axhline(0.0, color="black", linewidth=0.8)
    # Futures span orders of magnitude: a symmetric log axis keeps the median and the tails
    # readable together (linear within +-10 % of the median's size).
    scale = float(np.max(np.abs(np.concatenate([capex, opex, p50, c50]))))
    if scale > 0:
        ax.set_yscale("symlog", linthresh=max(scale / 10.0, 1e-3))
        ax.set_ylabel("USD M (candidate saves > 0; symmetric log)")
    ax.set_xticks(years)
    _plain_axis(ax, "y")
    ax.legend(loc="best", fontsize=7)
    return _png(ax)
