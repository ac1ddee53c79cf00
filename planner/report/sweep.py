"""A sweep's results as a plot and a self-contained HTML page (no file I/O, no Hydra).

The input is the sweep table the CLI's sweep callback builds (``planner.cli.callbacks``): one
row per job, with a ``status`` column (``ok`` or ``failed``), an ``error`` column, one column per
swept key (the override values as given, as text) and one column per metric (flattened summary
keys such as ``trees.e2e_s.p99``).

:func:`assess` decides which points meet the SLOs and which is best; :func:`plot_sweep` draws
the metric with its SLO line, infeasible points crossed and the best circled; :func:`sweep_html`
lays it out on the same page kit as the other reports (:mod:`planner.report.html_parts`).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from planner.app.verdict import ATTAINMENT_TO_PASS, passes
from planner.report.html_parts import (
    Html,
    badge,
    esc,
    figure,
    figures,
    fmt_num,
    fmt_pct,
    fmt_plain,
    fmt_usd,
    page,
    para,
    strong,
)
from planner.report.plots import line_png

STATUS_OK: Final = "ok"
STATUS_FAILED: Final = "failed"


@dataclass(frozen=True)
class SweepPlot:
    """A plot of one metric against a swept key.

    Attributes:
        png: PNG bytes, or None when there is nothing to plot.
        caption: What the plot shows, or why there is none.
    """

    png: bytes | None
    caption: str


SLO_CHECKS: Final = (
    ("trees.e2e_s.p99", "slo.tree_e2e_s", "tree p99"),
    ("calls.ttft_s.p99", "slo.ttft_s", "TTFT p99"),
    ("calls.tpot_s.p99", "slo.tpot_s", "TPOT p99"),
)
"""(p99 column, SLO limit column, name): a point meets the SLOs when every p99 is within its
limit (the limits are the runs' own ``slo`` block, so each point is judged by its own SLOs)."""

HEADLINE_COST: Final = "cost.headline.usd"
"""The run's headline cost (:func:`planner.app.verdict.headline_cost`: per tree for agent
trees, per million tokens processed when prompts dominate, else per million output tokens)."""

COST_COLUMNS: Final = (
    HEADLINE_COST,
    "cost.usd_per_tree",
    "cost.usd_per_million_output_tokens",
    "cost.usd_per_year",
    "cost.capex_usd",
)
"""Cost columns in order of preference: the first present ranks the feasible points."""

ATTAINMENT: Final = "slo.attainment"
STABLE: Final = "stability.stable"
PARTIAL: Final = "partial"
CONSTRAINTS: Final = "constraints_met"
"""Column the callback adds when the sweep has an ``objective`` with constraints."""

FRACTION_WORDS: Final = (
    "attainment",
    "utilization",
    "fraction",
    "prob_",
    "availability",
    "busy",
    "relative_error",
)
"""Metric names holding fractions, shown as percentages."""


@dataclass(frozen=True)
class Assessment:
    """Which points of a sweep meet the SLOs and which one is best.

    Attributes:
        feasible: Per row (table index): True / False, or None where unknown (failed job, or no
            SLO columns to judge by).
        best: Index of the best row, or None.
        answer: One sentence naming the best point and why, with numbers.
        ranked_by: The column the best point was chosen on (None when there is no ranking).
    """

    feasible: dict[Any, bool | None] = field(default_factory=dict)
    best: Any = None
    answer: str = ""
    ranked_by: str | None = None


def _value(row: pd.Series, column: str) -> float | None:
    if column not in row.index:
        return None
    try:
        number = float(row[column])
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _point(row: pd.Series, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in keys if k in row.index) or f"job {row.get('job')}"


def _misses(row: pd.Series) -> list[tuple[str, float, float]]:
    """(name, p99, limit) of every p99 over its SLO."""
    out = []
    for p99, limit, name in SLO_CHECKS:
        value, bound = _value(row, p99), _value(row, limit)
        if value is not None and bound is not None and value > bound:
            out.append((name, value, bound))
    return out


def _judged(row: pd.Series) -> bool:
    has_pair = any(
        _value(row, p) is not None and _value(row, lim) is not None for p, lim, _ in SLO_CHECKS
    )
    flags = [c for c in ("slo.feasible", CONSTRAINTS) if c in row.index and pd.notna(row[c])]
    return has_pair or bool(flags)


def _flag(row: pd.Series, column: str) -> bool | None:
    """A boolean column's value (None when absent or missing)."""
    if column not in row.index or pd.isna(row[column]):
        return None
    return bool(row[column])


def _is_feasible(row: pd.Series) -> bool | None:
    """Whether a point passes, by its own run's verdict where the row carries what it needs.

    With ``slo.attainment`` the rule is the run verdict's (:func:`~planner.app.verdict.
    passes`: attainment, ``stability.stable``, ``partial``) and the objective's constraints;
    rows without it (other commands' summaries) are judged on their p99s against the SLOs,
    ``slo.feasible`` and the constraints.
    """
    if row.get("status") != STATUS_OK:
        return None
    if _flag(row, CONSTRAINTS) is False:
        return False
    attainment = _value(row, ATTAINMENT)
    if ATTAINMENT in row.index:
        return passes(attainment, _flag(row, STABLE), _flag(row, PARTIAL))
    if not _judged(row):
        return None
    if _flag(row, "slo.feasible") is False:
        return False
    return not _misses(row)


def _evidence(row: pd.Series) -> str:
    """The figures behind a verdict: p99s against their SLOs and the attainment."""
    parts = []
    for p99, limit, name in SLO_CHECKS:
        value, bound = _value(row, p99), _value(row, limit)
        if value is not None and bound is not None:
            sign = "≤" if value <= bound else ">"
            parts.append(f"{name} {fmt_num(value, 4)} s {sign} {fmt_plain(bound)} s")
    attainment = _value(row, ATTAINMENT)
    if attainment is not None:
        parts.append(f"SLO attainment {fmt_pct(attainment)} (needs {ATTAINMENT_TO_PASS:.0%})")
    if _flag(row, STABLE) is False:
        parts.append("overloaded")
    if _flag(row, PARTIAL):
        parts.append("partial run")
    return ", ".join(parts)


def _cost_text(column: str, value: float, row: pd.Series | None = None) -> str:
    if column == HEADLINE_COST and row is not None:
        unit = row.get("cost.headline.unit")
        return f"{fmt_usd(value)} {unit if isinstance(unit, str) else '(headline cost)'}"
    names = {
        "cost.usd_per_million_output_tokens": "per million output tokens",
        "cost.usd_per_tree": "per tree",
        "cost.usd_per_year": "per year",
        "cost.capex_usd": "capex",
    }
    name = names.get(column, column)
    return f"{fmt_usd(value)} {name}" if column != "cost.capex_usd" else f"capex {fmt_usd(value)}"


def assess(table: pd.DataFrame, keys: Sequence[str], *, direction: str = "minimize") -> Assessment:
    """Judge every point and pick the best one.

    A point meets the SLOs when its job succeeded and its own run's verdict is PASS (see
    :func:`_is_feasible`), and the objective's constraints (``constraints_met``) hold. The best
    point is the feasible one with the best ``objective`` (by ``direction``), else the cheapest
    by the first column of :data:`COST_COLUMNS` present (the headline cost when every candidate
    states it in the same unit). With
    no feasible point, the answer names the point closest to the SLOs (smallest worst p99 /
    limit ratio).

    Args:
        table: The sweep table.
        keys: The swept keys (to name points).
        direction: ``minimize`` or ``maximize`` (for the ``objective`` column).

    Returns:
        The assessment.
    """
    feasible = {index: _is_feasible(row) for index, row in table.iterrows()}
    ok = [i for i, row in table.iterrows() if row.get("status") == STATUS_OK]
    judged = [i for i in ok if feasible[i] is not None]
    good = [i for i in judged if feasible[i]]
    n = len(table)
    if not ok:
        return Assessment(feasible, None, f"No point succeeded ({n} job(s) failed).")
    candidates = good if judged else ok
    ranked_by = next(
        (c for c in ("objective", *COST_COLUMNS) if _ranks(table, c, candidates)), None
    )
    if judged and not good:
        closest = min(judged, key=lambda i: _worst_ratio(table.loc[i]))
        row = table.loc[closest]
        return Assessment(
            feasible,
            None,
            f"No point meets the SLOs ({len(judged)} judged of {n}); the closest is "
            f"{_point(row, keys)}: {_evidence(row)}.",
            ranked_by,
        )
    if ranked_by is None:
        what = f"{len(good)} of {n} points meet the SLOs" if judged else f"{len(ok)} of {n} ok"
        return Assessment(feasible, None, f"{what}; no cost or objective column to rank them.")
    sign = -1.0 if ranked_by == "objective" and direction == "maximize" else 1.0
    values = {i: _value(table.loc[i], ranked_by) for i in candidates}
    scored = [(sign * v, i) for i, v in values.items() if v is not None]
    best = min(scored, key=lambda pair: pair[0])[1]
    row = table.loc[best]
    value = _value(row, ranked_by)
    assert value is not None
    if ranked_by == "objective":
        price = f"objective {fmt_num(value)}"
        cost = next((c for c in COST_COLUMNS if _value(row, c) is not None), None)
        if cost is not None:
            price += f" ({_cost_text(cost, _value(row, cost) or 0.0, row)})"
    else:
        price = _cost_text(ranked_by, value, row)
    adjective = "best" if ranked_by == "objective" else "cheapest"
    pool = f"{len(good)} of {n} points meeting the SLOs" if judged else f"{len(ok)} of {n} points"
    evidence = _evidence(row)
    return Assessment(
        feasible,
        best,
        f"Best: {_point(row, keys)}, the {adjective} of the {pool}, at {price}"
        + (f"; {evidence}." if evidence else "."),
        ranked_by,
    )


def _ranks(table: pd.DataFrame, column: str, candidates: Sequence[Any]) -> bool:
    """Whether ``column`` can rank ``candidates``.

    Some candidates must have a value; for the headline cost, all of them must state it in one
    unit (a sweep over workloads may mix per-tree and per-token costs).
    """
    if column not in table.columns:
        return False
    if not any(_value(table.loc[i], column) is not None for i in candidates):
        return False
    if column == HEADLINE_COST:
        metrics = {table.loc[i].get("cost.headline.metric") for i in candidates}
        return len(metrics) == 1
    return True


def _worst_ratio(row: pd.Series) -> float:
    ratios = [
        value / bound
        for p99, limit, _ in SLO_CHECKS
        if (value := _value(row, p99)) is not None and (bound := _value(row, limit)) and bound > 0
    ]
    attainment = _value(row, ATTAINMENT)
    return max(ratios, default=2.0 - (attainment if attainment is not None else 0.0))


def slo_limit(table: pd.DataFrame, metric: str) -> float | None:
    """The SLO limit of a plotted p99 column (the same in every job), or None."""
    for p99, limit, _ in SLO_CHECKS:
        if metric == p99 and limit in table.columns:
            values = pd.to_numeric(table[limit], errors="coerce").dropna().unique()
            if len(values) == 1:
                return float(values[0])
    return None


def metric_columns(table: pd.DataFrame, metric: str, exclude: Iterable[str] = ()) -> list[str]:
    """The columns ``metric`` names: itself if it is a column, else those its glob matches.

    Args:
        table: The sweep table.
        metric: A column name or an ``fnmatch`` pattern (``pools.*.utilization``).
        exclude: Columns that are never metrics (the swept keys, status, error).

    Returns:
        Matching column names in table order (empty when none match).
    """
    skip = set(exclude)
    if metric in table.columns and metric not in skip:
        return [metric]
    return [c for c in table.columns if c not in skip and fnmatch.fnmatchcase(str(c), metric)]


def _as_numbers(values: pd.Series) -> np.ndarray | None:
    """``values`` as floats, or None if any non-missing value is not a number."""
    numbers = pd.to_numeric(values, errors="coerce")
    if bool((numbers.isna() & values.notna()).any()):
        return None
    return np.asarray(numbers.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _label(keys: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{k}={'-' if pd.isna(v) else v}" for k, v in zip(keys, values, strict=True))


def _mean_line(
    grid: np.ndarray, xs: np.ndarray, ys: np.ndarray, mask: Sequence[bool]
) -> np.ndarray | None:
    """Mean of the finite ``ys`` of the points in ``mask`` at each ``grid`` value (NaN: none).

    Returns:
        The line, or None when no point in ``mask`` has a finite value.
    """
    position = {value: i for i, value in enumerate(grid)}
    sums = np.zeros(grid.size)
    counts = np.zeros(grid.size)
    for i in range(xs.size):
        if mask[i] and math.isfinite(ys[i]):
            sums[position[xs[i]]] += ys[i]
            counts[position[xs[i]]] += 1
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan) if counts.any() else None


Marks = tuple[tuple[str, list[float], list[float]] | None, tuple[str, float, float] | None]


def _marks(
    ok: pd.DataFrame, columns: list[str], xs: np.ndarray, assessment: Assessment | None
) -> Marks:
    """The crosses (points missing the SLOs) and the circled best point, with one metric."""
    if assessment is None or len(columns) != 1:
        return None, None
    ys_all = _as_numbers(ok[columns[0]])
    if ys_all is None:
        return None, None
    at = dict(zip(ok.index, zip(xs.tolist(), ys_all.tolist(), strict=True), strict=True))
    bad = [at[i] for i in ok.index if assessment.feasible.get(i) is False]
    flagged = ("misses the SLOs", [p[0] for p in bad], [p[1] for p in bad]) if bad else None
    best = ("best point", *at[assessment.best]) if assessment.best in at else None
    return flagged, best


def plot_sweep(
    table: pd.DataFrame,
    *,
    metric: str,
    x: str,
    group_by: Sequence[str] = (),
    exclude: Iterable[str] = (),
    assessment: Assessment | None = None,
) -> SweepPlot:
    """Plot ``metric`` against swept key ``x``, one line per value of the ``group_by`` keys.

    Failed jobs are left out, and so are points the assessment finds infeasible (they are
    drawn as crosses, never as part of a line). Numeric ``x`` values are plotted as numbers;
    otherwise each distinct value gets a position 0, 1, ... in order of first appearance,
    spelled out in the axis label. Jobs sharing the same ``x`` and line are averaged. A line
    with no job at some ``x`` shows a gap there.

    Args:
        table: The sweep table (``status`` column and the named columns).
        metric: A metric column, or a glob matching several (one line family each).
        x: The swept key on the x axis.
        group_by: Swept keys whose value combinations each get a line.
        exclude: Columns never treated as metrics.
        assessment: From :func:`assess`: with one metric column, points that miss the SLOs
            are crossed and the best is circled; a p99 metric gets its SLO line.

    Returns:
        The plot, or a caption saying why there is none.
    """
    group_by = [g for g in group_by if g != x and g in table.columns]
    columns = metric_columns(table, metric, [*exclude, x, *group_by, "status", "error"])
    if not columns:
        return SweepPlot(None, f"no plot: no column matches the metric {metric!r}")
    if x not in table.columns:
        return SweepPlot(None, f"no plot: {x!r} is not a swept key")
    ok = table[table["status"] == STATUS_OK] if "status" in table.columns else table
    ok = ok[ok[x].notna()]
    if ok.empty:
        return SweepPlot(None, "no plot: no job succeeded")
    xs = _as_numbers(ok[x])
    xlabel = x
    if xs is None:  # categorical: positions in order of first appearance
        categories = list(dict.fromkeys(str(v) for v in ok[x]))
        xs = np.array([categories.index(str(v)) for v in ok[x]], dtype=np.float64)
        xlabel = f"{x} (" + ", ".join(f"{i}: {c}" for i, c in enumerate(categories)) + ")"
    grid = np.unique(xs)
    groups = [tuple(row) for row in ok[group_by].itertuples(index=False)] if group_by else None
    # A point that misses the SLOs is drawn as a cross only: on a line it would pull the curve
    # (and the eye) to a cost no feasible fleet reaches.
    infeasible = [assessment is not None and assessment.feasible.get(i) is False for i in ok.index]
    series: dict[str, np.ndarray] = {}
    for column in columns:
        ys = _as_numbers(ok[column])
        if ys is None:
            continue  # text metric: nothing to draw
        keys = list(dict.fromkeys(groups)) if groups is not None else [()]
        for key in keys:
            mask = [
                (groups is None or groups[i] == key) and not infeasible[i] for i in range(xs.size)
            ]
            line = _mean_line(grid, xs, ys, mask)
            if line is None:
                continue
            parts = [column] if len(columns) > 1 or not key else []
            if key:
                parts.append(_label(group_by, key))
            series[" | ".join(parts)] = line
    if not series and not (any(infeasible) and len(columns) == 1):  # crosses alone still tell
        return SweepPlot(None, f"no plot: {metric!r} has no numeric value in a successful job")
    title = f"{metric} vs {x}"
    limit = slo_limit(table, metric)
    hlines = {f"SLO = {fmt_plain(limit)} s": limit} if limit is not None else None
    flagged, best = _marks(ok, columns, xs, assessment)
    png = line_png(
        grid,
        series,
        title=title,
        xlabel=xlabel,
        ylabel=metric + _unit(metric),
        hlines=hlines,
        flagged=flagged,
        best=best,
        xticks=grid if grid.size <= MAX_TICKS else None,
    )
    failed = len(table) - len(ok)
    caption = f"{title} over {len(ok)} successful job(s)"
    if any(infeasible):
        caption += f"; {sum(infeasible)} missing the SLOs drawn as crosses, off the lines"
    if failed:
        caption += f"; {failed} job(s) without a value left out"
    return SweepPlot(png, caption)


MAX_TICKS: Final = 12
"""Up to this many swept values, each gets its own x tick (no 1.5 racks between 1 and 2)."""


def _unit(metric: str) -> str:
    """The unit a flattened key implies, for axis labels: `` (s)``, `` ($)``, `` (fraction)``."""
    if "usd" in metric:
        return " ($)"
    if _is_fraction(metric):
        return " (fraction)"
    if "_s." in metric or metric.endswith("_s"):
        return " (s)"
    if metric.endswith("_kw") or "_kw." in metric:
        return " (kW)"
    return ""


def _is_fraction(column: str) -> bool:
    return any(word in column for word in FRACTION_WORDS)


def _cell(column: str, value: Any) -> str:
    """A table cell: dollars as $ (millions as $M), fractions as %, other numbers to 3 figures."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        if "usd" in column:
            return fmt_usd(number)
        if _is_fraction(column) and not isinstance(value, int | np.integer):
            return fmt_pct(number)
        return fmt_num(value.item() if isinstance(value, np.generic) else value)
    return str(value)


def column_order(table: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """Columns of the page's table, the decision columns first.

    Swept keys, status, the decision columns (feasible, SLO attainment, objective, cost, p99s),
    then the rest; SLO limits (constant, stated in the answer box) and ``job`` / ``error`` /
    ``job_dir`` last.
    """
    first = [k for k in keys if k in table.columns] + ["status"]
    decision = [ATTAINMENT, "objective", *COST_COLUMNS, *(c for c, _, _ in SLO_CHECKS)]
    first += [c for c in decision if c in table.columns]
    tail = ["job", "error", "job_dir"]
    limits = [lim for _, lim, _ in SLO_CHECKS]
    rest = [c for c in table.columns if c not in first and c not in tail and c not in limits]
    return first + rest + [c for c in tail if c in table.columns]


def _slo_line(table: pd.DataFrame) -> str:
    parts = []
    for _, limit, name in SLO_CHECKS:
        if limit in table.columns:
            values = pd.to_numeric(table[limit], errors="coerce").dropna().unique()
            if len(values) == 1:
                parts.append(f"{name.replace(' p99', '')} p99 ≤ {fmt_plain(values[0])} s")
    if parts and ATTAINMENT in table.columns:
        parts.append(f"a point passes when {ATTAINMENT_TO_PASS:.0%} of its trees meet them")
    return "SLOs: " + ", ".join(parts) + "." if parts else ""


def sweep_html(
    table: pd.DataFrame,
    *,
    title: str,
    plot: SweepPlot | None = None,
    notes: Sequence[str] = (),
    keys: Sequence[str] | None = None,
    assessment: Assessment | None = None,
    sections: Sequence[tuple[str, str, Html]] = (),
) -> str:
    """A self-contained page on the report kit: the answer, the chart, then one row per job.

    No scripts and no network resources: the page opens offline and can be mailed as it is.
    The table leads with the swept keys and the decision columns; failed jobs' rows are shaded,
    points that miss the SLOs marked and the best highlighted. Every value is HTML-escaped.

    Args:
        table: The sweep table (one row per job).
        title: Page heading.
        plot: From :func:`plot_sweep` (its caption is shown even without an image).
        notes: Extra lines (e.g. the sweep directory, the best trial).
        keys: The swept keys (default: the columns before ``status``, ``job`` excepted).
        assessment: From :func:`assess` (default: assessed here).
        sections: Extra ``(anchor, heading, body)`` sections shown before the points (e.g. the
            ``planner-roofline`` comparison).

    Returns:
        The page as text.
    """
    columns = list(table.columns)
    if keys is None:
        keys = columns[: columns.index("status")] if "status" in columns else []
        keys = [k for k in keys if k != "job"]
    if assessment is None:
        assessment = assess(table, keys)
    statuses = table["status"] if "status" in table.columns else pd.Series(dtype=object)
    n_ok = int((statuses == STATUS_OK).sum())
    n_failed = len(table) - n_ok
    judged = [v for v in assessment.feasible.values() if v is not None]
    counts = f"{len(table)} job(s): {n_ok} ok, {n_failed} failed"
    if judged:
        counts += f"; {sum(judged)} of {len(judged)} meet the SLOs"
    answer = [para("Answer", cls="label"), para(strong(assessment.answer))]
    slo_text = _slo_line(table)
    answer.append(para(counts + (f". {slo_text}" if slo_text else "."), cls="why"))
    body = Html("")
    if plot is not None:
        if plot.png is not None:
            body += figures([figure(plot.png, plot.caption)])
        else:
            body += para(plot.caption, cls="note")
    order = column_order(table, keys)
    show_feasible = bool(judged)
    head = []
    for i, c in enumerate(order):
        name = Html(esc(c).replace(".", ".<wbr>"))  # long dotted keys wrap at the dots
        head.append(f'<th scope="col"{" class=num" if i >= len(keys) + 1 else ""}>{name}</th>')
        if c == "status" and show_feasible:
            head.append('<th scope="col">meets SLOs</th>')
    rows = []
    for index, row in table.iterrows():
        status = row.get("status", "")
        feasible = assessment.feasible.get(index)
        css = (
            "failed"
            if status == STATUS_FAILED
            else "best"
            if index == assessment.best
            else "infeasible"
            if feasible is False
            else ""
        )
        cells = []
        for c in order:
            value = row[c]
            numeric = isinstance(value, int | float | np.number) and not isinstance(value, bool)
            cls = " class=num" if numeric else ""
            text = esc(_cell(c, value))
            if c == "status" and index == assessment.best:
                text = Html(f"{text} {badge('best', True)}")
            cells.append(f"<td{cls}>{text}</td>")
            if c == "status" and show_feasible:
                verdict = (
                    badge("yes", True)
                    if feasible
                    else badge("no", False)
                    if feasible is False
                    else Html("")
                )
                cells.append(f"<td>{verdict}</td>")
        attribute = f' class="{css}"' if css else ""
        rows.append(f"<tr{attribute}>{''.join(cells)}</tr>")
    body += Html(
        f'<div class="tw"><table><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    body += para(
        "A point meets the SLOs when its job succeeded and each p99 (tree end-to-end, TTFT, "
        "TPOT) is within the run's own limit (and the objective's constraints hold, if any). "
        "Green: the best point; amber text: misses the SLOs; red: the job failed. Dollars in $, "
        "millions as $ M; fractions in %.",
        cls="note",
    )
    details = Html("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    sections = [*sections, ("points", "Points", body)]
    if notes:
        sections.append(("sweep", "Sweep", details))
    return page(title, counts, answer, sections, "Generated by planner.")
