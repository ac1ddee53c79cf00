"""What every console script shares: the guarded start, one-line errors, plain mappings.

Bad input exits 2 with one line; the conversion of OmegaConf nodes to plain mappings keeps
OmegaConf in ``cli/``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from planner import config
from planner.app import progress
from planner.app.exits import (
    EXIT_BAD_INPUT,
    EXIT_MACHINE_FAILED,
    bad_input_line,
    environment_failure,
)
from planner.app.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    discard_run_files,
)
from planner.app.progress import ProgressDisplay
from planner.app.sweep import JOB_ERROR_FILE, record_job_error
from planner.cli import guard
from planner.cli.hydra_repo import install_shallow_repository_copy
from planner.config import scenario
from planner.config.policy import precheck_group_overrides
from planner.config.scenario import SCENARIO_DIR
from planner.specs.errors import ConfigError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_MACHINE_FAILED",
    "JOB_ERROR_FILE",
    "SCENARIO_DIR",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
]

CONF_DIR = config.CONF_DIR
"""The config tree (found by :mod:`planner.config.resolve`)."""


def make_console() -> Console:
    """A rich console: the terminal's width on a TTY, 160 columns into a file or pipe."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def fail(error: ConfigError) -> NoReturn:
    """Print ``error`` as one line on stderr and exit with code 2."""
    print(bad_input_line(error), file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def fail_environment(error: OSError) -> NoReturn:
    """Print a file-system error as one line naming the path; exit 1 (machine) or 2 (path)."""
    line, code = environment_failure(error)
    print(line, file=sys.stderr)
    sys.exit(code)


def scenario_arguments(argv: Sequence[str], config_name: str | None = None) -> list[str]:
    """:func:`planner.config.scenario.scenario_arguments`, with Hydra's parser reading flags."""

    def config_flags(rest: list[str]) -> list[str]:
        args = guard.parse_command_line(rest)
        names = ("--config-dir", "--config-name", "--config-path")
        return [f for f in names if getattr(args, f[2:].replace("-", "_")) is not None]

    return scenario.scenario_arguments(argv, config_name, config_flags)


MULTIRUN_FLAGS = frozenset({"-m", "--multirun"})
"""Hydra's value-less multirun flag, in both spellings."""


def hoist_multirun_flag(argv: Sequence[str]) -> list[str]:
    """``argv``, with a multirun flag moved to the front where Hydra would refuse it.

    Hydra's parser (argparse's ``parse_args``) takes the overrides as one positional run, so
    ``planner-roofline model=X -m concurrency=4,16,64`` leaves the overrides after ``-m``
    unrecognised. The flag takes no value and means the same anywhere, so it goes first; a
    command line Hydra already accepts is passed on as it is.
    """
    arguments = list(argv)
    if not MULTIRUN_FLAGS.intersection(arguments):
        return arguments
    try:
        guard.parse_command_line(arguments)
    except ConfigError:
        return ["-m", *(a for a in arguments if a not in MULTIRUN_FLAGS)]
    return arguments


def precompose(
    arguments: Sequence[str], config_name: str, task_function: Callable[..., Any]
) -> None:
    """Compose every config the command line leads to, as Hydra will, and check it.

    Hydra reports a bad override over several lines with exit code 1; composing first turns it
    into one ConfigError naming the key. The composed configs, Hydra's own part included, must
    not name code or keys the app does not read (see :mod:`planner.cli.guard`).

    Raises:
        ConfigError: The overrides do not compose, or a config names code or an unknown key.
    """
    keys = guard.app_keys(CONF_DIR, config_name)
    guard.check_command_line(arguments, task_function, str(CONF_DIR), config_name, keys)


def run_guarded(
    main: Callable[[], None], argv: Sequence[str], groups: Sequence[str], config_name: str
) -> None:
    """Run a Hydra entry point with bad input reported as one line and exit code 2.

    Handles ``scenario=NAME``, refuses unknown config-group choices and checks every config
    the command line composes to before Hydra starts (see :func:`precompose`).
    """
    guard.install_source_guard()
    install_shallow_repository_copy()  # ~0.9 s off `--help` (see planner.cli.hydra_repo)
    try:
        arguments = scenario_arguments(hoist_multirun_flag(argv), config_name)
        args = guard.parse_command_line(arguments)
        if not args.shell_completion:
            overrides = [str(o) for o in args.overrides]
            precheck_group_overrides(overrides, groups, config.group_options)
        precompose(arguments, config_name, main)
    except ConfigError as error:
        fail(error)
    sys.argv = [sys.argv[0], *arguments]
    main()


def discard_run_dir() -> None:
    """Remove what Hydra wrote into this job's run directory (:func:`discard_run_files`)."""
    try:
        runtime = HydraConfig.get()
    except ValueError:  # not running under Hydra (e.g. called from a test)
        return
    out_dir = Path(runtime.runtime.output_dir)
    discard_run_files(out_dir, runtime.output_subdir, f"{runtime.job.name}.log")


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not running under Hydra
        return False


@contextmanager
def progress_display(
    enabled: bool | None = None, console: Console | None = None
) -> Iterator[ProgressDisplay]:
    """:func:`planner.app.progress.progress_display`; by default on a terminal, not in a sweep."""
    enabled = progress.on_terminal() and not in_multirun() if enabled is None else enabled
    with progress.progress_display(enabled, console) as display:
        yield display


def guarded_task(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wrap a Hydra task so bad input exits 2 with one line and leaves no run directory.

    Hydra reports any ``Exception`` from a task as a stack trace with exit code 1, but lets
    ``SystemExit`` through; so the conversion has to happen inside the task. In a sweep
    (``-m``) a failing job instead records its error in ``job_error.json`` in its own directory
    and returns, so the other jobs run and the sweep summary shows the failure as a row.
    """

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except Exception as error:
            if in_multirun():
                message = record_job_error(Path(HydraConfig.get().runtime.output_dir), error)
                print(f"error: {message}", file=sys.stderr)
                return None
            if isinstance(error, ConfigError):
                discard_run_dir()
                fail(error)
            if isinstance(error, OSError):
                discard_run_dir()
                fail_environment(error)
            raise

    return wrapper


def to_mapping(node: Any, field: str) -> dict[str, Any]:
    """A config node as a plain dict (OmegaConf stays in this layer)."""
    if isinstance(node, DictConfig):
        container = OmegaConf.to_container(node, resolve=True)
        assert isinstance(container, dict)
        return {str(k): v for k, v in container.items()}
    if isinstance(node, Mapping):
        return dict(node)
    raise ConfigError(field, f"must be a mapping, got {type(node).__name__}")
