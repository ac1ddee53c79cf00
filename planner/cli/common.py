"""What every console script shares: the configs, the guarded start, one-line errors with exit
code 2, and the conversion of OmegaConf nodes to plain mappings (OmegaConf stays in ``cli/``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from planner import config
from planner.app.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from planner.app.sweep import JOB_ERROR_FILE
from planner.cli import guard
from planner.cli.hydra_repo import install_shallow_repository_copy
from planner.config.policy import precheck_group_overrides
from planner.perf.efficiency import EfficiencyFactors
from planner.specs.errors import ConfigError, require_choice

__all__ = ["JOB_ERROR_FILE", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]

CONF_DIR = config.CONF_DIR
"""The config tree (found by :mod:`planner.config.resolve`)."""
SCENARIO_DIR = Path(str(resources.files("planner.scenarios")))
"""``scenarios/``, found like :data:`CONF_DIR`."""
COMMANDS = {
    "planner": "planner",
    "size": "planner-size",
    "roi": "planner-roi",
    "roofline": "planner-roofline",
}
"""The console script of each primary config in ``conf/``."""

EXIT_BAD_INPUT = 2
EXIT_MACHINE_FAILED = 1
"""Exit code when the input was fine but the machine failed (disk full, I/O error)."""
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EFBIG})
"""``OSError`` numbers that blame the machine, not the path the user gave (exit code 1)."""


def make_console() -> Console:
    """A rich console: the terminal's width on a TTY, 160 columns into a file or pipe."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def fail(error: ConfigError) -> NoReturn:
    """Print ``error`` as one line on stderr and exit with code 2."""
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def fail_environment(error: OSError) -> NoReturn:
    """Print a file-system error as one line naming the path; exit 1 (machine) or 2 (path)."""
    where = f"{error.filename}: " if error.filename else ""
    cause = error.strerror or str(error) or os.strerror(error.errno or 0)
    print(" ".join(f"error: {where}{cause}".split()), file=sys.stderr)
    sys.exit(EXIT_MACHINE_FAILED if error.errno in MACHINE_ERRNOS else EXIT_BAD_INPUT)


def scenario_tool(name: str) -> str | None:
    """The primary config a scenario file extends (the first entry of its ``defaults``)."""
    data = yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text(encoding="utf-8")) or {}
    first = next(iter(data.get("defaults") or []), None)
    return first if isinstance(first, str) and first in COMMANDS else None


def scenario_arguments(argv: Sequence[str], config_name: str | None = None) -> list[str]:
    """Translate ``scenario=NAME`` into Hydra's ``--config-dir scenarios --config-name NAME``.

    A scenario file is a primary config that extends one of ``conf/``'s (``defaults: [roi,
    ...]``). Hydra's parser wants its flags before the overrides, so they go first.

    Raises:
        ConfigError: NAME is not a file in ``scenarios/``, it belongs to another console script
            than ``config_name``'s, or the command line also names a config by flag (which one
            would win is not obvious, so neither does).
    """
    flags: list[str] = []
    rest: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key != "scenario":
            rest.append(arg)
            continue
        require_choice("scenario", value, sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
        tool = scenario_tool(value)
        if config_name is not None and tool is not None and tool != config_name:
            command = f"{COMMANDS[tool]} scenario={value}"
            raise ConfigError(
                "scenario", f"{value} is a {COMMANDS[tool]} scenario: run `{command}`"
            )
        flags += ["--config-dir", str(SCENARIO_DIR), "--config-name", value]
    if flags:
        args = guard.parse_command_line(rest)
        for flag in ("--config-dir", "--config-name", "--config-path"):
            if getattr(args, flag[2:].replace("-", "_")) is not None:
                raise ConfigError("scenario", f"cannot be combined with {flag}")
        if len(flags) > 4:
            raise ConfigError("scenario", "given more than once")
    return flags + rest


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
        arguments = scenario_arguments(argv, config_name)
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
    """Remove what Hydra wrote into this job's run directory before the job failed.

    Only Hydra's own files (``.hydra/`` and the job log) are removed, and the directory itself
    only if that leaves it empty, so a run directory pointed at an existing folder is safe.
    """
    try:
        runtime = HydraConfig.get()
    except ValueError:  # not running under Hydra (e.g. called from a test)
        return
    out_dir = Path(runtime.runtime.output_dir)
    for temporary in out_dir.glob(".*.tmp"):  # a writer interrupted by the failure
        temporary.unlink(missing_ok=True)
    if runtime.output_subdir:
        shutil.rmtree(out_dir / runtime.output_subdir, ignore_errors=True)
    (out_dir / f"{runtime.job.name}.log").unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: the folder holds other things
        out_dir.rmdir()


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not running under Hydra
        return False


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
                message = " ".join(str(error).split()) or type(error).__name__
                out_dir = Path(HydraConfig.get().runtime.output_dir)
                atomic_write_json(
                    out_dir / JOB_ERROR_FILE, {"error": message, "type": type(error).__name__}
                )
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


def load_efficiency(family: str, stack: str | None = None) -> EfficiencyFactors:
    """The factors of an accelerator family and serving stack, fitted or borrowed."""
    return config.efficiency(family, stack)
