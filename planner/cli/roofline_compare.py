"""``planner-roofline -m hardware=a,b,c``: one comparison of the parts, for the sweep summary.

:class:`planner.cli.callbacks.SweepSummary` calls :func:`write_comparison` when the sweep is a
``planner-roofline`` one (Hydra job name ``roofline``; the guard allows that one callback class
only). On top of the generic sweep files it writes, into the sweep directory,
``roofline_comparison.csv`` (one row per part that ran, caveats marked),
``roofline_comparison.svg`` (tokens/s per user against tokens/s per accelerator, one serving
curve per part) and a "Comparison" section at the top of ``report.html``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from planner.app.roofline import COMPARISON_COLUMNS, comparison_rows
from planner.cli.common import atomic_write_text
from planner.report.roofline import (
    CHART_FILE,
    TABLE_FILE,
    comparison_chart,
    comparison_section,
)


def comparison_csv(rows: list[dict[str, Any]]) -> str:
    """The comparison rows as CSV text (the :data:`COMPARISON_COLUMNS` and ``caveat``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [*COMPARISON_COLUMNS, "caveat"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def write_comparison(sweep_dir: Path, jobs: Sequence[Any]) -> list[tuple[str, str, Any]]:
    """Write the comparison CSV and SVG; return the report section for them (none if no job ran).

    Args:
        sweep_dir: The multirun directory.
        jobs: The sweep's :class:`planner.cli.callbacks.JobResult` objects (passed in, not read
            here, so this module does not import the callback module that calls it).
    """
    summaries = [j.summary for j in jobs if j.summary is not None and "hardware" in j.summary]
    if not summaries:
        return []
    rows = comparison_rows(summaries)
    atomic_write_text(sweep_dir / TABLE_FILE, comparison_csv(rows))
    svg = comparison_chart(summaries)
    if svg is not None:
        atomic_write_text(sweep_dir / CHART_FILE, str(svg))
    refused = {
        str(j.overrides.get("hardware") or j.directory.name): j.error or ""
        for j in jobs
        if j.summary is None
    }
    return [("comparison", "Comparison", comparison_section(rows, svg, refused))]
