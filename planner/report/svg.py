"""Inline SVG charts for the HTML reports: lines, steps, CDFs and tail (CCDF) views.

Why not matplotlib here: a run's report draws eight charts, and matplotlib needs 0.4-1 s to
import and 60-110 ms to draw each figure (measured on the 2-core CI machine: tight layout, log
axes and PNG encoding dominate), against a budget of 0.5 s for the whole report. These charts
are simple (a few polylines, reference lines, ticks), so they are written as SVG markup directly:
a few milliseconds each, sharp at every zoom, and still one self-contained page (no scripts, no
fonts, no network). The ROI and study charts (histograms, tornado bars) stay matplotlib PNGs
(:mod:`planner.report.plots`).

Pure functions: every chart is returned as :class:`~planner.report.html_parts.Html` markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner.report.html_parts import Html, esc

#: Chart size in SVG user units (pixels at 100% zoom); the page scales it to its column.
WIDTH: Final = 600
HEIGHT: Final = 330
#: Plot-area margins: left (y tick labels and y label), right, top (title), bottom (x ticks, label).
MARGIN_LEFT: Final = 66
MARGIN_RIGHT: Final = 18
MARGIN_TOP: Final = 34
MARGIN_BOTTOM: Final = 50
LEGEND_ROW: Final = 19
#: Approximate width of one character of 13 px sans-serif text, for laying out the legend.
CHAR_W: Final = 7.0

#: Series colours (matplotlib's tab10, so SVG and PNG charts of one page match).
COLORS: Final = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: Most points of one ECDF / CCDF curve (evenly spaced in rank; a million calls look the same).
ECDF_MAX_POINTS: Final = 1500


@dataclass(frozen=True)
class Series:
    """One curve.

    Attributes:
        label: Legend text (with its unit or count).
        x: x values.
        y: y values (same length; non-finite values break the line).
        step: Draw as a post-step function (empirical distributions).
        markers: Draw a dot at each point (sparse series such as sweep points).
    """

    label: str
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    step: bool = False
    markers: bool = False


@dataclass(frozen=True)
class RefLine:
    """A labelled reference line across the plot (an SLO, the last arrival, the p99 level).

    Attributes:
        label: Legend text, with the value and unit (``SLO = 120 s``).
        value: Position on its axis.
        axis: ``"x"`` (a vertical line) or ``"y"`` (a horizontal one).
        color: Stroke colour.
    """

    label: str
    value: float
    axis: str = "x"
    color: str = "#000000"


def _num(value: float) -> str:
    """A coordinate with one decimal (enough at this size, and keeps the markup short)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def tick_label(value: float) -> str:
    """A tick value: thousands separated, no exponent below 1e15, trailing zeros dropped."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e4:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    decimals = min(12, max(2, 1 - math.floor(math.log10(magnitude)) + 1))
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")


def linear_ticks(low: float, high: float, target: int = 6) -> tuple[float, float, list[float]]:
    """'Nice' ticks (1, 2, 2.5, 5 x 10^k steps) covering [low, high]: (low', high', ticks)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    if high <= low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(1, target - 1)
    exponent = math.floor(math.log10(raw))
    step = next(m * 10.0**exponent for m in (1, 2, 2.5, 5, 10) if m * 10.0**exponent >= raw)
    start, stop = math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step
    count = round((stop - start) / step)
    ticks = [round(start + i * step, 12) for i in range(count + 1)]
    return start, stop, ticks


def log_ticks(low: float, high: float) -> tuple[float, float, list[float]]:
    """Decade ticks covering [low, high] (> 0), with 2 and 5 added when under three decades."""
    low = max(low, 1e-300)
    high = max(high, low * 10)
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    decades = [10.0**k for k in range(first, last + 1)]
    ticks = decades
    if last - first < 3:
        ticks = sorted({d * m for d in decades[:-1] for m in (1, 2, 5)} | {decades[-1]})
    # Trim to the data (one tick beyond each end) so a 2-decade span is not padded to 4.
    lo_tick = max((t for t in ticks if t <= low), default=ticks[0])
    hi_tick = min((t for t in ticks if t >= high), default=ticks[-1])
    ticks = [t for t in ticks if lo_tick <= t <= hi_tick]
    return lo_tick, hi_tick, ticks


class _Scale:
    """Maps data values to pixels along one axis (linear or log10)."""

    def __init__(self, low: float, high: float, start_px: float, end_px: float, log: bool):
        self.log = log
        self.t0 = math.log10(low) if log else low
        self.t1 = math.log10(high) if log else high
        self.start, self.end = start_px, end_px

    def __call__(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.log10(values) if self.log else values
        fraction = (t - self.t0) / ((self.t1 - self.t0) or 1.0)
        # Clamp just outside the plot area: an off-scale point draws on the frame, not away.
        fraction = np.clip(fraction, -0.01, 1.01)
        return np.asarray(self.start + fraction * (self.end - self.start), dtype=np.float64)


def _path(xs: NDArray[np.float64], ys: NDArray[np.float64]) -> str:
    """SVG path data through the points, broken where a coordinate is not finite."""
    parts: list[str] = []
    pen_down = False
    for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
        if not (math.isfinite(x) and math.isfinite(y)):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{_num(x)} {_num(y)}")
        pen_down = True
    return "".join(parts)


def _domain(
    arrays: Sequence[NDArray[np.float64]], log: bool, fixed: tuple[float, float] | None
) -> tuple[float, float, list[float]]:
    if fixed is not None:
        low, high = fixed
        if log:
            return log_ticks(low, high)
        _, _, ticks = linear_ticks(low, high)
        return low, high, [t for t in ticks if low - 1e-9 <= t <= high + 1e-9]
    values = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.zeros(0)
    if log:
        values = values[values > 0]
    if values.size == 0:
        return log_ticks(1.0, 10.0) if log else linear_ticks(0.0, 1.0)
    low, high = float(values.min()), float(values.max())
    return log_ticks(low, high) if log else linear_ticks(low, high)


def _legend(entries: list[tuple[str, str, str]], top: float) -> tuple[list[str], float]:
    """Legend rows under the plot: (label, colour, dash) each; returns markup and its height."""
    out: list[str] = []
    x, y = float(MARGIN_LEFT), top
    for label, color, dash in entries:
        width = 30 + CHAR_W * len(label) + 18
        if x + width > WIDTH - MARGIN_RIGHT and x > MARGIN_LEFT:
            x, y = float(MARGIN_LEFT), y + LEGEND_ROW
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{_num(x)}" y1="{_num(y - 4)}" x2="{_num(x + 24)}" y2="{_num(y - 4)}" '
            f'stroke="{color}" stroke-width="2"{dash_attr}/>'
            f'<text x="{_num(x + 30)}" y="{_num(y)}">{esc(label)}</text>'
        )
        x += width
    return out, (y - top + LEGEND_ROW) if entries else 0.0


def chart(
    series: Sequence[Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    x_log: bool = False,
    y_log: bool = False,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    ref_lines: Sequence[RefLine] = (),
    y_percent: bool = False,
) -> Html:
    """An SVG line chart with axes, grid, reference lines and a legend under the plot.

    Args:
        series: The curves, drawn in order with the tab10 colours.
        title: Chart title.
        xlabel: x-axis label, with the unit.
        ylabel: y-axis label, with the unit.
        x_log: Logarithmic x axis (values <= 0 are left out).
        y_log: Logarithmic y axis (values <= 0 are left out).
        xlim: Fixed x range (default: from the data and reference lines, to nice ticks).
        ylim: Fixed y range (default: likewise).
        ref_lines: Labelled reference lines, dashed, listed in the legend after the series.
        y_percent: y values are fractions, labelled as percentages.

    Returns:
        The ``<svg>`` element.
    """
    xs_all = [s.x for s in series] + [np.array([r.value]) for r in ref_lines if r.axis == "x"]
    ys_all = [s.y for s in series] + [np.array([r.value]) for r in ref_lines if r.axis == "y"]
    x0, x1, x_ticks = _domain(xs_all, x_log, xlim)
    y0, y1, y_ticks = _domain(ys_all, y_log, ylim)
    entries = [(s.label, COLORS[i % len(COLORS)], "") for i, s in enumerate(series)]
    ref_styles = [("6 4", "#000000"), ("2 3", "#d62728"), ("8 3 2 3", "#555555")]
    refs = []
    for i, ref in enumerate(ref_lines):
        dash, default = ref_styles[i % len(ref_styles)]
        color = ref.color if ref.color != "#000000" else default
        refs.append((ref, dash, color))
        entries.append((ref.label, color, dash))
    plot_bottom = HEIGHT - MARGIN_BOTTOM
    legend, legend_h = _legend(entries, HEIGHT + 6)
    height = HEIGHT + legend_h + 4
    sx = _Scale(x0, x1, MARGIN_LEFT, WIDTH - MARGIN_RIGHT, x_log)
    sy = _Scale(y0, y1, plot_bottom, MARGIN_TOP, y_log)
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} '
        f'{_num(height)}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>',
        f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{WIDTH - MARGIN_LEFT - MARGIN_RIGHT}" '
        f'height="{plot_bottom - MARGIN_TOP}" fill="#ffffff" stroke="#8c959f"/>',
    ]
    fmt_y = (lambda v: f"{v * 100:g}%") if y_percent else tick_label
    for tick, px in zip(x_ticks, sx(np.array(x_ticks, dtype=np.float64)).tolist(), strict=True):
        out.append(
            f'<line class="grid" x1="{_num(px)}" y1="{MARGIN_TOP}" x2="{_num(px)}" '
            f'y2="{plot_bottom}"/><text x="{_num(px)}" y="{plot_bottom + 16}" '
            f'text-anchor="middle">{esc(tick_label(tick))}</text>'
        )
    for tick, py in zip(y_ticks, sy(np.array(y_ticks, dtype=np.float64)).tolist(), strict=True):
        out.append(
            f'<line class="grid" x1="{MARGIN_LEFT}" y1="{_num(py)}" x2="{WIDTH - MARGIN_RIGHT}" '
            f'y2="{_num(py)}"/><text x="{MARGIN_LEFT - 6}" y="{_num(py + 4)}" '
            f'text-anchor="end">{esc(fmt_y(tick))}</text>'
        )
    for i, s in enumerate(series):
        x, y = np.asarray(s.x, dtype=np.float64), np.asarray(s.y, dtype=np.float64)
        if s.step and x.size > 1:  # post-step: hold each y until the next x
            x = np.repeat(x, 2)[1:]
            y = np.repeat(y, 2)[:-1]
        keep = np.ones(x.size, dtype=bool)
        if x_log:
            keep &= x > 0
        if y_log:
            keep &= y > 0
        x, y = np.where(keep, x, np.nan), np.where(keep, y, np.nan)
        color = COLORS[i % len(COLORS)]
        px, py = sx(x), sy(y)
        out.append(
            f'<path d="{_path(px, py)}" fill="none" stroke="{color}" stroke-width="1.8" '
            'stroke-linejoin="round"/>'
        )
        if s.markers:
            out += [
                f'<circle cx="{_num(a)}" cy="{_num(b)}" r="3" fill="{color}"/>'
                for a, b in zip(px.tolist(), py.tolist(), strict=True)
                if math.isfinite(a) and math.isfinite(b)
            ]
    for ref, dash, color in refs:
        if ref.axis == "x":
            p = float(sx(np.array([ref.value]))[0])
            coords = f'x1="{_num(p)}" y1="{MARGIN_TOP}" x2="{_num(p)}" y2="{plot_bottom}"'
        else:
            p = float(sy(np.array([ref.value]))[0])
            right = WIDTH - MARGIN_RIGHT
            coords = f'x1="{MARGIN_LEFT}" y1="{_num(p)}" x2="{right}" y2="{_num(p)}"'
        out.append(
            f'<line {coords} stroke="{color}" stroke-width="1.5" stroke-dasharray="{dash}"/>'
        )
    mid_x = (MARGIN_LEFT + WIDTH - MARGIN_RIGHT) / 2
    mid_y = (MARGIN_TOP + plot_bottom) / 2
    out.append(
        f'<text class="title" x="{_num(mid_x)}" y="20" text-anchor="middle">{esc(title)}</text>'
        f'<text x="{_num(mid_x)}" y="{plot_bottom + 36}" text-anchor="middle">{esc(xlabel)}</text>'
        f'<text x="16" y="{_num(mid_y)}" text-anchor="middle" '
        f'transform="rotate(-90 16 {_num(mid_y)})">{esc(ylabel)}</text>'
    )
    out += legend
    out.append("</svg>")
    return Html("".join(out))


def ecdf(
    values: ArrayLike, max_points: int = ECDF_MAX_POINTS
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The empirical CDF as step points (x, F(x)), F stepping up 1/n at each finite sample.

    Larger sample sets are drawn through ``max_points`` of their order statistics (evenly
    spaced in rank, always keeping the largest), so the curve looks the same.
    """
    data = np.sort(np.asarray(values, dtype=np.float64).ravel())
    data = data[np.isfinite(data)]
    n = data.size
    if n == 0:
        return np.zeros(0), np.zeros(0)
    ranks = np.arange(n)
    if n > max_points:
        ranks = np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))
    xs = np.concatenate([data[:1], data[ranks]])
    return xs, np.concatenate([[0.0], (ranks + 1) / n])


def ccdf(
    values: ArrayLike, max_points: int = ECDF_MAX_POINTS
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The tail (complementary CDF) as step points (x, P(X > x)), without its final zero.

    Kept in full for the top ``max_points / 2`` samples (the tail is what the view is for), thinned
    evenly in rank below that.
    """
    data = np.sort(np.asarray(values, dtype=np.float64).ravel())
    data = data[np.isfinite(data)]
    n = data.size
    if n == 0:
        return np.zeros(0), np.zeros(0)
    ranks = np.arange(n)
    if n > max_points:
        tail = max_points // 2
        body = np.linspace(0, n - tail - 1, max_points - tail).round().astype(np.int64)
        ranks = np.unique(np.concatenate([body, np.arange(n - tail, n)]))
    survival = (n - 1 - ranks) / n
    keep = survival > 0
    return data[ranks][keep], survival[keep]


def cdf_chart(
    samples: Mapping[str, ArrayLike],
    *,
    title: str,
    xlabel: str,
    markers: Mapping[str, float] | None = None,
    x_log: bool = False,
) -> Html:
    """Empirical CDFs (y: fraction at or below x, in %) with vertical reference lines."""
    series = []
    for label, values in samples.items():
        data = np.asarray(values, dtype=np.float64).ravel()
        data = data[np.isfinite(data) & ((data > 0) if x_log else True)]
        x, y = ecdf(data)
        series.append(Series(f"{label} (n={data.size:,})", x, y, step=True))
    refs = [RefLine(k, v) for k, v in (markers or {}).items()]
    return chart(
        series,
        title=title,
        xlabel=xlabel,
        ylabel="fraction at or below",
        x_log=x_log,
        ylim=(0.0, 1.0),
        ref_lines=refs,
        y_percent=True,
    )


def tail_chart(
    samples: Mapping[str, ArrayLike],
    *,
    title: str,
    xlabel: str,
    markers: Mapping[str, float] | None = None,
) -> Html:
    """Tail view: P(latency > x) on log-log axes, with the p99 and p99.9 levels drawn.

    Where a curve crosses the 1% line is its p99; how steeply it falls beyond tells how heavy the
    tail is. The y axis reaches down to one sample in the largest set (1/n).
    """
    series = []
    smallest = 1.0
    for label, values in samples.items():
        data = np.asarray(values, dtype=np.float64).ravel()
        data = data[np.isfinite(data) & (data > 0)]
        if data.size == 0:
            continue
        x, y = ccdf(data)
        smallest = min(smallest, 1.0 / data.size)
        series.append(Series(f"{label} (n={data.size:,})", x, y, step=True))
    refs = [RefLine(k, v) for k, v in (markers or {}).items()]
    refs.append(RefLine("p99 level (1% slower)", 0.01, axis="y", color="#8c959f"))
    if smallest < 0.001:
        refs.append(RefLine("p99.9 level (0.1% slower)", 0.001, axis="y", color="#bbbbbb"))
    floor = 10.0 ** math.floor(math.log10(min(smallest, 0.01)))
    return chart(
        series,
        title=title,
        xlabel=xlabel,
        ylabel="fraction slower than x (log)",
        x_log=True,
        y_log=True,
        ylim=(floor, 1.0),
        ref_lines=refs,
        y_percent=True,
    )


def timeline_chart(
    t: ArrayLike,
    ys: Mapping[str, ArrayLike],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    markers: Mapping[str, float] | None = None,
    ylim: tuple[float, float] | None = None,
    y_percent: bool = False,
) -> Html:
    """Series over time as plain lines (utilization or power per pool against simulated time).

    Args:
        t: Times, shared by every series.
        ys: Series label (with unit) -> values, same length as ``t``.
        title: Chart title.
        xlabel: x-axis label, with the unit.
        ylabel: y-axis label, with the unit.
        markers: Label -> time of a vertical line (e.g. the last arrival).
        ylim: y range (default: from 0 to the data's nice top).
        y_percent: Values are fractions, labelled as percentages.

    Raises:
        ValueError: A series differs in length from ``t``.
    """
    ts = np.asarray(t, dtype=np.float64)
    series = []
    for label, values in ys.items():
        y = np.asarray(values, dtype=np.float64)
        if y.shape != ts.shape:
            raise ValueError(f"series {label!r} has {y.shape} values, t has {ts.shape}")
        series.append(Series(label, ts, y))
    if ylim is None:
        finite = [s.y[np.isfinite(s.y)] for s in series]
        top = max((float(v.max()) for v in finite if v.size), default=1.0)
        ylim = (0.0, linear_ticks(0.0, top if top > 0 else 1.0)[1])
    refs = [RefLine(k, v) for k, v in (markers or {}).items()]
    return chart(
        series,
        title=title,
        xlabel=xlabel,
        ylabel=ylabel,
        ylim=ylim,
        ref_lines=refs,
        y_percent=y_percent,
    )
