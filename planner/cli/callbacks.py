"""The sweep callback (``-m``): a table, a plot and an HTML page per multirun; Optuna objective.

Registered in ``conf/planner.yaml``, ``conf/size.yaml`` and ``conf/roi.yaml`` as
``hydra.callbacks.sweep_summary``. With the joblib, submitit and Ray launchers a callback's
``on_job_end`` runs in the worker, so every job leaves its own result in its directory
(``summary.json``, or ``job_error.json`` from :func:`planner.cli.common.guarded_task`) and
``on_multirun_end``, in the launching process, reads them all back. It writes into the sweep
directory, atomically:

- ``sweep_summary.csv`` and ``sweep_summary.parquet``: one row per job directory, with ``job``
  (Hydra's job number), one column per swept key (the override value as given, as text),
  ``status`` (``ok`` / ``failed``), ``error`` (empty when ok; ``no result`` for a job that left
  neither file), ``objective`` (when the config has an ``objective`` section), the selected
  summary keys (nested keys flattened with dots) and ``job_dir``;
- ``sweep_plot.png``: the metric against the first swept key, one line per combination of the
  other swept keys (failed jobs left out);
- ``report.html``: the table and the plot in one self-contained page.
"""

from __future__ import annotations

import fnmatch
import io
import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # pandas is imported when a sweep is summarized, not at CLI start-up
    import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

from planner.cli.common import (
    JOB_ERROR_FILE,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    to_mapping,
)
from planner.specs.errors import ConfigError

log = logging.getLogger(__name__)

SUMMARY_FILE: Final = "summary.json"
CSV_FILE: Final = "sweep_summary.csv"
PARQUET_FILE: Final = "sweep_summary.parquet"
PLOT_FILE: Final = "sweep_plot.png"
REPORT_FILE: Final = "report.html"
DEFAULT_METRIC: Final = "trees.e2e_s.p99"
VERDICT_COLUMNS: Final = (
    "slo.tree_e2e_s",
    "slo.ttft_s",
    "slo.tpot_s",
    "slo.feasible",
    "slo.attainment",
    "stability.stable",
    "partial",
    "cost.headline.*",
)
"""Summary keys always kept (when present): the SLO limits and what the run's verdict judges by
(attainment, stability, partial: :func:`planner.report.verdict.passes`), the headline cost."""
NO_RESULT: Final = "no result: the job left neither summary.json nor job_error.json"
OPTUNA_RESULTS_FILE: Final = "optimization_results.yaml"

Scalar = str | int | float | bool | None

COMMANDS: Final = {
    "simulate": "planner",
    "size": "planner-size",
    "roi": "planner-roi",
    "roofline": "planner-roofline",
}
"""Console script of each Hydra job name (the module defining the app), for headings."""


# ---------------------------------------------------------------------------------------------
# Flattened summaries


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """Nested mappings as one level with dotted keys; lists and other non-scalars are dropped.

    >>> flatten({"trees": {"e2e_s": {"p99": 1.5}}, "seed": 0, "x": [1]})
    {'trees.e2e_s.p99': 1.5, 'seed': 0}
    """
    flat: dict[str, Scalar] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif value is None or isinstance(value, str | int | float | bool):
            flat[name] = value
    return flat


def select_columns(flat: Mapping[str, Scalar], patterns: Sequence[str] | None) -> dict[str, Scalar]:
    """The entries of ``flat`` whose key matches one of ``patterns`` (all of them if None).

    Patterns are exact keys or ``fnmatch`` globs (``pools.*.utilization``); the result follows
    the patterns' order, and each pattern's matches the summary's order.
    """
    if patterns is None:
        return dict(flat)
    selected: dict[str, Scalar] = {}
    for pattern in patterns:
        if pattern in flat:
            selected.setdefault(pattern, flat[pattern])
            continue
        for key, value in flat.items():
            if fnmatch.fnmatchcase(key, pattern):
                selected.setdefault(key, value)
    return selected


# ---------------------------------------------------------------------------------------------
# The Optuna objective


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def objective(summary: Mapping[str, Any], cfg: Any) -> float | None:
    """The value a sweeper (Optuna) optimizes, from a run's summary and the ``objective`` config.

    ``cfg.objective`` (absent: returns None, so ordinary runs are unaffected)::

        objective:
          metric: cost.usd_per_million_output_tokens   # flattened summary key
          direction: minimize                           # or maximize (sets the penalty's sign)
          penalty: 1.0e6                                # returned when a constraint fails
          constraints:                                  # flattened key -> {min, max}
            slo.attainment: {min: 0.9}

    A run that misses a constraint, or whose metric is missing or not finite, scores
    ``penalty * (1 + shortfall)`` (negated for ``maximize``), where the shortfall adds each
    missed bound's relative miss (1 for a missing value): infeasible runs rank below every
    feasible one and nearer misses rank better, which guides the sampler.

    Args:
        summary: The run's ``summary.json`` content (nested).
        cfg: The job's config (a DictConfig or mapping with an optional ``objective`` key).

    Returns:
        A plain ``float`` (OmegaConf and the sweepers reject numpy scalars), or None.

    Raises:
        ConfigError: The ``objective`` section is malformed.
    """
    spec_node = cfg.get("objective") if cfg is not None else None
    if spec_node is None:
        return None
    spec = to_mapping(spec_node, "objective")
    allowed = {"metric", "direction", "penalty", "constraints"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"objective.{unknown[0]}", f"unknown key; allowed: {sorted(allowed)}")
    metric = spec.get("metric")
    if not isinstance(metric, str) or not metric:
        raise ConfigError("objective.metric", "must name a summary key, e.g. slo.attainment")
    direction = spec.get("direction", "minimize")
    if direction not in ("minimize", "maximize"):
        raise ConfigError("objective.direction", f"must be minimize or maximize, got {direction!r}")
    penalty = _number(spec.get("penalty", 1.0e9))
    if penalty is None or penalty <= 0:
        raise ConfigError("objective.penalty", "must be a positive number")
    constraints = spec.get("constraints") or {}
    if not isinstance(constraints, Mapping):
        raise ConfigError("objective.constraints", "must map summary keys to {min, max}")
    flat = flatten(summary)
    shortfall = _shortfall(flat, constraints)
    value = _number(flat.get(metric))
    sign = 1.0 if direction == "minimize" else -1.0
    if shortfall > 0 or value is None:
        return float(sign * penalty * (1.0 + shortfall))
    return float(value)


def _shortfall(flat: Mapping[str, Scalar], constraints: Mapping[Any, Any]) -> float:
    """Sum of the relative misses of the constraints' bounds (1 per missing value)."""
    shortfall = 0.0
    for key, bounds in constraints.items():
        field_name = f"objective.constraints.{key}"
        if not isinstance(bounds, Mapping) or not bounds or set(bounds) - {"min", "max"}:
            raise ConfigError(field_name, "must be a mapping with min and/or max")
        value = _number(flat.get(str(key)))
        if value is None:
            shortfall += 1.0
            continue
        for side, bound in bounds.items():
            limit = _number(bound)
            if limit is None:
                raise ConfigError(f"{field_name}.{side}", f"must be a number, got {bound!r}")
            miss = limit - value if side == "min" else value - limit
            if miss > 0:
                shortfall += miss / max(abs(limit), 1e-12)
    return shortfall


def constraints_met(summary: Mapping[str, Any], cfg: Any) -> bool | None:
    """Whether a run meets the ``objective.constraints`` (None without any).

    Raises:
        ConfigError: The constraints are malformed.
    """
    spec_node = cfg.get("objective") if cfg is not None else None
    if spec_node is None:
        return None
    constraints = to_mapping(spec_node, "objective").get("constraints") or {}
    if not isinstance(constraints, Mapping):
        raise ConfigError("objective.constraints", "must map summary keys to {min, max}")
    if not constraints:
        return None
    return _shortfall(flatten(summary), constraints) == 0.0


# ---------------------------------------------------------------------------------------------
# Reading job directories


@dataclass
class JobResult:
    """What one job of a sweep left in its directory."""

    directory: Path
    num: int | None
    overrides: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    error: str | None = None


_PARSER = OverridesParser.create()


def _key(override: Override) -> str:
    return override.key_or_group + (f"@{override.package}" if override.package else "")


def parse_override(text: str) -> tuple[str, str]:
    """``(key, value as given)`` of one override; ``+``/``~`` prefixes dropped from the key."""
    raw_key, _, raw_value = text.partition("=")
    try:
        key = _key(_PARSER.parse_override(text))
    except HydraException:
        key = raw_key.lstrip("+~")
    return key, raw_value


def _load_yaml(path: Path) -> Any:
    try:
        return OmegaConf.load(path)
    except Exception as error:  # unreadable or half-written: treated as missing
        log.warning("cannot read %s: %s", path, error)
        return None


def read_job(job_dir: Path, output_subdir: str | None = ".hydra") -> JobResult:
    """Read a job directory: its overrides, number, and ``summary.json`` or ``job_error.json``.

    A directory with neither result file is a job that crashed or never finished: its error
    is :data:`NO_RESULT`. A result file that cannot be parsed becomes the row's error.
    """
    num: int | None = int(job_dir.name) if job_dir.name.isdigit() else None
    overrides: dict[str, str] = {}
    if output_subdir:
        meta = job_dir / output_subdir
        listed = _load_yaml(meta / "overrides.yaml") if (meta / "overrides.yaml").exists() else None
        if isinstance(listed, ListConfig):
            overrides = dict(parse_override(str(item)) for item in listed)
        hydra_cfg = _load_yaml(meta / "hydra.yaml") if (meta / "hydra.yaml").exists() else None
        if isinstance(hydra_cfg, DictConfig):
            value = OmegaConf.select(hydra_cfg, "hydra.job.num", throw_on_resolution_failure=False)
            if isinstance(value, int):
                num = value
    result = JobResult(job_dir, num, overrides)
    summary_path, error_path = job_dir / SUMMARY_FILE, job_dir / JOB_ERROR_FILE
    try:
        if error_path.exists():
            data = json.loads(error_path.read_text(encoding="utf-8"))
            result.error = str(data.get("error") or data.get("type") or "unknown error")
        elif summary_path.exists():
            data = json.loads(summary_path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("summary.json is not a JSON object")
            result.summary = data
        else:
            result.error = NO_RESULT
    except (OSError, ValueError) as error:
        result.error = f"unreadable result: {error}"
    return result


def find_job_dirs(sweep_dir: Path, output_subdir: str | None = ".hydra") -> list[Path]:
    """Every job directory under ``sweep_dir``.

    A job directory holds Hydra's ``<output_subdir>/overrides.yaml`` (written before the task
    starts, so crashed jobs are found too), ``summary.json`` or ``job_error.json``. Launcher
    bookkeeping (submitit's ``.submitit/``) is skipped.
    """
    found: set[Path] = set()
    if output_subdir:
        for path in sweep_dir.rglob("overrides.yaml"):
            if path.parent.name == output_subdir:
                found.add(path.parent.parent)
    for name in (SUMMARY_FILE, JOB_ERROR_FILE):
        found.update(path.parent for path in sweep_dir.rglob(name))
    root = sweep_dir.resolve()
    return sorted(
        d
        for d in found
        if d.resolve() != root and ".submitit" not in d.relative_to(sweep_dir).parts
    )


def _sweep_override_keys(config: DictConfig) -> list[str]:
    """Keys swept by the command line (``a=1,2``, ``range``, ``choice``...) and sweeper params."""
    keys: list[str] = []
    task = OmegaConf.select(config, "hydra.overrides.task", default=None)
    if task is not None:
        try:
            parsed = _PARSER.parse_overrides([str(o) for o in task])
        except HydraException:
            parsed = []
        keys += [_key(o) for o in parsed if o.is_sweep_override()]
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
    if isinstance(params, DictConfig):
        keys += [str(k) for k in params]
    return list(dict.fromkeys(keys))


def swept_keys(config: DictConfig | None, jobs: Sequence[JobResult]) -> list[str]:
    """The swept keys: the sweep's own (command line order), then any that vary across jobs."""
    keys = _sweep_override_keys(config) if config is not None else []
    overridden = dict.fromkeys(key for job in jobs for key in job.overrides)
    keys += [k for k in overridden if len({job.overrides.get(k) for job in jobs}) > 1]
    return list(dict.fromkeys(keys))


# ---------------------------------------------------------------------------------------------
# The table and its files


def _typed_column(values: list[Any]) -> pd.Series:
    """A column with a type Parquet and CSV keep: integers stay integers next to missing
    values (``Int64``), booleans ``boolean``, and a mix of text and numbers becomes text."""
    import pandas as pd

    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    kinds = {type(v) for v in present}
    if present and kinds <= {bool}:
        return pd.Series(values, dtype="boolean")
    if present and kinds <= {int}:
        return pd.Series(values, dtype="Int64")
    if present and kinds <= {int, float}:
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    if len(kinds) > 1:
        return pd.Series([None if v is None else str(v) for v in values], dtype=object)
    return pd.Series(values, dtype=object if not present else None)


def sweep_table(
    jobs: Sequence[JobResult],
    keys: Sequence[str],
    columns: Sequence[str] | None,
    sweep_dir: Path,
    objective_cfg: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per job: number, swept keys, status, error, objective, metrics, directory."""
    import pandas as pd

    rows = []
    for job in sorted(jobs, key=lambda j: (j.num is None, j.num or 0, str(j.directory))):
        row: dict[str, Any] = {"job": job.num}
        row.update({key: job.overrides.get(key) for key in keys})
        row["status"] = "ok" if job.summary is not None else "failed"
        row["error"] = job.error or ""
        if objective_cfg is not None:
            row["objective"] = None
            if job.summary is not None:
                try:
                    row["objective"] = objective(job.summary, objective_cfg)
                    met = constraints_met(job.summary, objective_cfg)
                    if met is not None:
                        row["constraints_met"] = met
                except ConfigError as error:
                    row["error"] = f"objective: {error}"
        if job.summary is not None:
            for name, value in select_columns(flatten(job.summary), columns).items():
                row.setdefault(name, value)
        row["job_dir"] = str(job.directory.relative_to(sweep_dir))
        rows.append(row)
    names = list(dict.fromkeys(["job", *keys, "status", "error"] + [k for r in rows for k in r]))
    names = [n for n in names if n != "job_dir"] + ["job_dir"]
    return pd.DataFrame({name: _typed_column([r.get(name) for r in rows]) for name in names})


def write_table(table: pd.DataFrame, sweep_dir: Path) -> None:
    """``sweep_summary.csv`` and ``sweep_summary.parquet``, each atomically."""
    atomic_write_text(sweep_dir / CSV_FILE, table.to_csv(index=False))
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    atomic_write_bytes(sweep_dir / PARQUET_FILE, buffer.getvalue())


def _optuna_notes(sweep_dir: Path) -> list[str]:
    results = sweep_dir / OPTUNA_RESULTS_FILE
    data = _load_yaml(results) if results.exists() else None
    if not isinstance(data, DictConfig) or "best_params" not in data:
        return []
    params = ", ".join(f"{k}={v}" for k, v in data.best_params.items())
    return [f"Optuna best trial: {params} -> {data.get('best_value')}"]


def summarize_sweep(
    sweep_dir: Path,
    *,
    config: DictConfig | None = None,
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
        config: The sweep's config (for the swept keys and the ``objective`` section).
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
    from planner.report.sweep import assess, plot_sweep, sweep_html

    jobs = [read_job(d, output_subdir) for d in find_job_dirs(sweep_dir, output_subdir)]
    keys = swept_keys(config, jobs)
    patterns = None if columns is None else [*columns, metric, *VERDICT_COLUMNS]
    objective_node = config.get("objective") if config is not None else None
    objective_cfg = {"objective": objective_node} if objective_node is not None else None
    table = sweep_table(jobs, keys, patterns, sweep_dir, objective_cfg)
    write_table(table, sweep_dir)

    x_key = x or (keys[0] if keys else None)
    lines = list(group_by) if group_by is not None else [k for k in keys if k != x_key]
    exclude = [*keys, "job", "job_dir", "constraints_met"]
    direction = "minimize"
    if objective_node is not None:
        direction = str(to_mapping(objective_node, "objective").get("direction", "minimize"))
    verdict = assess(table, keys, direction=direction)
    if x_key is None:
        plot = None
    else:
        plot = plot_sweep(
            table, metric=metric, x=x_key, group_by=lines, exclude=exclude, assessment=verdict
        )
        if plot.png is not None:
            atomic_write_bytes(sweep_dir / PLOT_FILE, plot.png)
    name = OmegaConf.select(config, "hydra.job.name", default=None) if config else None
    heading = title or f"{COMMANDS.get(str(name), name or 'Hydra')} sweep: {sweep_dir}"
    notes = [f"swept keys: {', '.join(keys) if keys else 'none'}", *_optuna_notes(sweep_dir)]
    failed = table[table["status"] != "ok"]
    for _, row in failed.iterrows():
        notes.append(f"job {row['job']} failed: {row['error']}")
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


class SweepSummary(Callback):
    """Hydra callback: aggregate a multirun into a table, a plot and an HTML page.

    Configured under ``hydra.callbacks.sweep_summary`` (overridable on the command line, e.g.
    ``hydra.callbacks.sweep_summary.metric=calls.ttft_s.p99``).

    Args:
        metric: Flattened summary key (or glob) to plot.
        columns: Flattened summary keys or globs for the table (None: every scalar key).
        x: Swept key on the x axis (None: the first swept key).
        group_by: Swept keys that split lines (None: every other swept key).
        enabled: False turns the callback off.
    """

    def __init__(
        self,
        metric: str = DEFAULT_METRIC,
        columns: Iterable[str] | None = None,
        x: str | None = None,
        group_by: Iterable[str] | None = None,
        enabled: bool = True,
    ) -> None:
        self.metric = str(metric)
        self.columns = None if columns is None else [str(c) for c in columns]
        self.x = None if x is None else str(x)
        self.group_by = None if group_by is None else [str(g) for g in group_by]
        self.enabled = bool(enabled)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """In a sweep, record a job that raised past :func:`guarded_task` as ``job_error.json``.

        Runs in the worker process; only writes into the job's own directory. On a terminal it
        also reports the job's end (sweep progress); nothing is printed otherwise.
        """
        multirun = OmegaConf.select(config, "hydra.mode") == RunMode.MULTIRUN
        if self.enabled and multirun and sys.stderr.isatty():  # a single run is no sweep job
            status = "done" if job_return.status == JobStatus.COMPLETED else "failed"
            job = OmegaConf.select(config, "hydra.job.num")
            print(f"sweep: job #{job} {status}", file=sys.stderr, flush=True)
        if not self.enabled or job_return.status != JobStatus.FAILED or not multirun:
            return
        out_dir = Path(str(config.hydra.runtime.output_dir))
        if (out_dir / JOB_ERROR_FILE).exists():
            return
        error = getattr(job_return, "_return_value", None)
        message = " ".join(str(error).split()) or type(error).__name__
        atomic_write_json(
            out_dir / JOB_ERROR_FILE, {"error": message, "type": type(error).__name__}
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Aggregate every job directory of the sweep (runs in the launching process)."""
        if not self.enabled:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            log.warning("sweep summary: no sweep directory %s", sweep_dir)
            return
        output_subdir = OmegaConf.select(config, "hydra.output_subdir", default=".hydra")
        subdir = None if output_subdir is None else str(output_subdir)
        sections: list[tuple[str, str, Any]] = []
        if OmegaConf.select(config, "hydra.job.name", default=None) == "roofline":
            # planner-roofline -m hardware=a,b,c: one comparison of the parts (issue 13 item 5)
            from planner.cli.roofline_compare import write_comparison

            jobs = [read_job(d, subdir) for d in find_job_dirs(sweep_dir, subdir)]
            sections = write_comparison(sweep_dir, jobs)
        table = summarize_sweep(
            sweep_dir,
            config=config,
            metric=self.metric,
            columns=self.columns,
            x=self.x,
            group_by=self.group_by,
            output_subdir=subdir,
            sections=sections,
        )
        failed = int((table["status"] != "ok").sum()) if len(table) else 0
        print(
            f"sweep summary: {len(table)} job(s), {failed} failed -> "
            f"{sweep_dir / CSV_FILE}, {sweep_dir / REPORT_FILE}"
        )
