"""The sweep callback (``-m``): Hydra's hooks around :mod:`planner.report.sweep_files`.

Registered in ``conf/planner.yaml``, ``conf/size.yaml``, ``conf/roi.yaml`` and
``conf/roofline.yaml`` as ``hydra.callbacks.sweep_summary``. With the joblib, submitit and Ray
launchers ``on_job_end`` runs in the worker, so every job leaves its own result in its directory
and ``on_multirun_end``, in the launching process, reads them all back and writes the sweep's
table, plot and page (the files and columns are documented in :mod:`planner.app.sweep`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from planner.app.sweep import (
    CSV_FILE,
    DEFAULT_METRIC,
    JOB_ERROR_FILE,
    record_job_error,
)

log = logging.getLogger(__name__)


def sweep_override_keys(config: DictConfig) -> list[str]:
    """Keys swept by the command line (``a=1,2``, ``range``, ``choice``...) and sweeper params."""
    keys: list[str] = []
    task = OmegaConf.select(config, "hydra.overrides.task", default=None)
    if task is not None:
        try:
            parsed = OverridesParser.create().parse_overrides([str(o) for o in task])
        except HydraException:
            parsed = []
        keys += [
            o.key_or_group + (f"@{o.package}" if o.package else "")
            for o in parsed
            if o.is_sweep_override()
        ]
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
    if isinstance(params, DictConfig):
        keys += [str(k) for k in params]
    return list(dict.fromkeys(keys))


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
        """Keep the options (Hydra instantiates the callback from ``hydra.callbacks``)."""
        self.metric = str(metric)
        self.columns = None if columns is None else [str(c) for c in columns]
        self.x = None if x is None else str(x)
        self.group_by = None if group_by is None else [str(g) for g in group_by]
        self.enabled = bool(enabled)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """In a sweep, record a job that raised past the CLI's guard as ``job_error.json``.

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
        if not (out_dir / JOB_ERROR_FILE).exists():
            record_job_error(out_dir, getattr(job_return, "_return_value", None))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Aggregate every job directory of the sweep (runs in the launching process)."""
        if not self.enabled:
            return
        # Imported here: Hydra builds this callback for every run (and for --help), and the
        # sweep report needs pandas and matplotlib, which only a finished sweep should load.
        from planner.report.sweep_files import REPORT_FILE, summarize_sweep

        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            log.warning("sweep summary: no sweep directory %s", sweep_dir)
            return
        output_subdir = OmegaConf.select(config, "hydra.output_subdir", default=".hydra")
        subdir = None if output_subdir is None else str(output_subdir)
        job_name = OmegaConf.select(config, "hydra.job.name", default=None)
        node = config.get("objective")
        objective = OmegaConf.to_container(node, resolve=True) if node is not None else None
        table = summarize_sweep(
            sweep_dir,
            sweep_keys=sweep_override_keys(config),
            objective={str(k): v for k, v in objective.items()}
            if isinstance(objective, dict)
            else None,
            job_name=None if job_name is None else str(job_name),
            metric=self.metric,
            columns=self.columns,
            x=self.x,
            group_by=self.group_by,
            output_subdir=subdir,
        )
        failed = int((table["status"] != "ok").sum()) if len(table) else 0
        print(
            f"sweep summary: {len(table)} job(s), {failed} failed -> "
            f"{sweep_dir / CSV_FILE}, {sweep_dir / REPORT_FILE}"
        )
