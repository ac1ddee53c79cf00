"""Sweeps as data: flattened summaries, the Optuna objective, job directories, the sweep table.

A sweep (``-m``) leaves one directory per job with ``summary.json``, ``job_error.json`` (bad
input or a crash caught by the CLI) or ``repeat_of.json`` (a configuration already scored,
:func:`score_once`). :func:`read_job` reads one back, :func:`sweep_table` makes the table
(one row per job: ``job``, the swept keys as given, ``status`` ``ok``/``failed``, ``error``,
``objective`` and ``constraints_met`` when the config has an ``objective`` section, the selected
summary keys flattened with dots, ``repeat_of`` when a configuration was met twice, ``job_dir``)
and :func:`write_table` writes it as CSV and Parquet. Nothing here imports Hydra: the CLI's
callback (:mod:`planner.cli.callbacks`) passes in what only Hydra knows.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from planner.app.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from planner.specs.errors import ConfigError

if TYPE_CHECKING:  # pandas is imported when a sweep is summarized, not at CLI start-up
    import pandas as pd

log = logging.getLogger(__name__)

SUMMARY_FILE: Final = "summary.json"
JOB_ERROR_FILE: Final = "job_error.json"
"""Where a failed job of a sweep records its error."""
REPEAT_FILE: Final = "repeat_of.json"
"""Where a job whose configuration an earlier job already scored names that job."""
SCORED_DIR: Final = ".scored"
"""The sweep directory's store of scored configurations (one file per configuration)."""
CSV_FILE: Final = "sweep_summary.csv"
PARQUET_FILE: Final = "sweep_summary.parquet"
DEFAULT_METRIC: Final = "trees.e2e_s.p99"
VERDICT_COLUMNS: Final = (
    "slo.tree_e2e_s",
    "slo.ttft_s",
    "slo.tpot_s",
    "slo.feasible",
    "slo.attainment",
    "stability.stable",
    "partial",
    "cost.headline.usd",
    "cost.headline.metric",
    "cost.headline.unit",
)
"""Summary keys always kept (when present): the SLO limits and what the run's verdict judges by
(attainment, stability, partial: :func:`planner.app.verdict.passes`), the headline cost."""
NO_RESULT: Final = "no result: the job left neither summary.json nor job_error.json"
OPTUNA_RESULTS_FILE: Final = "optimization_results.yaml"

Scalar = str | int | float | bool | None


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
    spec = _section(spec_node, "objective")
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
    constraints = _section(spec_node, "objective").get("constraints") or {}
    if not isinstance(constraints, Mapping):
        raise ConfigError("objective.constraints", "must map summary keys to {min, max}")
    if not constraints:
        return None
    return _shortfall(flatten(summary), constraints) == 0.0


@dataclass
class JobResult:
    """What one job of a sweep left in its directory."""

    directory: Path
    num: int | None
    overrides: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    error: str | None = None
    repeat_of: str | None = None


def _section(node: Any, field: str) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        raise ConfigError(field, f"must be a mapping, got {type(node).__name__}")
    return {str(k): v for k, v in node.items()}


def parse_override(text: str) -> tuple[str, str]:
    """``(key, value as given)`` of one override; ``+``/``~``/``++`` prefixes dropped from the key.

    ``group@package=value`` keeps ``group@package`` as its key (as Hydra names it).
    """
    raw_key, _, raw_value = text.partition("=")
    return raw_key.strip().lstrip("+~"), raw_value


def _load_yaml(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:  # unreadable or half-written: treated as missing
        log.warning("cannot read %s: %s", path, error)
        return None


def read_job(job_dir: Path, output_subdir: str | None = ".hydra") -> JobResult:
    """Read a job directory: its overrides, number, and ``summary.json`` or ``job_error.json``.

    A directory with neither result file is a job that crashed or never finished: its error
    is :data:`NO_RESULT`. A result file that cannot be parsed becomes the row's error. A job that
    repeated a configuration (``repeat_of.json``) gets the result of the job that scored it.
    """
    num: int | None = int(job_dir.name) if job_dir.name.isdigit() else None
    overrides: dict[str, str] = {}
    if output_subdir:
        meta = job_dir / output_subdir
        listed = _load_yaml(meta / "overrides.yaml")
        if isinstance(listed, list):
            overrides = dict(parse_override(str(item)) for item in listed)
        hydra_cfg = _load_yaml(meta / "hydra.yaml")
        job = hydra_cfg.get("hydra", {}).get("job", {}) if isinstance(hydra_cfg, dict) else {}
        value = job.get("num") if isinstance(job, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            num = value
    result = JobResult(job_dir, num, overrides)
    summary_path, error_path = job_dir / SUMMARY_FILE, job_dir / JOB_ERROR_FILE
    try:
        if (job_dir / REPEAT_FILE).exists():
            repeat = json.loads((job_dir / REPEAT_FILE).read_text(encoding="utf-8"))
            original = (job_dir / str(repeat["job_dir"])).resolve()
            result.repeat_of = original.name
            summary_path, error_path = original / SUMMARY_FILE, original / JOB_ERROR_FILE
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
    except (OSError, ValueError, KeyError, TypeError) as error:
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
    for name in (SUMMARY_FILE, JOB_ERROR_FILE, REPEAT_FILE):
        found.update(path.parent for path in sweep_dir.rglob(name))
    root = sweep_dir.resolve()
    return sorted(
        d
        for d in found
        if d.resolve() != root and ".submitit" not in d.relative_to(sweep_dir).parts
    )


def swept_keys(sweep_keys: Sequence[str], jobs: Sequence[JobResult]) -> list[str]:
    """The swept keys: the sweep's own (``sweep_keys``, command line order), then others.

    A key the jobs' overrides give different values is swept too, whatever the config said.
    """
    keys = list(sweep_keys)
    overridden = dict.fromkeys(key for job in jobs for key in job.overrides)
    keys += [k for k in overridden if len({job.overrides.get(k) for job in jobs}) > 1]
    return list(dict.fromkeys(keys))


def record_job_error(job_dir: Path, error: object) -> str:
    """Record a sweep job's failure as ``job_error.json`` (one line); return the line."""
    message = " ".join(str(error).split()) or type(error).__name__
    atomic_write_json(job_dir / JOB_ERROR_FILE, {"error": message, "type": type(error).__name__})
    return message


def config_key(config: Mapping[str, Any]) -> str:
    """A stable hash of a job's resolved configuration (its ``hydra`` node excluded).

    Two jobs with the same key simulate the same thing with the same seed: the planner is
    deterministic given its configuration, so the second would only repeat the first.
    """
    plain = {str(k): v for k, v in config.items() if k != "hydra"}
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def score_once(
    sweep_dir: Path,
    job_dir: Path,
    config: Mapping[str, Any],
    score: Callable[[], float | None],
) -> float | None:
    """The job's objective, from the sweep's store when an earlier job scored this configuration.

    The Optuna sampler may propose a configuration it has already tried (TPE on integer and
    categorical parameters often does). The store (``<sweep_dir>/.scored/<config_key>.json``,
    written when a job finishes) returns the stored value without simulating, and the job
    leaves ``repeat_of.json`` naming the job that scored it (its row in the sweep table shows
    that job's figures and a ``repeat_of`` column). Two identical configurations running at the
    same moment (a parallel launcher's batch) are both simulated: the store only knows finished
    jobs.

    Args:
        sweep_dir: The multirun directory (holds the store).
        job_dir: This job's directory.
        config: The job's resolved configuration (plain mappings).
        score: Runs the job (writing its files) and returns its objective.

    Returns:
        The stored or the newly computed objective (``None``: the job has no objective).
    """
    entry = sweep_dir / SCORED_DIR / f"{config_key(config)}.json"
    if entry.exists():
        stored = json.loads(entry.read_text(encoding="utf-8"))
        original = sweep_dir / str(stored["job_dir"])
        atomic_write_json(
            job_dir / REPEAT_FILE,
            {
                "job_dir": str(Path(_relative(original, job_dir))),
                "objective": stored["objective"],
            },
        )
        value = stored["objective"]
        return None if value is None else float(value)
    value = score()
    atomic_write_json(entry, {"job_dir": _relative(job_dir, sweep_dir), "objective": value})
    return value


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` (``..`` where needed), so a moved sweep keeps its links."""
    return os.path.relpath(path.resolve(), start.resolve())


def _typed_column(values: list[Any]) -> pd.Series:
    """A column with a type Parquet and CSV keep.

    Integers stay integers next to missing values (``Int64``), booleans are ``boolean``, and a
    mix of text and numbers becomes text.
    """
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
        if job.repeat_of is not None:
            row["repeat_of"] = job.repeat_of
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


def optuna_notes(sweep_dir: Path) -> list[str]:
    """The Optuna sweeper's best trial, from ``optimization_results.yaml`` (none: no note)."""
    data = _load_yaml(sweep_dir / OPTUNA_RESULTS_FILE)
    if not isinstance(data, dict) or not isinstance(data.get("best_params"), dict):
        return []
    params = ", ".join(f"{k}={v}" for k, v in data["best_params"].items())
    return [f"Optuna best trial: {params} -> {data.get('best_value')}"]
