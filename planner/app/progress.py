"""Progress bars for long runs, shown on a terminal only.

Bars are drawn by rich on stderr, and only when stderr is a terminal (the CLI also leaves them
out of the jobs of a Hydra sweep, which report their own progress); otherwise every update is a
no-op and nothing at all is printed, so pipes, log files, CI and tests stay clean. Bars are
transient: they disappear when the work is done, leaving the command's normal output.

Usage::

    with progress_display() as display:
        update = display.counter("Monte Carlo samples")
        run_samples(..., progress=update)          # update(done, total)
        result = simulate(..., **simulation_progress(simulate, display))  # if it has the hook
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

Update = Callable[[float, float | None], None]
"""``update(done, total)``: work done so far out of ``total`` (``None``: total unknown)."""

SimulationUpdate = Callable[[float, float], None]
"""``update(sim_time_s, last_arrival_s)``: the engine's progress hook (simulated clock, and the
time of the last arrival, after which the run drains)."""

SIMULATION_HOOK = "progress"
"""Keyword of :func:`planner.sim.engine.simulate` that takes a :data:`SimulationUpdate`."""


def on_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default: stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


def _ignore(*_args: Any) -> None:
    return None


class ProgressDisplay:
    """Progress bars on one rich console, or nothing when disabled.

    Args:
        enabled: Draw bars (``False``: every update callback is a no-op).
        console: Where to draw (default: a console on stderr).
    """

    def __init__(self, enabled: bool, console: Console | None = None) -> None:
        """Set up the bars (drawn only between :meth:`start` and :meth:`stop`)."""
        self.enabled = enabled
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=console or Console(stderr=True),
                transient=True,
            )

    def start(self) -> None:
        """Start drawing (a no-op when disabled)."""
        if self._progress is not None:
            self._progress.start()

    def stop(self) -> None:
        """Stop drawing and remove the bars (a no-op when disabled)."""
        if self._progress is not None:
            self._progress.stop()

    def _task(self, description: str, total: float | None) -> tuple[Progress, TaskID]:
        assert self._progress is not None
        return self._progress, self._progress.add_task(description, total=total, detail="")

    def counter(self, description: str, total: float | None = None, unit: str = "") -> Update:
        """A bar counting work items; returns its ``update(done, total)`` callback.

        Args:
            description: The bar's label, e.g. ``"Monte Carlo samples"``.
            total: Items expected (``None``: unknown until the first update gives it).
            unit: Shown after the ``done/total`` count, e.g. ``"samples"``.
        """
        if self._progress is None:
            return _ignore
        progress, task = self._task(description, total)

        def update(done: float, total: float | None = None) -> None:
            shown = progress.tasks[task].total if total is None else total
            count = f"{done:,.0f}" + ("" if shown is None else f"/{shown:,.0f}")
            progress.update(task, completed=done, total=shown, detail=f"{count} {unit}".rstrip())

        return update

    def simulation(self, description: str = "simulated time") -> SimulationUpdate:
        """A bar for one simulation; returns the engine's progress hook.

        The bar runs over the arrival window (simulated time up to the last arrival); after it
        the run drains the calls still in the system, which the bar shows as ``draining``.
        """
        if self._progress is None:
            return _ignore
        progress, task = self._task(description, None)

        def update(sim_time_s: float, last_arrival_s: float) -> None:
            if sim_time_s < last_arrival_s:
                detail = f"{sim_time_s:,.0f}/{last_arrival_s:,.0f} s"
            else:
                detail = f"{sim_time_s:,.0f} s, draining after the last arrival"
            progress.update(
                task,
                completed=min(sim_time_s, last_arrival_s),
                total=last_arrival_s,
                detail=detail,
            )

        return update


@contextmanager
def progress_display(
    enabled: bool | None = None, console: Console | None = None
) -> Iterator[ProgressDisplay]:
    """A :class:`ProgressDisplay` for the duration of the block.

    Args:
        enabled: Draw bars; ``None`` (the default): when stderr is a terminal (the CLI also
            turns them off in the jobs of a Hydra sweep, :mod:`planner.cli.progress`).
        console: Where to draw (default: a console on stderr).
    """
    if enabled is None:
        enabled = on_terminal()
    display = ProgressDisplay(enabled, console)
    display.start()
    try:
        yield display
    finally:
        display.stop()


def accepts_keyword(function: Callable[..., Any], name: str) -> bool:
    """Whether ``function`` takes a keyword argument ``name``."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get(name)
    if parameter is not None:
        return parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    return any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def simulation_progress(
    simulate: Callable[..., Any],
    display: ProgressDisplay | None,
    description: str = "simulated time",
) -> dict[str, Any]:
    """Keyword arguments that give ``simulate`` a progress hook drawing on ``display``.

    Empty when there is nothing to draw (no display, or disabled) or when ``simulate`` has no
    ``progress`` keyword, so ``simulate(..., **simulation_progress(simulate, display))`` works
    with and without the hook.
    """
    if display is None or not display.enabled or not accepts_keyword(simulate, SIMULATION_HOOK):
        return {}
    return {SIMULATION_HOOK: display.simulation(description)}
