"""The ``planner-size`` report: the answer with its margin, a p99-against-racks chart, the options.

Built from the study's ``summary.json`` layout (README, ``planner-size``): per option the chosen
fleet and the one a rack unit smaller with their p99s and confidence intervals, every candidate
simulated, power and floor space, the model and stack. :func:`p99_chart_png` draws
``sizing.png`` (one panel per SLO: each option's p99 against its total racks, the interval as
error bars, the SLO as a dashed line, the chosen fleet circled); :func:`size_report` embeds it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from planner.report.html_parts import (
    MISSING,
    Html,
    badge,
    figure,
    figures,
    fmt_num,
    fmt_plain,
    fmt_usd,
    get,
    key_values,
    page,
    para,
    strong,
    table,
)
from planner.report.notes import calibration_notes

if TYPE_CHECKING:
    from rich.table import Table

PANELS = (
    ("tree_e2e_s", "tree_e2e_p99_s", "p99 tree end-to-end (s)"),
    ("ttft_s", "ttft_p99_s", "p99 TTFT (s)"),
    ("tpot_s", "tpot_p99_s", "p99 TPOT (s)"),
)
"""Per panel: the p99 figure, its SLO key and the axis label (with unit)."""

CAPTION = (
    "p99 against racks per option: points are the mean p99 over the replications, bars its "
    "confidence interval, the dashed line the SLO; the chosen fleet is circled"
)


def _points(option: Mapping[str, Any], metric: str) -> list[tuple[float, float, float, float]]:
    """``(racks, mean p99, low, high)`` of each candidate with a finite p99, by racks."""
    out = []
    for candidate in option.get("candidates") or []:
        mean = get(candidate, "p99", metric)
        if mean is None:
            continue
        interval = get(candidate, "p99_ci", metric) or [mean, mean]
        low, high = (mean if v is None else v for v in interval)
        out.append((float(candidate["racks_total"]), float(mean), float(low), float(high)))
    return sorted(out)


def p99_chart_png(summary: Mapping[str, Any]) -> bytes:
    """``sizing.png``: each option's p99s against its total racks, one panel per SLO.

    Candidates whose replications left calls unfinished (infinite p99) are left out; the chosen
    fleet of each feasible option is circled. Log-scaled y axes: p99s fall by orders of
    magnitude from an overloaded fleet to an idle one.

    Returns:
        PNG bytes (no varying metadata: the same summary gives the same bytes).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _pos: f"{value:g}")

    slo = summary.get("slo") or {}
    options = summary.get("options") or {}
    fig = Figure(figsize=(12.0, 4.0), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(PANELS))
    for ax, (metric, slo_key, label) in zip(axes, PANELS, strict=True):
        for i, (name, option) in enumerate(options.items()):
            points = _points(option, metric)
            if not points:
                continue
            xs, ys, lows, highs = (list(v) for v in zip(*points, strict=True))
            errors = [
                [y - lo for y, lo in zip(ys, lows, strict=True)],
                [hi - y for y, hi in zip(ys, highs, strict=True)],
            ]
            ax.errorbar(
                xs, ys, yerr=errors, marker="o", markersize=3, capsize=3, color=f"C{i}", label=name
            )
            chosen = get(option, "p99", metric)
            if option.get("feasible") and chosen is not None:
                ax.scatter(
                    [option["racks_total"]],
                    [chosen],
                    s=160,
                    facecolors="none",
                    edgecolors=f"C{i}",
                    linewidths=2.0,
                    zorder=4,
                )
        if isinstance(slo.get(slo_key), (int, float)):
            ax.axhline(
                slo[slo_key],
                color="black",
                linestyle="--",
                linewidth=1.2,
                label=f"SLO {slo[slo_key]:g} s",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("racks (total, log scale)")
        ax.set_ylabel(label)
        ax.xaxis.set_major_formatter(plain)
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(
        f"planner-size: p99 against racks at {fmt_plain(summary.get('demand_trees_per_s'))} trees/s"
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _per_pool(values: Any) -> str:
    """``{"prefill": 1, "decode": 16}`` as ``prefill 1, decode 16``."""
    if not isinstance(values, Mapping) or not values:
        return MISSING
    return ", ".join(
        f"{pool} {value if isinstance(value, str) else fmt_num(value)}"
        for pool, value in values.items()
    )


def _p99(check: Any, metric: str) -> str:
    """A p99 with its interval: ``12.3 s [11.8, 12.9]``, or ``unfinished calls``."""
    mean = get(check, "p99", metric)
    if mean is None:
        return "unfinished calls" if isinstance(check, Mapping) else MISSING
    interval = get(check, "p99_ci", metric)
    text = f"{fmt_num(mean)} s"
    if interval:
        low, high = (MISSING if v is None else fmt_num(v) for v in interval)
        text += f" [{low}, {high}]"
    return text


def _below(option: Mapping[str, Any]) -> str:
    """The fleets a rack unit smaller: racks and the p99 upper bounds that miss."""
    below = option.get("below") or {}
    if not below:
        return "none (one unit per pool)" if option.get("feasible") else MISSING
    parts = []
    for pool, check in below.items():
        racks = get(check, "racks", pool)
        verdict = "meets" if check.get("meets_slo") else "misses"
        parts.append(
            f"{pool} {fmt_num(racks)}: tree {_p99(check, 'tree_e2e_s')}, TTFT "
            f"{_p99(check, 'ttft_s')}, TPOT {_p99(check, 'tpot_s')} ({verdict})"
        )
    return "; ".join(parts)


OPTION_ROWS: tuple[tuple[str, Any], ...] = (
    (
        "status",
        lambda o: badge(
            "meets the SLOs" if o.get("feasible") else "infeasible", bool(o.get("feasible"))
        ),
    ),
    ("model", lambda o: o.get("model") or MISSING),
    ("hardware", lambda o: _per_pool(o.get("hardware"))),
    ("serving stack", lambda o: _per_pool(o.get("stack"))),
    ("racks", lambda o: _per_pool(o.get("racks"))),
    ("floor space (racks)", lambda o: fmt_num(o.get("floor_space_racks"))),
    ("p99 tree end-to-end, CI", lambda o: _p99(o, "tree_e2e_s")),
    ("p99 TTFT, CI", lambda o: _p99(o, "ttft_s")),
    ("p99 TPOT, CI", lambda o: _p99(o, "tpot_s")),
    ("one rack unit fewer", _below),
    ("analytic estimate (racks)", lambda o: _per_pool(o.get("analytic_racks"))),
    ("accelerators", lambda o: fmt_num(o.get("accelerators"))),
    ("IT power at demand (MW)", lambda o: fmt_num(o.get("power_mw"))),
    ("IT power at full load (MW)", lambda o: fmt_num(o.get("power_mw_peak"))),
    ("facility power at full load (MW)", lambda o: fmt_num(o.get("facility_power_mw_peak"))),
    ("capex", lambda o: fmt_usd(o.get("capex_usd"))),
    ("opex per year", lambda o: fmt_usd(o.get("opex_usd_per_year"))),
    ("cost per year", lambda o: fmt_usd(o.get("usd_per_year"))),
    ("$ per million output tokens", lambda o: fmt_usd(o.get("usd_per_million_output_tokens"))),
    ("candidates simulated", lambda o: fmt_num(o.get("simulations"))),
)
"""Rows of the options table: label, and the cell of one option's summary entry."""


def _candidates(options: Mapping[str, Any]) -> Html:
    """Every candidate simulated per option: racks, p99s with intervals, pass or fail."""
    rows = []
    for name, option in options.items():
        for c in option.get("candidates") or []:
            rows.append(
                (
                    name,
                    _per_pool(c.get("racks")),
                    _p99(c, "tree_e2e_s"),
                    _p99(c, "ttft_s"),
                    _p99(c, "tpot_s"),
                    badge("meets", True) if c.get("meets_slo") else badge("misses", False),
                )
            )
    return table(
        ["option", "racks", "p99 tree", "p99 TTFT", "p99 TPOT", "SLOs"], rows, numeric_from=2
    )


def size_report(
    summary: Mapping[str, Any],
    chart_png: bytes | None = None,
    *,
    run_info: Mapping[str, str] | None = None,
) -> str:
    """The report of a ``planner-size`` run: answer, chart, options side by side, candidates.

    Args:
        summary: The run's summary (``planner-size`` layout).
        chart_png: ``sizing.png`` (:func:`p99_chart_png`); ``None``: no chart section.
        run_info: Extra lines for the question table (e.g. the config groups chosen).

    Returns:
        The HTML document.
    """
    slo = summary.get("slo") or {}
    options = summary.get("options") or {}
    demand = summary.get("demand_trees_per_s")
    question = (
        f"the fewest racks serving {fmt_plain(demand)} trees/s with p99 tree latency ≤ "
        f"{fmt_plain(slo.get('tree_e2e_p99_s'))} s, p99 TTFT ≤ "
        f"{fmt_plain(slo.get('ttft_p99_s'))} s and p99 TPOT ≤ {fmt_plain(slo.get('tpot_p99_s'))} s"
    )
    answer = [para("Answer", cls="label"), para(strong(summary.get("answer") or MISSING))]
    for option, entry in options.items():
        notes = calibration_notes(entry.get("pools") if isinstance(entry, Mapping) else None)
        answer.extend(para(f"{option}/{note}", cls="note") for note in notes)
    answer.append(para(f"Question: {question}."))
    replications = summary.get("replications")
    confidence = summary.get("confidence")
    level = (
        f"{confidence:.0%}"
        if isinstance(confidence, float) and math.isfinite(confidence)
        else MISSING
    )
    question_table = key_values(
        [
            ("demand", f"{fmt_plain(demand)} trees/s"),
            ("p99 tree end-to-end SLO", f"{fmt_plain(slo.get('tree_e2e_p99_s'))} s"),
            ("p99 TTFT SLO", f"{fmt_plain(slo.get('ttft_p99_s'))} s"),
            ("p99 TPOT SLO", f"{fmt_plain(slo.get('tpot_p99_s'))} s"),
            ("replications per candidate", fmt_num(replications)),
            ("confidence level of the intervals", level),
            ("seed", fmt_num(summary.get("seed"))),
            *(run_info or {}).items(),
        ]
    )
    rows = [(label, *(cell(o) for o in options.values())) for label, cell in OPTION_ROWS]
    options_body = table(["", *options], rows) + para(
        f"Each candidate fleet is simulated {fmt_num(replications)} times with independent seeds "
        "(the same seeds for every candidate); a fleet meets the SLOs when the upper end of the "
        f"{level} confidence interval of each p99 (Student t over the replications' p99s, "
        "warm-up trees excluded) is within its SLO. Power at full load counts every "
        "accelerator at its maximum draw with its share of hosts and switches. Cost per token "
        "assumes the demand runs around the clock all year.",
        cls="note",
    )
    sections: list[tuple[str, str, Html]] = [("question", "Question", question_table)]
    if chart_png is not None:
        sections.append(("chart", "p99 against racks", figures([figure(chart_png, CAPTION)])))
    sections += [
        ("options", "Options", options_body),
        ("candidates", "Candidates simulated", _candidates(options)),
    ]
    return page(
        "Sizing review",
        f"planner-size, seed {fmt_num(summary.get('seed'))}",
        answer,
        sections,
        "Generated by planner.",
    )


def terminal_table(summary: Mapping[str, Any]) -> Table:
    """The comparison table printed on the terminal.

    Columns: racks, the margin (one rack unit fewer), p99 upper bounds, power, cost per year.
    """
    from rich.table import Table

    slo = summary["slo"]
    table = Table(
        title=f"planner-size: {summary['demand_trees_per_s']:g} trees/s, p99 tree <= "
        f"{slo['tree_e2e_p99_s']:g} s, TTFT <= {slo['ttft_p99_s']:g} s, TPOT <= "
        f"{slo['tpot_p99_s']:g} s ({summary['replications']} replications per candidate)"
    )
    columns = (
        "option|model / stack|racks|one unit fewer|p99 tree s (upper)|p99 TTFT s|p99 TPOT s|"
        "MW peak|$M/yr"
    )
    for i, column in enumerate(columns.split("|")):
        table.add_column(column, justify="left" if i < 4 else "right")
    for name, o in summary["options"].items():
        upper = o["p99_upper"]
        below = "; ".join(
            f"{pool} {c['racks'][pool]} {'passes' if c['meets_slo'] else 'fails'}"
            for pool, c in o["below"].items()
        )
        table.add_row(
            name + ("" if o["feasible"] else " (infeasible)"),
            f"{o['model']} / {', '.join(dict.fromkeys(o['stack'].values()))}",
            ", ".join(f"{k} {v}" for k, v in o["racks"].items()),
            below or "-",
            *(_upper(upper[m]) for m in ("tree_e2e_s", "ttft_s", "tpot_s")),
            f"{o['power_mw_peak']:.2f}",
            f"{o['usd_per_year'] / 1e6:,.2f}",
        )
    return table


def _upper(value: float | None) -> str:
    return "unfinished" if value is None else f"{value:.3g}"
