"""Progress bars for the console scripts (:mod:`planner.app.progress`; off in a sweep's jobs)."""

from planner.app.progress import ProgressDisplay, Update, simulation_progress
from planner.cli.common import progress_display

__all__ = ["ProgressDisplay", "Update", "progress_display", "simulation_progress"]
