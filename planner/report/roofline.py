"""The ``planner-roofline -m hardware=a,b,c`` comparison: one table and one chart of the parts.

The chart plots each part's serving curve (``curve`` in its ``summary.json``, closed-loop
concurrency from 1 to the KV-bounded batch) as tokens/s per user against output tokens/s per
accelerator, log-log, so the interactivity/throughput trade-off of the whole landscape is on one
page. Parts on borrowed efficiency factors or press-only figures are marked in the legend and
the table: a transferred factor must not read as a fitted one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from planner.report.html_parts import Html, figure, figures, fmt_num, para, table
from planner.report.svg import Series, chart

CHART_FILE = "roofline_comparison.svg"
TABLE_FILE = "roofline_comparison.csv"
HEADERS = (
    ("hardware", "hardware"),
    ("model", "model"),
    ("precision", "precision"),
    ("accelerators_per_replica", "accelerators / replica"),
    ("decode_tokens_per_s_per_user", "tok/s/user, batch 1"),
    ("max_output_tokens_per_s_per_accelerator", "tok/s/accel, saturated"),
    ("max_output_tokens_per_s_per_accelerator_at_tpot", "tok/s/accel at TPOT limit"),
    ("prefill_time_s", "prefill of one prompt, s"),
    ("max_batch", "max batch"),
    ("caveat", "caveat"),
)


def _label(summary: Mapping[str, Any], models: int) -> str:
    name = str(summary.get("hardware"))
    if models > 1:
        name += f" / {summary.get('model')}"
    marks = []
    if summary.get("calibrated") is False:
        marks.append("uncalibrated")
    if summary.get("hardware_confirmed") is False:
        marks.append("unconfirmed")
    return name + (f" ({', '.join(marks)})" if marks else "")


def comparison_chart(summaries: Sequence[Mapping[str, Any]]) -> Html | None:
    """SVG chart: tokens/s per user (x) against output tokens/s per accelerator (y), per part.

    Returns:
        The ``<svg>``, or None when no summary has a serving curve.
    """
    models = len({s.get("model") for s in summaries})
    series = []
    for summary in summaries:
        curve = summary.get("curve") or []
        if not curve:
            continue
        x = np.array([float(p["tokens_per_s_per_user"]) for p in curve])
        y = np.array([float(p["output_tokens_per_s_per_accelerator"]) for p in curve])
        series.append(Series(_label(summary, models), x, y, markers=True))
    if not series:
        return None
    first = summaries[0]
    return chart(
        series,
        title=f"Serving curves, ISL {fmt_num(first.get('isl'))} / OSL {fmt_num(first.get('osl'))}",
        xlabel="tokens/s per user (1 / TPOT)",
        ylabel="output tokens/s per accelerator",
        x_log=True,
        y_log=True,
    )


def comparison_section(
    rows: Sequence[Mapping[str, Any]],
    svg: Html | None,
    refused: Mapping[str, str] | None = None,
) -> Html:
    """The comparison table and chart.

    Rows come from :func:`planner.app.roofline.comparison_rows`; ``refused`` maps each part
    whose job failed to its one-line reason.
    """
    body = Html("")
    if svg is not None:
        body += figures(
            [
                figure(
                    svg,
                    "Each point is a closed-loop concurrency from 1 user to the KV-bounded batch; "
                    "up and right is better.",
                )
            ]
        )
    cells = [
        [
            fmt_num(row.get(key)) if isinstance(row.get(key), int | float) else row.get(key) or ""
            for key, _ in HEADERS
        ]
        for row in rows
    ]
    body += table([h for _, h in HEADERS], cells, numeric_from=3)
    marked = [r for r in rows if r.get("caveat")]
    if marked:
        body += para(
            f"{len(marked)} of {len(rows)} parts carry a caveat: uncalibrated parts run on "
            "efficiency factors borrowed from another family (conf/efficiency/borrowed.yaml); "
            "unconfirmed parts have press-only figures. Read their rows as estimates.",
            cls="note",
        )
    for part, reason in (refused or {}).items():
        body += para(f"{part}: not compared: {reason}", cls="note")
    return body
