"""Progress bars for the console scripts: :mod:`planner.app.progress`, off in a sweep's jobs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from rich.console import Console

from planner.app import progress as _progress
from planner.app.progress import ProgressDisplay, Update, on_terminal, simulation_progress

__all__ = ["ProgressDisplay", "Update", "progress_display", "simulation_progress"]


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun (whose jobs report their own ends)."""
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not running under Hydra
        return False


@contextmanager
def progress_display(
    enabled: bool | None = None, console: Console | None = None
) -> Iterator[ProgressDisplay]:
    """:func:`planner.app.progress.progress_display`; by default on a terminal, not in a sweep."""
    enabled = on_terminal() and not in_sweep() if enabled is None else enabled
    with _progress.progress_display(enabled, console) as display:
        yield display
