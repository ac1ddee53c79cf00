"""Plots for reports and ROI studies, rendered to PNG bytes (the caller decides where they go).

Every function builds its own :class:`matplotlib.figure.Figure` on an Agg canvas: no pyplot,
no global backend switch, no file I/O. PNG metadata that would vary between runs (the
``Software`` tag) is dropped, so the same data gives byte-identical images.

matplotlib is imported on the first plot, not with this module: the CLIs import this module
at start-up (``--help`` included) and matplotlib costs 0.4-1 s to import. The run report's
simple charts are inline SVG instead (:mod:`planner.report.svg`).
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:  # matplotlib itself is imported lazily, on the first plot
    from matplotlib.axes import Axes

    from planner.econ.montecarlo import TornadoBar

#: Figure size in inches and resolution in dots per inch: 900 x 540 pixels.
FIGSIZE_IN: Final = (7.5, 4.5)
DPI: Final = 120

#: Colours of the low / high halves of tornado bars and of marker lines (matplotlib tab10).
LOW_COLOR: Final = "tab:blue"
HIGH_COLOR: Final = "tab:orange"
_MARKER_STYLES: Final = ("--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1)))

#: Most points of one CDF curve in :func:`latency_cdf_png` (a million calls draw as fast as 4,000).
CDF_MAX_POINTS: Final = 4000

#: Largest number of histogram bins (the Freedman-Diaconis rule is capped to keep bars visible).
MAX_BINS: Final = 80


def _new_axes(title: str, xlabel: str, ylabel: str, height_in: float | None = None) -> Axes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(FIGSIZE_IN[0], height_in or FIGSIZE_IN[1]), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return ax


def _png(ax: Axes) -> bytes:
    from matplotlib.figure import Figure

    fig = ax.get_figure()
    assert isinstance(fig, Figure)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    fig.clear()
    return buffer.getvalue()


def _fmt(value: float) -> str:
    return f"{value:.4g}"


#: Quantiles bounding a histogram's range: samples beyond are counted at the edges, not drawn
#: (a few extreme futures would otherwise squash every other sample into one bar).
HIST_QUANTILES: Final = (0.005, 0.995)
#: A marker line within this fraction of the range beyond its edge widens the range to show it.
MARKER_REACH: Final = 0.5


def _unit(xlabel: str) -> str:
    """The unit in an axis label's last parentheses (``NPV (USD M)`` -> ``USD M``), or ``""``."""
    found = re.search(r"\(([^()]*)\)\s*$", xlabel)
    return found.group(1) if found else ""


def _with_unit(value: float, unit: str) -> str:
    if unit == "USD M":
        return f"{'-' if value < 0 else ''}${abs(value):,.1f}M"
    if unit == "USD":
        return f"{'-' if value < 0 else ''}${abs(value):,.0f}"
    return f"{_fmt(value)} {unit}".rstrip()


def histogram_range(data: np.ndarray, markers: Mapping[str, float]) -> tuple[float, float]:
    """The x range of a histogram.

    The data's 0.5-99.5% quantiles, padded by 5%, widened to take in the marker lines that lie
    near it (within half the range).
    """
    low, high = (float(q) for q in np.quantile(data, HIST_QUANTILES))
    if high <= low:  # (nearly) constant samples: a unit-wide window around them
        pad = abs(low) * 0.05 or 0.5
        low, high = low - pad, high + pad
    span = high - low
    for x in markers.values():
        if low - MARKER_REACH * span <= x < low:
            low = x
        elif high < x <= high + MARKER_REACH * span:
            high = x
    pad = 0.05 * (high - low)
    return low - pad, high + pad


def histogram_png(
    values: ArrayLike,
    *,
    title: str,
    xlabel: str,
    markers: Mapping[str, float] | None = None,
) -> bytes:
    """A histogram of samples (e.g. NPV in $M) with labelled vertical marker lines.

    The range follows the bulk of the data (:func:`histogram_range`), so every bar is readable;
    samples beyond it are counted in a note on the chart ("12 samples below, down to ..."), and
    a marker beyond it is listed in the legend as off the chart.

    Args:
        values: The samples (non-finite values are dropped).
        title: Figure title.
        xlabel: x-axis label, with the unit in its last parentheses (``NPV (USD M)``); markers
            are labelled in that unit (``USD M`` and ``USD`` as dollars).
        markers: Label -> x position of a vertical line, e.g. ``{"p5": ..., "p50": ...,
            "break-even": 0.0}``; each is labelled with its value in the legend.

    Returns:
        PNG bytes.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    unit = _unit(xlabel)
    if unit == "USD M":
        xlabel = xlabel[: xlabel.rfind("(")] + "($M)"
    ax = _new_axes(title, xlabel, "samples (futures)")
    markers = dict(markers or {})
    low, high = histogram_range(data, markers) if data.size else (0.0, 1.0)
    if data.size:
        shown = data[(data >= low) & (data <= high)]
        edges = np.histogram_bin_edges(shown, bins="auto", range=(low, high))
        bins: Any = edges if len(edges) - 1 <= MAX_BINS else MAX_BINS
        ax.hist(
            shown,
            bins=bins,
            range=(low, high),
            color="tab:gray",
            alpha=0.75,
            label=f"{shown.size:,} of {data.size:,} samples",
        )
        below, above = data[data < low], data[data > high]
        notes = []
        if below.size:
            notes.append(f"← {below.size:,} below, down to {_with_unit(float(below.min()), unit)}")
        if above.size:
            notes.append(f"{above.size:,} above, up to {_with_unit(float(above.max()), unit)} →")
        if notes:
            ax.text(
                0.5,
                0.97,
                "   ".join(notes),
                transform=ax.transAxes,
                ha="center",
                va="top",
                fontsize="small",
                color="dimgray",
            )
            ax.set_ylim(top=ax.get_ylim()[1] * 1.12)
    ax.set_xlim(low, high)
    for i, (label, x) in enumerate(markers.items()):
        off = "" if low <= x <= high else " (off the chart)"
        ax.axvline(
            min(max(x, low), high),
            color=f"C{i % 10}",
            linestyle=_MARKER_STYLES[i % len(_MARKER_STYLES)],
            linewidth=1.5,
            label=f"{label} = {_with_unit(x, unit)}{off}",
            alpha=1.0 if not off else 0.0,
        )
    ax.set_xlim(low, high)
    _money_axis(ax, unit)
    ax.set_xlim(low, high)
    if markers or data.size:  # under the axes: the bars and the tail notes stay uncovered
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize="small", frameon=False
        )
    return _png(ax)


def _money_axis(ax: Axes, unit: str, axis: str = "x") -> None:
    """Dollar tick labels without an offset or exponent (``-$31.2M``, ``$1,200M``).

    As many decimals as the tick spacing needs (call it after the axis limits are final).
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter

    if unit not in ("USD M", "USD"):
        return
    target = ax.xaxis if axis == "x" else ax.yaxis
    ticks = [float(t) for t in (ax.get_xticks() if axis == "x" else ax.get_yticks())]
    steps = [abs(b - a) for a, b in itertools.pairwise(ticks) if b != a]
    step = min(steps) if steps else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    suffix = "M" if unit == "USD M" else ""
    target.set_major_locator(FixedLocator(ticks))  # keep the ticks the decimals were chosen for
    target.set_major_formatter(
        FuncFormatter(lambda v, _pos: f"{'-' if v < 0 else ''}${abs(v):,.{decimals}f}{suffix}")
    )


def tornado_png(bars: Sequence[TornadoBar], *, title: str, base_value: float, xlabel: str) -> bytes:
    """A tornado chart: each input's output range, low input to high input, around the base.

    The largest swing is at the top. Each bar has two halves from the base value: the output
    with the input at its low value and at its high value; the y labels give the input's name
    and its low -> high values.

    Args:
        bars: From :func:`planner.econ.montecarlo.tornado` (sorted by swing, largest first).
        title: Figure title.
        base_value: The output with every input at its median (the vertical line).
        xlabel: x-axis label (the output and its unit); an output in ``(USD)`` is drawn in $M
            (``(USD M)`` as given), with dollar tick labels and no offset.

    Returns:
        PNG bytes.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # Dollars are drawn in $M: raw dollars give a "1e8" offset nobody reads.
    scale, unit = 1.0, _unit(xlabel)
    if unit == "USD":
        scale, unit = 1e6, "USD M"
        xlabel = xlabel[: xlabel.rfind("(")] + "($M)"
    base_value = base_value / scale
    height_in = max(FIGSIZE_IN[1], 1.2 + 0.4 * len(bars))
    ax = _new_axes(title, xlabel, "", height_in=height_in)
    positions = np.arange(len(bars))[::-1]  # first (largest) bar on top
    for y, bar in zip(positions, bars, strict=True):
        halves = [(bar.output_at_low / scale, LOW_COLOR), (bar.output_at_high / scale, HIGH_COLOR)]
        # Longer half first, so a shorter half on the same side of the base stays visible.
        halves.sort(key=lambda half: -abs(half[0] - base_value))
        for out, color in halves:
            ax.barh(y, out - base_value, left=base_value, color=color, height=0.6)
    labels = [f"{b.name} ({_fmt(b.low_value_input)} → {_fmt(b.high_value_input)})" for b in bars]
    ax.set_yticks(positions, labels)
    ax.axvline(base_value, color="black", linewidth=1.0)
    handles = [
        Patch(color=LOW_COLOR, label="input at low value"),
        Patch(color=HIGH_COLOR, label="input at high value"),
        Line2D([], [], color="black", label=f"base = {_with_unit(base_value, unit)}"),
    ]
    ax.legend(handles=handles, loc="best", fontsize="small")
    lo, hi = ax.get_xlim()
    _money_axis(ax, unit)
    ax.set_xlim(lo, hi)
    ax.grid(False, axis="y")
    return _png(ax)


def line_png(
    x: ArrayLike,
    ys: Mapping[str, Sequence[float] | ArrayLike],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    hlines: Mapping[str, float] | None = None,
    flagged: tuple[str, Sequence[float], Sequence[float]] | None = None,
    best: tuple[str, float, float] | None = None,
    xticks: Sequence[float] | ArrayLike | None = None,
    categories: Sequence[str] | None = None,
) -> bytes:
    """Several series against one x axis (e.g. p99 latency in s against racks).

    Args:
        x: x values, shared by every series.
        ys: Series label -> y values (same length as ``x``).
        title: Figure title.
        xlabel: x-axis label, with the unit.
        ylabel: y-axis label, with the unit.
        hlines: Label -> y of a dashed horizontal line (an SLO, with its unit in the label).
        flagged: ``(label, xs, ys)`` of points marked with a red cross (e.g. infeasible).
        best: ``(label, x, y)`` of one point circled (e.g. the best feasible point).
        xticks: x tick positions (e.g. exactly the swept values; default: matplotlib's).
        categories: Names of the x positions when x only numbers categories (fleets, variants):
            the ticks are labelled with them and the points are not joined by lines (nothing
            lies between two categories).

    Returns:
        PNG bytes.

    Raises:
        ValueError: A series differs in length from ``x``.
    """
    xs = np.asarray(x, dtype=np.float64)
    ax = _new_axes(title, xlabel, ylabel)
    for label, y in ys.items():
        values = np.asarray(y, dtype=np.float64)
        if values.shape != xs.shape:
            raise ValueError(f"series {label!r} has {values.shape} values, x has {xs.shape}")
        style = {"linestyle": "none", "markersize": 7} if categories else {"markersize": 3}
        ax.plot(xs, values, marker="o", label=label, **style)
    for i, (label, y) in enumerate((hlines or {}).items()):
        ax.axhline(
            y,
            color="black" if i == 0 else f"C{(i + 3) % 10}",
            linewidth=1.2,
            linestyle=_MARKER_STYLES[i % len(_MARKER_STYLES)],
            label=label,
        )
    if flagged is not None and len(flagged[1]):
        ax.scatter(
            flagged[1], flagged[2], marker="x", s=60, color="tab:red", zorder=3, label=flagged[0]
        )
    if best is not None:
        ax.scatter(
            [best[1]],
            [best[2]],
            s=220,
            facecolors="none",
            edgecolors="tab:green",
            linewidths=2.2,
            zorder=4,
            label=best[0],
        )
    if xticks is None and xs.size and xs.size <= 12 and np.all(xs == np.round(xs)):
        xticks = np.unique(xs)  # integer x (counts, variant numbers): no ticks at 0.25 steps
    if categories is not None:
        ax.set_xticks(xs.tolist(), list(categories))
        ax.set_xlim(float(xs.min()) - 0.5, float(xs.max()) + 0.5)
        if all(np.nanmin(np.asarray(y, dtype=np.float64)) >= 0 for y in ys.values()):
            ax.set_ylim(bottom=0.0)  # side-by-side amounts: compared from zero
    elif xticks is not None:
        ax.set_xticks(np.asarray(xticks, dtype=np.float64).tolist())
    if ys or hlines or flagged or best:
        ax.legend(loc="best", fontsize="small")
    return _png(ax)


def cdf_png(samples: Mapping[str, ArrayLike], *, title: str, xlabel: str) -> bytes:
    """Empirical CDFs of several sample sets (e.g. TTFT in s per fleet option).

    Args:
        samples: Series label -> samples (non-finite values dropped).
        title: Figure title.
        xlabel: x-axis label, with the unit.

    Returns:
        PNG bytes.
    """
    ax = _new_axes(title, xlabel, "cumulative probability")
    _draw_cdfs(ax, samples)
    ax.set_ylim(0.0, 1.0)
    if samples:
        ax.legend(loc="best", fontsize="small")
    return _png(ax)


def _draw_cdfs(ax: Axes, samples: Mapping[str, ArrayLike], max_points: int | None = None) -> None:
    """Step CDFs of ``samples``.

    With ``max_points``, larger sample sets are drawn through that many of their order
    statistics (evenly spaced in rank, so the curve looks the same).
    """
    for label, values in samples.items():
        data = np.sort(np.asarray(values, dtype=np.float64).ravel())
        data = data[np.isfinite(data)]
        if data.size == 0:
            continue
        # Starts at 0 left of the smallest sample, steps up 1/n at each sample.
        if max_points is not None and data.size > max_points:
            ranks = np.unique(np.linspace(0, data.size - 1, max_points).round().astype(np.int64))
            probability = np.concatenate([[0.0], (ranks + 1) / data.size])
            xs = np.concatenate([data[:1], data[ranks]])
        else:
            probability = np.arange(0, data.size + 1) / data.size
            xs = np.concatenate([data[:1], data])
        ax.step(xs, probability, where="post", label=f"{label} (n={data.size})")


def _draw_markers(ax: Axes, markers: Mapping[str, float] | None) -> None:
    for i, (label, x) in enumerate((markers or {}).items()):
        ax.axvline(
            x,
            color="black" if i == 0 else f"C{(i + 3) % 10}",
            linestyle=_MARKER_STYLES[i % len(_MARKER_STYLES)],
            linewidth=1.2,
            label=f"{label} = {_fmt(x)}",
        )


def latency_cdf_png(
    samples: Mapping[str, ArrayLike],
    *,
    title: str,
    xlabel: str,
    markers: Mapping[str, float] | None = None,
    log_x: bool = False,
) -> bytes:
    """Empirical CDFs with labelled vertical lines (e.g. call TTFT in s against its SLO).

    Args:
        samples: Series label -> samples (non-finite values dropped; with ``log_x`` also values
            <= 0, which a log axis cannot show).
        title: Figure title.
        xlabel: x-axis label, with the unit.
        markers: Label -> x position of a vertical line, e.g. ``{"SLO": 10.0}``.
        log_x: Logarithmic x axis (for latencies spanning several decades).

    Returns:
        PNG bytes.
    """
    ax = _new_axes(title, xlabel, "fraction at or below")
    if log_x:
        samples = {k: _positive(v) for k, v in samples.items()}
        ax.set_xscale("log")
    _draw_cdfs(ax, samples, max_points=CDF_MAX_POINTS)
    _draw_markers(ax, markers)
    ax.set_ylim(0.0, 1.0)
    if samples or markers:
        ax.legend(loc="lower right", fontsize="small")
    return _png(ax)


def _positive(values: ArrayLike) -> np.ndarray:
    data = np.asarray(values, dtype=np.float64).ravel()
    return data[data > 0]


def timeline_png(
    t: ArrayLike,
    ys: Mapping[str, Sequence[float] | ArrayLike],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    markers: Mapping[str, float] | None = None,
    ylim: tuple[float, float] | None = None,
) -> bytes:
    """Series over time as plain lines (e.g. utilization per pool against simulated time).

    Args:
        t: Times, shared by every series.
        ys: Series label -> values (same length as ``t``).
        title: Figure title.
        xlabel: x-axis label, with the unit.
        ylabel: y-axis label, with the unit.
        markers: Label -> time of a vertical line (e.g. ``{"last arrival": 160.0}``).
        ylim: y-axis limits (``None``: from the data, starting at 0).

    Returns:
        PNG bytes.

    Raises:
        ValueError: A series differs in length from ``t``.
    """
    ts = np.asarray(t, dtype=np.float64)
    ax = _new_axes(title, xlabel, ylabel)
    for label, y in ys.items():
        values = np.asarray(y, dtype=np.float64)
        if values.shape != ts.shape:
            raise ValueError(f"series {label!r} has {values.shape} values, t has {ts.shape}")
        ax.plot(ts, values, linewidth=1.4, label=label)
    _draw_markers(ax, markers)
    if ylim is not None:
        ax.set_ylim(*ylim)
    else:
        ax.set_ylim(bottom=0.0)
    if ys or markers:
        ax.legend(loc="best", fontsize="small")
    return _png(ax)
