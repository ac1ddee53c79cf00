"""What every console script shares: where the configs live, turning config into typed specs,
one-line errors with exit code 2, and atomic output files.

This is the only layer that imports Hydra/OmegaConf or touches the file system.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from planner.perf.efficiency import EfficiencyFactors, profile_file
from planner.specs.errors import ConfigError, require_choice
from planner.specs.hardware import System
from planner.specs.model import Model

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"
"""Top-level ``conf/`` (the package is installed editable from the repo, see Makefile)."""

EXIT_BAD_INPUT = 2


def make_console() -> Console:
    """A rich console: the terminal's width on a TTY, 160 columns into a file or pipe."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def group_options(group: str) -> list[str]:
    """Names available in config group ``group`` (the YAML file stems under ``conf/group``)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


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
        if not sep or key not in groups:
            continue
        for choice in value.split(","):
            require_choice(key, choice.strip(), group_options(key))


def fail(error: ConfigError) -> NoReturn:
    """Print ``error`` as one line on stderr and exit with code 2."""
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


SCENARIO_DIR = REPO_ROOT / "scenarios"


def scenario_arguments(argv: Sequence[str]) -> list[str]:
    """Translate ``scenario=NAME`` into Hydra's ``--config-dir scenarios --config-name NAME``.

    A scenario file is a primary config that extends one of ``conf/``'s (``defaults: [roi,
    ...]``). Hydra's parser wants its flags before the overrides, so they go first.

    Raises:
        ConfigError: NAME is not a file in ``scenarios/``.
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
    return flags + rest


ALLOWED_TARGET_PREFIXES = ("planner.", "hydra_plugins.", "hydra._internal.", "optuna.samplers.")
"""Where a ``_target_`` in any config (Hydra's own included) may point: the planner's classes,
Hydra's launchers, sweepers and callbacks, and the Optuna sweeper's samplers. Config files are
data, never code to run."""


def check_targets(node: Any, path: str = "") -> None:
    """Refuse any ``_target_`` outside :data:`ALLOWED_TARGET_PREFIXES` (walks dicts and lists).

    Raises:
        ConfigError: Naming the offending ``..._target_`` key and what is allowed.
    """
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_" and not str(value).startswith(ALLOWED_TARGET_PREFIXES):
                raise ConfigError(
                    where,
                    f"{value!r} is not allowed; configs are data and may only name "
                    f"{', '.join(p + '*' for p in ALLOWED_TARGET_PREFIXES)}",
                )
            check_targets(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_targets(value, f"{path}[{index}]")


def _first_of_each_sweep(overrides: Sequence[str]) -> list[str]:
    """The first job's overrides of a sweep (``a=1,2`` -> ``a=1``), for a check compose."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    out = []
    for override in parsed:
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            out.append(f"{override.get_key_element()}={first}")
        else:
            out.append(override.input_line or "")
    return out


def precompose(arguments: Sequence[str], config_name: str) -> None:
    """Compose the config once with Hydra's compose API before Hydra starts.

    Hydra reports a bad override (an unknown key, a malformed value) over several lines with exit
    code 1; composing first turns it into one ConfigError naming the key. The composed config,
    Hydra's own part included, must not name a ``_target_`` outside the planner and Hydra's
    plugins (see :func:`check_targets`). For a sweep, the first job's overrides are composed.

    Raises:
        ConfigError: The overrides do not compose, or a config names code it may not.
    """
    config_dir, overrides = CONF_DIR, []
    items = iter(arguments)
    for arg in items:
        if arg in ("--config-dir", "-cd"):
            config_dir = Path(next(items))
        elif arg in ("--config-name", "-cn"):
            config_name = next(items)
        elif not arg.startswith("-"):
            overrides.append(arg)
    if config_dir != CONF_DIR:
        overrides.append(f"hydra.searchpath=[file://{CONF_DIR}]")
    try:
        overrides = _first_of_each_sweep(overrides)
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    except HydraException as error:
        raise _composition_error(error) from None
    check_targets(OmegaConf.to_container(cfg, resolve=False))


def _composition_error(error: HydraException) -> ConfigError:
    """One-line ConfigError for a Hydra composition or override-parsing error."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    cause = str(error.__cause__ or "")
    full_key = re.search(r"full_key: (\S+)", cause)
    quoted = re.search(r"override '([^']+)'", first)
    field = full_key.group(1) if full_key else quoted.group(1) if quoted else "overrides"
    if "not in struct" in cause:
        return ConfigError(
            field,
            "unknown key (to replace a whole mapping: ~KEY, then +KEY=...)",
        )
    return ConfigError(field, first)


def run_guarded(
    main: Callable[[], None], argv: Sequence[str], groups: Sequence[str], config_name: str
) -> None:
    """Run a Hydra entry point with bad input reported as one line and exit code 2.

    Handles ``scenario=NAME``, refuses unknown config-group choices and composes the overrides
    once before Hydra starts (see :func:`precompose`).
    """
    try:
        arguments = scenario_arguments(argv)
        precheck_group_overrides(arguments, groups)
        precompose(arguments, config_name)
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
    return Model.from_dict(to_mapping(cfg.get("model"), "model"))


def load_system(cfg: DictConfig) -> System:
    """The ``hardware`` group as a validated :class:`System`."""
    return System.from_dict(to_mapping(cfg.get("hardware"), "hardware"))


def load_efficiency(family: str, stack: str | None = None) -> EfficiencyFactors:
    """The fitted factors of an accelerator family and serving stack from ``conf/efficiency/``.

    ``stack=None`` takes the family's default profile (``<family>.yaml``); a borrowed profile
    comes back with ``calibrated=False`` (``planner.perf.efficiency.BORROWED``).
    """
    name, calibrated = profile_file(family, stack)
    path = CONF_DIR / "efficiency" / name
    if not path.exists():
        raise ConfigError(
            "hardware.accelerator.family", f"no fitted factors for {family!r} ({path})"
        )
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(data, dict)
    factors = EfficiencyFactors.from_dict(
        {str(k): v for k, v in data.items()}, f"efficiency[{family}]"
    )
    return factors if calibrated else factors.replace(calibrated=False)


def _output_mode() -> int:
    """rw-r--r-- less the process umask: what an ordinary open() would have created."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


OUTPUT_MODE = _output_mode()
"""Permissions of output files (mkstemp's temporary files are 0600 until renamed)."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename.

    A reader never sees a half-written file; an interrupted write leaves no file at ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp_name, OUTPUT_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp_name, OUTPUT_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
