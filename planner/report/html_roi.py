"""The ``planner-roi`` report page and its charts.

:func:`roi_images` renders the charts of a :class:`~planner.app.roi_result.RoiResult`;
:func:`roi_report` builds the page from ``summary.json`` (the README's ``roi.*`` keys) and those
PNGs. The page opens with the study's question and its verdict sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from planner.report.html_parts import (
    MISSING,
    Html,
    figure,
    figures,
    fmt_num,
    fmt_pct,
    fmt_usd,
    get,
    key_values,
    page,
    para,
    strong,
    table,
)
from planner.report.notes import calibration_notes
from planner.report.roi_plots import (
    breakeven_png,
    cashflow_png,
    npv_histogram_png,
    tornado_musd_png,
)

if TYPE_CHECKING:
    from planner.app.roi_result import RoiResult

CAPTIONS = {
    "breakeven.png": "Break-even map: P(NPV > 0) over the two inputs with the largest variance "
    "shares, every other input drawn as in the study (black line: 50 %)",
    "cashflow.png": "Yearly savings of the candidate (bars: base case; dots: median future with "
    "p5-p95) and cumulative NPV",
    "npv_histogram.png": "NPV over all sampled futures (USD M)",
    "tornado.png": "One-at-a-time sensitivity: each input at its p10 and p90, the others at "
    "their medians (USD M)",
}


def roi_images(result: RoiResult) -> dict[str, bytes]:
    """The study's charts by file name (PNG bytes)."""
    spec = result.spec
    versus = f"{spec.candidate} vs {spec.baseline}"
    return {
        "breakeven.png": breakeven_png(result.breakeven, title=f"Break-even, {versus}"),
        "cashflow.png": cashflow_png(result.cash_flows, title=f"Cash flows, {versus}"),
        "npv_histogram.png": npv_histogram_png(result.npv_usd, title=f"NPV, {versus}"),
        "tornado.png": tornado_musd_png(
            result.tornado, base_npv_usd=result.base_npv_usd, title="NPV, one input at a time"
        ),
    }


def _pct_or(value: Any, none: str) -> str:
    return none if value is None else fmt_pct(value)


def _headline(roi: Mapping[str, Any]) -> Html:
    npv, irr = roi.get("npv_usd") or {}, roi.get("irr") or {}
    ci = roi.get("prob_npv_positive_ci95") or [None, None]
    pay = roi.get("payback_years") or {}
    price = roi.get("breakeven_lpu_price_factor") or {}
    return key_values(
        [
            (
                "P(NPV > 0), 95% Wilson interval",
                f"{fmt_pct(roi.get('prob_npv_positive'))} ({fmt_pct(ci[0])} to {fmt_pct(ci[1])})",
            ),
            ("NPV p5 / p50 / p95", " / ".join(fmt_usd(npv.get(k)) for k in ("p5", "p50", "p95"))),
            (
                "IRR p5 / p50 / p95, over all futures",
                " / ".join(_pct_or(irr.get(k), "none") for k in ("p5", "p50", "p95")),
            ),
            (
                "futures with no IRR (never recover / always save)",
                f"{fmt_pct(irr.get('none_fraction_never_recovers'))} / "
                f"{fmt_pct(irr.get('none_fraction_always_saves'))}",
            ),
            (
                "payback p50 (all futures)",
                "not within the horizon"
                if pay.get("p50") is None
                else f"{fmt_num(pay.get('p50'))} years",
            ),
            ("futures paying back within the horizon", fmt_pct(pay.get("within_horizon_fraction"))),
            (
                "LPU price at break-even, x list: p5 / p50 / p95",
                " / ".join(_times(price.get(k)) for k in ("p5", "p50", "p95")),
            ),
            ("futures losing even with free LPUs", fmt_pct(price.get("none_fraction"))),
        ]
    )


def _times(value: Any) -> str:
    return "none" if value is None else f"{fmt_num(value)}x"


def _fleets(roi: Mapping[str, Any]) -> Html:
    rows = []
    for name, f in (roi.get("fleets") or {}).items():
        rows.append(
            (
                name,
                fmt_num(get(f, "year_one_accelerators", "p50")),
                fmt_num(get(f, "peak_racks", "p50")),
                fmt_num(get(f, "peak_racks", "p95")),
                fmt_num(get(f, "peak_power_mw", "p50")),
                fmt_num(get(f, "peak_power_mw", "p95")),
            )
        )
    return table(
        [
            "option",
            "accelerators, year one (p50)",
            "peak racks p50",
            "peak racks p95",
            "peak IT MW p50",
            "peak IT MW p95",
        ],
        rows,
    )


def _sensitivity(roi: Mapping[str, Any]) -> Html:
    sens = roi.get("sensitivity") or {}
    shares, sobol = sens.get("shares") or {}, sens.get("sobol") or {}
    first, total = sobol.get("first_order") or {}, sobol.get("total_order") or {}
    rows = [
        (n, fmt_pct(shares.get(n)), fmt_pct(first.get(n)), fmt_pct(total.get(n)))
        for n in sens.get("ranked") or []
    ]
    note = para(
        f"{sens.get('method', MISSING)}. The squared rank correlations sum to "
        f"{fmt_num(sens.get('rank_r2'))} before normalising. Sobol first-order indices sum to "
        f"{fmt_pct(sobol.get('first_order_sum'))}; the rest "
        f"({fmt_pct(sobol.get('interaction_share'))}) is interaction between inputs.",
        cls="note",
    )
    return (
        table(["input", "variance share (rank)", "Sobol first order", "Sobol total"], rows) + note
    )


def _base_case(roi: Mapping[str, Any]) -> Html:
    base = roi.get("base_case") or {}
    body = para(
        "Every uncertain input at its median: NPV ",
        strong(fmt_usd(base.get("npv_usd"))),
        f", IRR {_pct_or(base.get('irr'), 'none')}, payback "
        + (
            "not within the horizon"
            if base.get("payback_years") is None
            else f"{fmt_num(base.get('payback_years'))} years"
        )
        + ".",
    )
    fleets = roi.get("fleets") or {}
    columns: list[tuple[str, list[Any]]] = [
        ("load (trees/s)", base.get("load_trees_per_s_by_year") or []),
        ("savings", base.get("savings_usd_by_year") or []),
    ]
    for name, f in fleets.items():
        columns.append((f"{name} racks", f.get("racks_by_year") or []))
        columns.append((f"{name} IT MW", f.get("power_mw_by_year") or []))
    years = max((len(v) for _, v in columns), default=0)
    rows = []
    for year in range(years):
        cells = [str(year + 1)]
        for title, values in columns:
            value = values[year] if year < len(values) else None
            cells.append(fmt_usd(value) if title == "savings" else fmt_num(value))
        rows.append(tuple(cells))
    inputs = base.get("inputs") or {}
    laws = roi.get("inputs") or {}
    return (
        body
        + table(["year", *(t for t, _ in columns)], rows)
        + table(["input", "median"], [(k, _value(laws.get(k), v)) for k, v in inputs.items()])
    )


def _value(law: Any, value: Any) -> str:
    """A discrete input's value by name (its index otherwise), a number formatted."""
    if isinstance(law, Mapping) and law.get("dist") == "choice" and isinstance(value, int | float):
        labels = [str(k) for k in law if k != "dist"]
        if 0 <= int(value) < len(labels):
            return labels[int(value)]
    return fmt_num(value)


def _curves(summary: Mapping[str, Any]) -> Html:
    body = para(
        "Static capacity: racks per tree/s from the roofline sizing (every replica at its target "
        "load), per variant, at each context-length scale; each future reads its variant's row "
        "at its sampled scale.",
        cls="note",
    )
    for name, curve in (summary.get("curves") or {}).items():
        scales = curve.get("context_scales") or []
        rows = []
        for pool, table_rows in (curve.get("racks_per_trees_per_s") or {}).items():
            for label, row in zip(curve.get("labels") or [], table_rows, strict=False):
                rows.append((pool, label, *(fmt_num(v) for v in row)))
        source = "cached" if curve.get("from_cache") else "computed"
        body += para(strong(f"{name} ({source})")) + table(
            ["pool", "variant", *(f"x{fmt_num(c)}" for c in scales)], rows
        )
    return body


def _spot_checks(checks: list[Any]) -> Html:
    if not checks:
        return para("None requested (roi.spot_checks=0).", cls="note")
    rows = [
        (
            c.get("option", MISSING),
            fmt_num(c.get("load_trees_per_s")),
            fmt_num(c.get("fast_racks")),
            fmt_num(c.get("simulated_racks")),
            fmt_pct(c.get("relative_error")),
        )
        for c in checks
    ]
    return table(
        ["option", "load (trees/s)", "racks, static curves", "racks, simulated", "difference"],
        rows,
    )


def _calibration(summary: Mapping[str, Any]) -> list[str]:
    """One note per option and caveat (borrowed factors, press-only figures).

    A note names the variants it applies to when the study samples several.
    """
    out = []
    for option, variants in (summary.get("calibration_by_variant") or {}).items():
        labels_by_note: dict[str, list[str]] = {}
        for label, pools in variants.items():
            for note in calibration_notes(pools):
                labels_by_note.setdefault(note, []).append(label)
        for note, labels in labels_by_note.items():
            where = "" if len(variants) == 1 else f" (variants: {'; '.join(labels)})"
            out.append(f"{option}/{note}{where}")
    return out


def roi_report(
    summary: Mapping[str, Any],
    images: Mapping[str, bytes],
    *,
    run_info: Mapping[str, str] | None = None,
) -> str:
    """The report page of a ``planner-roi`` study.

    Args:
        summary: ``summary.json`` of the study.
        images: PNGs by file name (:func:`roi_images`).
        run_info: Extra lines for the study table (e.g. the config groups chosen).

    Returns:
        The HTML document.
    """
    roi = get(summary, "roi") or {}
    baseline, candidate = roi.get("baseline", MISSING), roi.get("candidate", MISSING)
    answer = [
        para("Question", cls="label"),
        para(str(summary.get("question") or MISSING)),
        para("Answer", cls="label"),
        para(strong(str(summary.get("answer") or MISSING))),
    ]
    answer.extend(para(note, cls="note") for note in _calibration(summary))

    def fig(name: str) -> Html:
        return figures([figure(images[name], CAPTIONS[name])]) if name in images else Html("")

    inputs = roi.get("inputs") or {}
    mc = summary.get("mc") or {}
    study = key_values(
        [
            ("scenario", summary.get("scenario") or MISSING),
            *(run_info or {}).items(),
            ("horizon", f"{fmt_num(roi.get('horizon_years'))} years"),
            ("Monte Carlo futures (Latin hypercube)", fmt_num(roi.get("samples"))),
            (
                "chunks resumed / total",
                f"{fmt_num(mc.get('chunks_resumed'))} / {fmt_num(mc.get('chunks_total'))}",
            ),
        ]
    ) + table(
        ["uncertain input", "law"],
        [
            (
                k,
                ", ".join(
                    f"{a}={fmt_num(b) if not isinstance(b, str) else b}" for a, b in v.items()
                ),
            )
            for k, v in inputs.items()
        ],
    )
    tornado_rows = [
        (
            b.get("input", MISSING),
            f"{_value(inputs.get(b.get('input')), b.get('low_input'))} → "
            f"{_value(inputs.get(b.get('input')), b.get('high_input'))}",
            fmt_usd(b.get("npv_at_low_usd")),
            fmt_usd(b.get("npv_at_high_usd")),
            fmt_usd(b.get("swing_usd")),
        )
        for b in roi.get("tornado") or []
    ]
    sections = [
        ("npv", "Net present value", _headline(roi) + fig("npv_histogram.png")),
        ("breakeven", "Break-even", fig("breakeven.png")),
        ("cashflow", "Cash flows", fig("cashflow.png")),
        ("fleets", "Fleets: floor space and power", _fleets(roi)),
        (
            "sensitivity",
            "Sensitivity",
            _sensitivity(roi)
            + fig("tornado.png")
            + table(["input", "p10 → p90", "NPV at p10", "NPV at p90", "swing"], tornado_rows),
        ),
        ("base-case", "Base case", _base_case(roi)),
        ("curves", "Capacity curves", _curves(summary)),
        ("spot-checks", "Spot checks", _spot_checks(summary.get("spot_checks") or [])),
        ("study", "Study", study),
    ]
    return page(
        f"ROI review: {candidate} against {baseline}",
        f"planner-roi, scenario {summary.get('scenario') or MISSING}",
        answer,
        sections,
        "Generated by planner.",
    )
