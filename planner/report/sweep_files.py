"""A finished sweep's files: the table, the plot and the page, written into the sweep directory.

:func:`summarize_sweep` reads every job directory (:mod:`planner.app.sweep`), writes
``sweep_summary.csv``/``.parquet``, ``sweep_plot.png`` (the metric against the first swept key,
one line per combination of the others; failed jobs and points that miss the SLOs left off the
lines) and ``report.html``, all atomically. :func:`write_comparison` adds the hardware
comparison of a ``planner-roofline -m hardware=a,b,c`` sweep.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from planner.app.files import atomic_write_bytes, atomic_write_text
from planner.app.roofline import COMPARISON_COLUMNS, comparison_rows
from planner.app.sweep import (
    DEFAULT_METRIC,
    VERDICT_COLUMNS,
    JobResult,
    find_job_dirs,
    optuna_notes,
    read_job,
    sweep_table,
    swept_keys,
    write_table,
)
from planner.report.roofline import CHART_FILE, TABLE_FILE, comparison_chart, comparison_section
from planner.report.sweep import assess, plot_sweep, sweep_html

if TYPE_CHECKING:
    import pandas as pd

PLOT_FILE: Final = "sweep_plot.png"
REPORT_FILE: Final = "report.html"
COMMANDS: Final = {
    "simulate": "planner",
    "size": "planner-size",
    "roi": "planner-roi",
    "roofline": "planner-roofline",
}
"""Console script of each Hydra job name (the module defining the app), for headings."""


def summarize_sweep(
    sweep_dir: Path,
    *,
    sweep_keys: Sequence[str] = (),
    objective: Mapping[str, Any] | None = None,
    job_name: str | None = None,
    metric: str = DEFAULT_METRIC,
    columns: Sequence[str] | None = None,
    x: str | None = None,
    group_by: Sequence[str] | None = None,
    output_subdir: str | None = ".hydra",
    title: str | None = None,
    sections: Sequence[tuple[str, str, Any]] = (),
) -> pd.DataFrame:
    """Read every job directory of ``sweep_dir`` and write the table, plot and HTML page.

    Args:
        sweep_dir: The multirun directory.
        sweep_keys: The keys the sweep itself varies (command line order).
        objective: The config's ``objective`` section (plain mapping), if any.
        job_name: Hydra's job name (``simulate``, ``size``...), for the heading; ``roofline``
            adds the hardware comparison (:func:`write_comparison`).
        metric: Column (or glob) to plot; added to ``columns`` if they do not cover it.
        columns: Flattened summary keys or globs to keep (None: every scalar key).
        x: Swept key on the x axis (default: the first swept key).
        group_by: Swept keys giving one line per value combination (default: the others).
        output_subdir: Hydra's per-job metadata folder (``hydra.output_subdir``).
        title: Page heading (default: from the job name and the sweep directory).
        sections: Extra report sections ``(anchor, heading, html)`` before the points.

    Returns:
        The table written.
    """
    jobs = [read_job(d, output_subdir) for d in find_job_dirs(sweep_dir, output_subdir)]
    if job_name == "roofline":  # planner-roofline -m hardware=a,b,c: compare the parts
        sections = [*write_comparison(sweep_dir, jobs), *sections]
    keys = swept_keys(sweep_keys, jobs)
    patterns = None if columns is None else [*columns, metric, *VERDICT_COLUMNS]
    objective_cfg = {"objective": objective} if objective is not None else None
    table = sweep_table(jobs, keys, patterns, sweep_dir, objective_cfg)
    write_table(table, sweep_dir)

    x_key = x or (keys[0] if keys else None)
    lines = list(group_by) if group_by is not None else [k for k in keys if k != x_key]
    exclude = [*keys, "job", "job_dir", "constraints_met", "repeat_of"]
    direction = str((objective or {}).get("direction", "minimize"))
    verdict = assess(table, keys, direction=direction)
    plot = None
    if x_key is not None:
        plot = plot_sweep(
            table, metric=metric, x=x_key, group_by=lines, exclude=exclude, assessment=verdict
        )
        if plot.png is not None:
            atomic_write_bytes(sweep_dir / PLOT_FILE, plot.png)
    heading = title or f"{COMMANDS.get(str(job_name), job_name or 'Hydra')} sweep: {sweep_dir}"
    notes = [f"swept keys: {', '.join(keys) if keys else 'none'}", *optuna_notes(sweep_dir)]
    for _, row in table[table["status"] != "ok"].iterrows():
        notes.append(f"job {row['job']} failed: {row['error']}")
    if "repeat_of" in table.columns:
        repeats = table[table["repeat_of"].notna()]
        notes += [f"job {r['job']} repeated job {r['repeat_of']}" for _, r in repeats.iterrows()]
    page = sweep_html(
        table,
        title=heading,
        plot=plot,
        notes=notes,
        keys=keys,
        assessment=verdict,
        sections=sections,
    )
    atomic_write_text(sweep_dir / REPORT_FILE, page)
    return table


def comparison_csv(rows: list[dict[str, Any]]) -> str:
    """The comparison rows as CSV text (the :data:`COMPARISON_COLUMNS` and ``caveat``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [*COMPARISON_COLUMNS, "caveat"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def write_comparison(sweep_dir: Path, jobs: Sequence[JobResult]) -> list[tuple[str, str, Any]]:
    """Write the roofline comparison CSV and SVG; return its report section (none if no job ran).

    Args:
        sweep_dir: The multirun directory of a ``planner-roofline -m hardware=...`` sweep.
        jobs: The sweep's jobs.
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
