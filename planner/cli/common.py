"""What every console script shares: where the configs live, turning config into typed specs,
one-line errors with exit code 2, and atomic output files.

This is the only layer that imports Hydra/OmegaConf or touches the file system.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from planner import config
from planner.cli import guard
from planner.cli.hydra_repo import install_shallow_repository_copy
from planner.perf.borrowed import ResolvedEfficiency
from planner.perf.efficiency import EfficiencyFactors
from planner.specs.errors import ConfigError, require_choice
from planner.specs.hardware import System
from planner.specs.model import Model

CONF_DIR = config.CONF_DIR
"""The config tree (found by :mod:`planner.config.resolve`)."""

EXIT_BAD_INPUT = 2
EXIT_MACHINE_FAILED = 1
"""Exit code when the input was fine but the machine failed (disk full, I/O error)."""

MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EFBIG})
"""``OSError`` numbers that blame the machine, not the path the user gave (exit code 1)."""


def make_console() -> Console:
    """A rich console: the terminal's width on a TTY, 160 columns into a file or pipe."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def group_options(group: str) -> list[str]:
    """The option names of a config group (the YAML file stems in ``conf/<group>/``)."""
    return config.group_options(group)


def precheck_group_overrides(argv: Sequence[str], groups: Sequence[str]) -> None:
    """Refuse unknown config-group choices before Hydra composes anything.

    Hydra's own message for an unknown option spans several lines; this names the field and the
    allowed values on one line. Comma-separated sweep values are checked one by one.

    Raises:
        ConfigError: An override ``group=value`` names no file in ``conf/group``.
    """
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or key not in groups or re.fullmatch(r"\w+\(.*\)", value.strip()):
            continue  # glob(*), choice(...): Hydra expands them, the guard composes each
        for choice in value.split(","):
            require_choice(key, choice.strip(), group_options(key))


def fail(error: ConfigError) -> NoReturn:
    """Print ``error`` as one line on stderr and exit with code 2."""
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


SCENARIO_DIR = Path(str(resources.files("planner.scenarios")))
"""``scenarios/``, found like :data:`CONF_DIR`."""


def scenario_arguments(argv: Sequence[str]) -> list[str]:
    """Translate ``scenario=NAME`` into Hydra's ``--config-dir scenarios --config-name NAME``.

    A scenario file is a primary config that extends one of ``conf/``'s (``defaults: [roi,
    ...]``). Hydra's parser wants its flags before the overrides, so they go first.

    Raises:
        ConfigError: NAME is not a file in ``scenarios/``, or the command line also names a
            config by flag (which one would win is not obvious, so neither does).
    """
    flags: list[str] = []
    rest: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key == "scenario":
            options = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
            require_choice("scenario", value, options)
            flags += ["--config-dir", str(SCENARIO_DIR), "--config-name", value]
        else:
            rest.append(arg)
    if flags:
        args = guard.parse_command_line(rest)
        for flag, given in (
            ("--config-dir", args.config_dir),
            ("--config-name", args.config_name),
            ("--config-path", args.config_path),
        ):
            if given is not None:
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
    guard.check_command_line(
        arguments,
        task_function,
        str(CONF_DIR),
        config_name,
        guard.app_keys(CONF_DIR, config_name),
    )


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
        arguments = scenario_arguments(argv)
        args = guard.parse_command_line(arguments)
        precheck_group_overrides([str(o) for o in args.overrides], groups)
        precompose(arguments, config_name, main)
    except ConfigError as error:
        fail(error)
    sys.argv = [sys.argv[0], *arguments]
    main()


def fail_environment(error: OSError) -> NoReturn:
    """Print a file-system error as one line naming the path; exit 1 (machine) or 2 (path)."""
    where = f"{error.filename}: " if error.filename else ""
    cause = error.strerror or str(error) or type(error).__name__
    print(" ".join(f"error: {where}{cause}".split()), file=sys.stderr)
    sys.exit(EXIT_MACHINE_FAILED if error.errno in MACHINE_ERRNOS else EXIT_BAD_INPUT)


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


JOB_ERROR_FILE = "job_error.json"
"""Where a failed job of a sweep records its error (read by the sweep callback)."""


def _in_multirun() -> bool:
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
            if _in_multirun():
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


def load_model(cfg: DictConfig) -> Model:
    """The ``model`` group as a validated :class:`Model`."""
    return config.model(to_mapping(cfg.get("model"), "model"))


def load_system(cfg: DictConfig) -> System:
    """The ``hardware`` group as a validated :class:`System`."""
    return config.system(to_mapping(cfg.get("hardware"), "hardware"))


def load_resolved_efficiency(family: str, stack: str | None = None) -> ResolvedEfficiency:
    """A family's factors, fitted or borrowed, with ``calibrated`` and ``borrowed_from``."""
    return config.resolved_efficiency(family, stack)


def load_efficiency(family: str, stack: str | None = None) -> EfficiencyFactors:
    """The factors of an accelerator family and serving stack, fitted or borrowed
    (:func:`planner.config.resolved_efficiency`)."""
    return config.efficiency(family, stack)


def _output_mode() -> int:
    """rw-r--r-- less the process umask: what an ordinary open() would have created."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


OUTPUT_MODE = _output_mode()
"""Permissions of output files (mkstemp's temporary files are 0600 until renamed)."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename.

    A reader never sees a half-written file; an interrupted or failed write leaves no file at
    ``path`` and no temporary file.

    Raises:
        OSError: The write failed; ``filename`` is ``path``, ``errno`` the cause (e.g. ENOSPC).
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename.

    Raises:
        OSError: The write failed; ``filename`` is ``path``, ``errno`` the cause (e.g. ENOSPC).
    """
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp_name, OUTPUT_MODE)
        os.replace(tmp_name, path)
    except BaseException as error:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise


def atomic_write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
