"""Configs are data: the policy every console script's guard applies to the configs it composes.

Threat model: a config (a YAML file given with ``--config-dir``/``scenario=``, or an override on a
command line copied from someone else) may choose values, config-group options, the documented
launchers and sweepers, and where outputs go; it may not make the planner import or call code of
its choosing, write files under names of its choosing, or set up a shell or environment.

Hydra turns config into code in a handful of places: ``_target_`` nodes (``hydra.callbacks``,
``hydra.launcher``, ``hydra.sweeper`` and the Optuna sampler, instantiated recursively), the
logging configs (``logging.config.dictConfig`` resolves ``class``, ``()`` and ``ext://``), config
sources (``pkg://`` and ``structured://`` import a module), the Optuna sweeper's
``custom_search_space`` (a dotted function name) and ``storage`` (a database file), job
environment variables, the SLURM ``setup`` lines and Ray's ``init``/``remote`` options.

The CLI's guard (:mod:`planner.cli.guard`) composes, with Hydra's own parser, search path and
composition, the master config and one config per value of every sweep, turns each into a plain
tree (interpolations kept as :class:`Interpolation`, so a value built by one cannot hide) and
calls :func:`check_config` here; so the form of the command line does not matter. Every refusal
is a :class:`ConfigError` naming the dotted field. Nothing here imports Hydra or OmegaConf.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import inspect
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from planner.specs.errors import ConfigError, require_choice


class Unresolved:
    """An interpolation that does not resolve before Hydra's run (or a ``???`` value)."""

    def __repr__(self) -> str:
        """``<unresolved>``, for error messages."""
        return "<unresolved>"


UNRESOLVED: Final = Unresolved()


@dataclass(frozen=True)
class Interpolation:
    """An interpolated value: its text as written and what it resolves to (or UNRESOLVED)."""

    raw: str
    resolved: Any


Locate = Callable[[str], Any]
"""Imports a dotted name as Hydra's ``instantiate`` would (the guard passes Hydra's)."""


LAUNCHERS = {
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher": (
        "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    ),
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher": (
        "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    ),
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher": (
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    ),
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher": (
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    ),
    "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher": (
        "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    ),
}
"""Launchers docs/sweeps.md documents (basic, joblib, submitit_local/slurm, ray; not ray_aws):
the name a config may give -> where the class is defined (``__module__.__qualname__``)."""

SWEEPERS = {
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper": (
        "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    ),
    "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper": (
        "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    ),
}
"""Hydra's grid sweeper and the Optuna sweeper (``hydra/sweeper=basic|optuna``)."""

SAMPLERS = {
    "optuna.samplers.TPESampler": "optuna.samplers._tpe.sampler.TPESampler",
    "optuna.samplers.RandomSampler": "optuna.samplers._random.RandomSampler",
    "optuna.samplers.CmaEsSampler": "optuna.samplers._cmaes.CmaEsSampler",
    "optuna.samplers.GridSampler": "optuna.samplers._grid.GridSampler",
    "optuna.samplers.NSGAIISampler": "optuna.samplers._nsga2.NSGAIISampler",
    "optuna.samplers.MOTPESampler": "optuna.samplers._tpe.multi_objective_sampler.MOTPESampler",
}
"""The samplers of the Optuna sweeper's ``hydra/sweeper/sampler`` group (optuna 2.10)."""

CALLBACKS = {"planner.cli.callbacks.SweepSummary": "planner.cli.callbacks.SweepSummary"}
"""The planner's sweep callback (docs/sweeps.md); Hydra adds no callback of its own."""

ALLOWED_TARGETS: dict[str, dict[str, str]] = {
    "hydra.launcher": LAUNCHERS,
    "hydra.sweeper": SWEEPERS,
    "hydra.sweeper.sampler": SAMPLERS,
    "hydra.callbacks.*": CALLBACKS,
}
"""Where a ``_target_`` may stand (``*``: any one key) -> the names allowed there. Nowhere else."""

INSTANTIATE_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")
"""Keys Hydra's ``instantiate`` reads; only ``_target_``, and only where allowed, may appear."""

CONFIG_SOURCE_MODULES = {"pkg": ("hydra.conf",), "structured": ("",)}
"""Config sources that import a module: only Hydra's own default search-path entries."""

LOG_CLASSES = ("logging.StreamHandler", "logging.FileHandler")
LOG_STREAMS = ("ext://sys.stdout", "ext://sys.stderr")
LOG_FILENAMES = ("${hydra.runtime.output_dir}/${hydra.job.name}.log", "hydra-${hydra.job.name}.log")
"""What Hydra's own logging configs use: a log file may only have Hydra's fixed names."""

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
"""``hydra.job.env_set`` may only set thread counts (PYTHONPATH, LD_PRELOAD... would run code)."""

RAY_INIT_KEYS = (
    "address",
    "num_cpus",
    "num_gpus",
    "include_dashboard",
    "namespace",
    "ignore_reinit_error",
    "logging_level",
    "object_store_memory",
)
RAY_REMOTE_KEYS = ("num_cpus", "num_gpus", "memory", "max_calls", "max_retries")
"""Ray options that size resources; ``runtime_env`` and the like (setup hooks, pip) run code."""

SETUP_LINE = re.compile(r"(source|\.) [\w./~-]+/bin/activate|module load [\w./-]+")
"""A SLURM ``setup`` line may activate a virtualenv or load a module (docs/sweeps.md), no more."""

SAFE_NAME = re.compile(r"[\w.-]{1,128}")
SQLITE_STORAGE = re.compile(r"sqlite:///[\w./~-]+\.db")

PRIMARY_EXTRA_KEYS = {
    "planner": ("study", "objective"),
    "size": ("scenario", "sizing", "workload", "failures", "economics"),
    "roi": ("scenario",),
    "roofline": ("scenario",),
}
"""Top-level keys an app reads beyond those of its ``conf/<app>.yaml`` (scenario files set them)."""


SHELLS: Final = ("bash", "fish", "zsh")
"""Shells with a Hydra completion plugin: ``--shell-completion install|uninstall|query=SHELL``."""


def check_shell_completion(overrides: Sequence[str]) -> None:
    """Allow ``--shell-completion`` in Hydra's documented forms only (one ``VERB=SHELL``).

    Raises:
        ConfigError: Anything else follows the flag.
    """
    forms = {f"{verb}={shell}" for verb in ("install", "uninstall", "query") for shell in SHELLS}
    if len(overrides) != 1 or overrides[0] not in forms:
        choices = f"install|uninstall|query={'|'.join(SHELLS)}"
        raise ConfigError("--shell-completion", f"takes one of {choices}")


def check_config_source(scheme: str, path: str) -> None:
    """Refuse a ``pkg://``/``structured://`` search-path entry outside Hydra's own defaults.

    Raises:
        ConfigError: The entry would import a module of the config's choosing.
    """
    module = path.removeprefix(f"{scheme}://").replace("/", ".").rstrip(".")
    if module not in CONFIG_SOURCE_MODULES.get(scheme, ()):
        raise ConfigError(
            "hydra.searchpath",
            f"{path} is not allowed (it imports a module); use file:// directories",
        )


def precheck_group_overrides(
    overrides: Sequence[str], groups: Sequence[str], options: Callable[[str], Sequence[str]]
) -> None:
    """Refuse unknown config-group choices on one line, before anything is composed.

    Hydra's own message for an unknown option spans several lines; this names the field and the
    allowed values. Comma-separated sweep values are checked one by one; ``glob(*)`` and
    ``choice(...)`` are left to Hydra, and the guard then composes each value.

    Args:
        overrides: The command line's overrides.
        groups: The config groups the app has.
        options: A group's option names (the YAML stems in ``conf/<group>/``).

    Raises:
        ConfigError: An override ``group=value`` names no option of ``group``.
    """
    for arg in overrides:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or key not in groups or re.fullmatch(r"\w+\(.*\)", value.strip()):
            continue
        for choice in value.split(","):
            require_choice(key, choice.strip(), options(key))


def resolved(value: Any) -> Any:
    """``value`` with an :class:`Interpolation` replaced by what it resolves to."""
    return value.resolved if isinstance(value, Interpolation) else value


def select(tree: Any, dotted: str) -> Any:
    """The value at ``dotted`` (interpolations resolved on the way); None where absent."""
    node = resolved(tree)
    for part in dotted.split(".") if dotted else []:
        node = resolved(node.get(part)) if isinstance(node, Mapping) else None
    return None if node is UNRESOLVED else node


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value as written) for every entry; an interpolation's value is walked too."""
    node = resolved(node)
    if isinstance(node, Mapping):
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in node.items()]
    elif isinstance(node, list):
        items = [(f"[{i}]", v) for i, v in enumerate(node)]
    else:
        return
    for name, value in items:
        where = (f"{path}{name}" if name.startswith("[") else f"{path}.{name}") if path else name
        yield where, value
        yield from walk(value, where)


def check_config(
    tree: Mapping[str, Any], locate: Locate, primary_keys: Sequence[str] | None = None
) -> None:
    """Refuse a composed config (``hydra`` node included) that could run code.

    Args:
        tree: The composed config as plain mappings and :class:`Interpolation` values.
        locate: Imports a ``_target_`` name (to check what it resolves to).
        primary_keys: Top-level keys the app reads (None: no top-level key check).

    Raises:
        ConfigError: Naming the dotted field and what is allowed there.
    """
    for path, _ in walk(tree):
        if path.rsplit(".", 1)[-1] in INSTANTIATE_KEYS:
            _check_instantiate_key(path)
    for location, allowed in ALLOWED_TARGETS.items():
        for path, node in _select_all(tree, location):
            if not isinstance(node, Mapping) or "_target_" not in node:
                raise ConfigError(f"{path}._target_", _allowed_text(allowed))
            _check_target(f"{path}._target_", node, allowed, locate)
    _check_hydra_node(tree)
    if primary_keys is not None:
        check_top_level_keys(tree, primary_keys)


def _check_instantiate_key(path: str) -> None:
    parent, _, key = path.rpartition(".")
    if key == "_target_" and any(_matches(parent, location) for location in ALLOWED_TARGETS):
        return
    if key == "_partial_" and parent == "hydra.sweeper.sampler":
        return  # Hydra's GridSampler config: the sweeper supplies the search space
    raise ConfigError(
        path,
        "not allowed: configs are data; instantiation is limited to hydra.launcher, "
        "hydra.sweeper(.sampler) and hydra.callbacks.* with allowlisted targets",
    )


def _matches(path: str, location: str) -> bool:
    parts, pattern = path.split("."), location.split(".")
    return len(parts) == len(pattern) and all(
        p == q or q == "*" for p, q in zip(parts, pattern, strict=False)
    )


def _select_all(tree: Mapping[str, Any], location: str) -> Iterator[tuple[str, Any]]:
    if location.endswith(".*"):
        parent = select(tree, location[:-2])
        if isinstance(parent, Mapping):
            for key, value in parent.items():
                yield f"{location[:-2]}.{key!s}", resolved(value)
        elif parent is not None:
            raise ConfigError(location[:-2], "must be a mapping of callbacks")
        return
    node = select(tree, location)
    if node is not None:
        yield location, node


def _allowed_text(allowed: Mapping[str, str]) -> str:
    return "must be one of " + ", ".join(sorted(allowed))


def _check_target(
    path: str, node: Mapping[str, Any], allowed: Mapping[str, str], locate: Locate
) -> None:
    """The ``_target_`` must be a literal allowlisted name resolving to the allowlisted object."""
    value = node["_target_"]
    if isinstance(value, Interpolation):
        raise ConfigError(
            path, f"must be a literal name, not an interpolation; {_allowed_text(allowed)}"
        )
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(
            path, f"{value!r} is not allowed (configs are data); {_allowed_text(allowed)}"
        )
    try:
        target = locate(value)  # the same import Hydra is about to do for this name
    except (ImportError, ValueError) as error:
        raise ConfigError(path, f"{value!r} is not installed ({type(error).__name__})") from None
    defined_at = f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', '')}"
    if defined_at != allowed[value]:
        raise ConfigError(path, f"{value!r} resolves to {defined_at}, not {allowed[value]}")
    parameters = inspect.signature(target).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        where = path.removesuffix("._target_")
        known = [name for name in parameters if name != "self"]
        for key in node:
            if str(key) not in INSTANTIATE_KEYS and str(key) not in known:
                raise ConfigError(f"{where}.{key!s}", unknown_key_problem(str(key), known))


def _plain_name(field: str, value: Any, dots: bool = True) -> None:
    if value is not None and (
        not SAFE_NAME.fullmatch(str(value)) or (not dots and ".." in str(value))
    ):
        raise ConfigError(field, f"must be a plain name ([A-Za-z0-9_.-]), got {value!r}")


def _check_hydra_node(tree: Mapping[str, Any]) -> None:
    """Logging, environment, file names and plugin options that would run or write code."""
    for section in ("hydra.job_logging", "hydra.hydra_logging"):
        node = select(tree, section)
        if isinstance(node, Mapping):
            _check_logging(section, node)
    for name in select(tree, "hydra.job.env_set") or {}:
        if str(name) not in ENV_VARS:
            raise ConfigError(
                f"hydra.job.env_set.{name}", f"not allowed; only {', '.join(ENV_VARS)}"
            )
    job_name = select(tree, "hydra.job.name")
    _plain_name("hydra.job.name", job_name, dots=False)  # a path component of the run dir
    subdir = select(tree, "hydra.output_subdir")
    if subdir is not None and (Path(str(subdir)).is_absolute() or ".." in Path(str(subdir)).parts):
        raise ConfigError(
            "hydra.output_subdir", f"must be a relative name inside the run dir, got {subdir!r}"
        )
    sweeper = select(tree, "hydra.sweeper")
    if isinstance(sweeper, Mapping):
        if resolved(sweeper.get("custom_search_space")) is not None:
            raise ConfigError(
                "hydra.sweeper.custom_search_space", "not allowed (it names code); use params"
            )
        storage = resolved(sweeper.get("storage"))
        if storage is not None and not SQLITE_STORAGE.fullmatch(str(storage)):
            raise ConfigError(
                "hydra.sweeper.storage", f"must be null or sqlite:///PATH.db, got {storage!r}"
            )
        _plain_name("hydra.sweeper.study_name", resolved(sweeper.get("study_name")))
    _check_launcher(tree)


def _check_launcher(tree: Mapping[str, Any]) -> None:
    launcher = select(tree, "hydra.launcher")
    if not isinstance(launcher, Mapping):
        return
    for line in resolved(launcher.get("setup")) or []:
        if not SETUP_LINE.fullmatch(str(resolved(line))):
            raise ConfigError(
                "hydra.launcher.setup",
                f"{resolved(line)!r} is not allowed; only source PATH/bin/activate or module "
                "load NAME",
            )
    for part, keys in (("init", RAY_INIT_KEYS), ("remote", RAY_REMOTE_KEYS)):
        for key in select(launcher, f"ray.{part}") or {}:
            if str(key) not in keys:
                raise ConfigError(
                    f"hydra.launcher.ray.{part}.{key}", f"not allowed; only {', '.join(keys)}"
                )


def _check_logging(section: str, node: Mapping[str, Any]) -> None:
    """``logging.config.dictConfig`` imports ``class``/``()``/``ext://`` names and opens files."""
    for path, value in walk(node, section):
        key = path.rsplit(".", 1)[-1]
        raw = value.raw if isinstance(value, Interpolation) else value
        if key == "()":
            raise ConfigError(path, "not allowed: logging factories are code")
        if key == "class" and raw not in LOG_CLASSES:
            raise ConfigError(path, f"{raw!r} is not allowed; only {', '.join(LOG_CLASSES)}")
        if key == "filename" and raw not in LOG_FILENAMES:
            raise ConfigError(path, f"{raw!r} is not allowed; log files keep Hydra's names")
        if key == "filters" or path.startswith(f"{section}.filters"):
            raise ConfigError(path, "not allowed: logging filters are code")
        if isinstance(raw, str) and raw.startswith(("ext://", "cfg://")) and raw not in LOG_STREAMS:
            raise ConfigError(path, f"{raw!r} is not allowed; only {', '.join(LOG_STREAMS)}")


def check_top_level_keys(tree: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """Refuse a top-level key the app does not read, with a near-miss suggestion.

    Raises:
        ConfigError: Naming the key, e.g. ``sead: unknown key; did you mean seed?``.
    """
    known = set(allowed) | {"hydra"}
    for key in tree:
        if str(key) not in known:
            raise ConfigError(str(key), unknown_key_problem(str(key), sorted(known - {"hydra"})))


def unknown_key_problem(key: str, allowed: Sequence[str]) -> str:
    """``unknown key; did you mean seed?`` (difflib) or the list of known keys."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(allowed)}"
    return f"unknown key; {hint}"


def composition_error(error: BaseException) -> ConfigError:
    """One-line ConfigError for a Hydra composition or override-parsing error (from its text)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConfigError):
            return cause
        cause = cause.__cause__ or cause.__context__
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    cause_text = str(error.__cause__ or "")
    full_key = re.search(r"full_key: (\S+)", cause_text)
    quoted = re.search(r"override '([^']+)'", first) or re.search(r": '([^']+)'", first)
    field = (
        full_key.group(1)
        if full_key
        else quoted.group(1).partition("=")[0].lstrip("+~")
        if quoted
        else "overrides"
    )
    if "not in struct" in cause_text:
        return ConfigError(field, "unknown key (to replace a whole mapping: ~KEY, then +KEY=...)")
    return ConfigError(field, first)


def probe_output_dirs(tree: Mapping[str, Any], multirun: bool) -> None:
    """Refuse a run, sweep or cache directory that cannot be created and written.

    Creates the missing part of each path and an unnamed temporary file in it, then removes
    what it created, so a bad path (``hydra.run.dir=/proc/x``, a file in the way, a read-only
    mount) is one line with exit code 2 before anything runs, and nothing is left behind. A path
    only Hydra's runtime can resolve is left to Hydra.

    Raises:
        ConfigError: Naming the field, the path and the operating system's reason.
    """
    fields = ["hydra.sweep.dir" if multirun else "hydra.run.dir"]
    if "cache_dir" in tree:
        fields.append("cache_dir")
    for field in fields:
        value = select(tree, field)
        if value is not None and not isinstance(value, Unresolved | Mapping | list):
            _probe_directory(field, Path(str(value)))


def _probe_directory(field: str, path: Path) -> None:
    missing: list[Path] = []
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    created: list[Path] = []
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
        for directory in reversed(missing):
            directory.mkdir()
            created.append(directory)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        where = "" if error.filename in (None, str(path.absolute())) else f" ({error.filename})"
        raise ConfigError(field, f"cannot write {str(path)!r}{where}: {error.strerror}") from None
    finally:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()


MAX_SWEEP_COMPOSES: Final = 256
"""A sweep whose values need a composition each (groups, hydra.*) is checked value by value."""


@dataclass(frozen=True)
class SweepOverride:
    """One parsed override, as the guard needs it (Hydra's ``Override`` without Hydra).

    Attributes:
        key: The key element (``+a.b``, ``group@pkg``, ``hydra/launcher``).
        line: The override as written.
        values: Each value of a sweep as override text (``()`` for an Optuna interval, which
            has none to list); ``None`` when the override is no sweep.
    """

    key: str
    line: str
    values: tuple[str, ...] | None


def _first_value(override: SweepOverride) -> str:
    if override.values is None:
        return override.line
    return f"{override.key}={override.values[0]}" if override.values else ""


def _needs_compose(override: SweepOverride, groups: set[str]) -> bool:
    """Whether another value of this sweep could change what the guard checks.

    A config-group choice (``groups``: those of the first job), anything under ``hydra``, a
    package override (``@``), an instantiate key, or a value with an interpolation or a
    container. Plain values of other keys (``seed=range(0,1000)``) cannot name code.
    """
    key = override.key.lstrip("+~")
    if key.split("@", 1)[0] in groups or "@" in key or "/" in key or key.startswith("hydra"):
        return True
    if key.rsplit(".", 1)[-1][:1] == "_":
        return True
    return any("${" in v or v[:1] in "[{" for v in override.values or ())


def first_job(overrides: Sequence[SweepOverride]) -> list[str]:
    """The sweep's first job: each override at its first value (intervals left to the sweeper)."""
    return [line for line in map(_first_value, overrides) if line]


def sweep_jobs(overrides: Sequence[SweepOverride], groups: set[str]) -> Iterator[list[str]]:
    """The jobs whose configs the guard composes besides the first.

    For each sweep override whose values need a composition (see :func:`_needs_compose`), one
    job per further value, the other overrides at their first.

    Raises:
        ConfigError: More than :data:`MAX_SWEEP_COMPOSES` such jobs.
    """
    base = [_first_value(o) for o in overrides]
    count = 0
    for index, override in enumerate(overrides):
        if override.values is None or not _needs_compose(override, groups):
            continue
        for value in override.values[1:]:
            count += 1
            if count > MAX_SWEEP_COMPOSES:
                raise ConfigError(
                    override.key,
                    f"sweep too large to check (over {MAX_SWEEP_COMPOSES} group/hydra values)",
                )
            job = [*base[:index], f"{override.key}={value}", *base[index + 1 :]]
            yield [line for line in job if line]
