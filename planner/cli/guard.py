"""Configs are data: the check every console script runs on its command line before Hydra starts.

Threat model: a config (a YAML file given with ``--config-dir``/``scenario=``, or an override on a
command line copied from someone else) may choose values, config-group options, the documented
launchers and sweepers, and where outputs go; it may not make the planner import or call code of
its choosing, write files under names of its choosing, or set up a shell or environment.

Hydra turns config into code in a handful of places: ``_target_`` nodes (``hydra.callbacks``,
``hydra.launcher``, ``hydra.sweeper`` and the Optuna sampler, instantiated recursively), the
logging configs (``logging.config.dictConfig`` resolves ``class``, ``()`` and ``ext://``), config
sources (``pkg://`` and ``structured://`` import a module), the Optuna sweeper's
``custom_search_space`` (a dotted function name) and ``storage`` (a database file), job
environment variables, the SLURM ``setup`` lines and Ray's ``init``/``remote`` options. Each is
checked here on the config Hydra itself composes (its own argument parser, search path and
composition), for the master config and every value of every sweep, so the form of the command
line does not matter. Every refusal is a :class:`ConfigError` naming the dotted field.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import functools
import inspect
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.importlib_resources_config_source import (
    ImportlibResourcesConfigSource,
)
from hydra._internal.core_plugins.structured_config_source import StructuredConfigSource
from hydra._internal.hydra import Hydra
from hydra._internal.sources_registry import SourcesRegistry
from hydra._internal.utils import (
    _locate,
    create_automatic_config_search_path,
    detect_calling_file_or_module_from_task_function,
    detect_task_name,
    get_args_parser,
)
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.plugins.config_source import ConfigSource
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

from planner.specs.errors import ConfigError

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

MAX_SWEEP_COMPOSES = 256
"""A sweep whose values need a composition each (groups, hydra.*) is checked value by value."""


class _ParseError(Exception):
    pass


def _raise_parse_error(message: str) -> NoReturn:
    raise _ParseError(message)


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` read by Hydra's own parser (so ``--config-dir=X``, ``-cd X``, abbreviations...).

    Raises:
        ConfigError: Hydra's parser refuses ``argv``, or it asks for something the guard cannot
            check (``--experimental-rerun`` loads a pickle, ``--shell-completion``).
    """
    parser = get_args_parser()
    parser.error = _raise_parse_error  # type: ignore[method-assign]
    try:
        args = parser.parse_args(list(argv))
    except _ParseError as error:
        raise ConfigError("command line", str(error)) from None
    if args.experimental_rerun is not None:
        raise ConfigError("--experimental-rerun", "not allowed: it loads a pickle (code)")
    if args.shell_completion:
        raise ConfigError("--shell-completion", "not supported by the planner's guard")
    return args


def _guarded_source(base: type[ConfigSource]) -> type[ConfigSource]:
    """A config source class that refuses module imports outside :data:`CONFIG_SOURCE_MODULES`."""

    def guarded_init(self: Any, provider: str, path: str) -> None:
        scheme = base.scheme()
        module = path.removeprefix(f"{scheme}://").replace("/", ".").rstrip(".")
        if module not in CONFIG_SOURCE_MODULES[scheme]:
            raise ConfigError(
                "hydra.searchpath",
                f"{path} is not allowed (it imports a module); use file:// directories",
            )
        base.__init__(self, provider, path)

    return type(base.__name__, (base,), {"__init__": guarded_init, "_planner_guarded": True})


def install_source_guard() -> None:
    """Make Hydra refuse ``pkg://``/``structured://`` sources that would import a module.

    Process-wide and idempotent: it holds for the guard's compositions and for Hydra's own run.
    """
    registry = SourcesRegistry.instance()
    for base in (ImportlibResourcesConfigSource, StructuredConfigSource):
        scheme = base.scheme()
        # Hydra's plugin scan re-executes its core-plugin modules, so the registered class can
        # be a newer object than the one imported here: guard whatever is registered, once.
        current = registry.types.get(scheme, base)
        if not getattr(current, "_planner_guarded", False):
            registry.types[scheme] = _guarded_source(current)


@dataclass(frozen=True)
class Composer:
    """Composes configs exactly as ``hydra.main`` would for one command line."""

    args: argparse.Namespace
    task_function: Callable[..., Any]
    config_path: str
    config_name: str

    def _hydra(self) -> tuple[Hydra, str]:
        """Hydra's object for this command line's search path, and the config name."""
        config_path = self.args.config_path or self.config_path
        calling_file, calling_module = detect_calling_file_or_module_from_task_function(
            self.task_function
        )
        search_path = create_automatic_config_search_path(calling_file, calling_module, config_path)
        if self.args.config_dir is not None:
            config_dir = Path(self.args.config_dir).absolute()
            if not config_dir.is_dir():
                raise ConfigError("--config-dir", f"{str(config_dir)!r} is not a directory")
            search_path.prepend("command-line", f"file://{config_dir}")
        install_source_guard()
        hydra = Hydra.create_main_hydra2(
            task_name=detect_task_name(calling_file, calling_module),
            config_search_path=search_path,
        )
        return hydra, self.args.config_name or self.config_name

    def compose(self, overrides: Sequence[str], multirun: bool | None) -> DictConfig:
        """The full config (``hydra`` node included) for ``overrides``.

        ``multirun=None`` decides as Hydra does: ``-m``, or ``hydra.mode: MULTIRUN`` in the config.

        Raises:
            ConfigError: The config does not compose (one line naming the key).
        """
        try:
            hydra, config_name = self._hydra()
            if multirun is None:
                mode = hydra.get_mode(config_name=config_name, overrides=list(overrides))
                multirun = bool(self.args.multirun) or mode == RunMode.MULTIRUN
            return hydra.compose_config(
                config_name,
                list(overrides),
                run_mode=RunMode.MULTIRUN if multirun else RunMode.RUN,
                with_log_configuration=False,
            )
        except ConfigError:
            raise
        except Exception as error:  # a YAML or plugin error too: one line, never a traceback
            raise composition_error(error) from None
        finally:
            GlobalHydra.instance().clear()

    def parse(self, overrides: Sequence[str], field: str = "overrides") -> list[Override]:
        """``overrides`` parsed as Hydra's sweepers do (``glob(*)`` expands to group options).

        Raises:
            ConfigError: An override does not parse (named by its key, or by ``field``).
        """
        try:
            hydra, _ = self._hydra()
            parser = OverridesParser.create(config_loader=hydra.config_loader)
            return parser.parse_overrides(list(overrides))
        except ConfigError:
            raise
        except Exception as error:
            parsed_error = composition_error(error)
            name = parsed_error.field if field == "overrides" else field
            raise ConfigError(name, parsed_error.problem) from None
        finally:
            GlobalHydra.instance().clear()


def composition_error(error: BaseException) -> ConfigError:
    """One-line ConfigError for a Hydra composition or override-parsing error."""
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


def check_command_line(
    argv: Sequence[str],
    task_function: Callable[..., Any],
    config_path: str,
    config_name: str,
    primary_keys: Sequence[str] | None = None,
) -> None:
    """Refuse a command line whose composed configs could run code or name unknown keys.

    Composes the master config and, for a sweep, one config per value of every override whose
    values need one (group choices, ``hydra.*`` keys, values with interpolations or containers),
    the others held at their first value; ``hydra.sweeper.params`` count as sweep overrides.

    Args:
        argv: The command line after ``scenario=`` translation.
        task_function: The ``hydra.main`` function (its module locates a relative ``-cp``).
        config_path: The ``config_path`` given to ``hydra.main``.
        config_name: The ``config_name`` given to ``hydra.main``.
        primary_keys: Top-level keys the app reads (None: no top-level key check).

    Raises:
        ConfigError: The first refusal, naming the dotted field.
    """
    args = parse_command_line(argv)
    composer = Composer(args, task_function, config_path, config_name)
    overrides = [str(o) for o in args.overrides]
    parsed = composer.parse(overrides)
    try:
        master = composer.compose(overrides, multirun=None)
    except ConfigError as error:
        raise _with_suggestion(error, composer) from None
    multirun = bool(args.multirun) or OmegaConf.select(master, "hydra.mode") == RunMode.MULTIRUN
    check_config(master, primary_keys)
    probe_output_dirs(master, multirun)
    params = OmegaConf.select(master, "hydra.sweeper.params")
    if params is not None:
        container = OmegaConf.to_container(params)
        assert isinstance(container, dict)
        entries = [f"{k!s}={v!s}" for k, v in container.items()]
        parsed = parsed + composer.parse(entries, field="hydra.sweeper.params")
    sweeps = [o for o in parsed if o.is_sweep_override()]
    if not sweeps and not multirun:
        return
    base = [_first_value(o) for o in parsed]  # "" for an Optuna interval: left out below
    first_job = composer.compose([o for o in base if o], multirun=False)
    check_config(first_job, primary_keys)
    groups = set(OmegaConf.select(first_job, "hydra.runtime.choices") or {})
    composes = 0
    for index, override in enumerate(parsed):
        if not override.is_sweep_override() or not _needs_compose(override, groups):
            continue
        for value in _values(override)[1:]:
            composes += 1
            if composes > MAX_SWEEP_COMPOSES:
                raise ConfigError(
                    override.get_key_element(),
                    f"sweep too large to check (over {MAX_SWEEP_COMPOSES} group/hydra values)",
                )
            job = [*base[:index], f"{override.get_key_element()}={value}", *base[index + 1 :]]
            check_config(composer.compose([o for o in job if o], multirun=False), primary_keys)


def _with_suggestion(error: ConfigError, composer: Composer) -> ConfigError:
    """Add ``did you mean ...?`` to an unknown-key error, from the keys of the key's parent."""
    if not error.problem.startswith("unknown key"):
        return error
    parent_path, _, key = error.field.rpartition(".")
    try:
        primary = composer.compose([], multirun=False)
    except ConfigError:
        return error
    parent = OmegaConf.select(primary, parent_path) if parent_path else primary
    if not isinstance(parent, DictConfig):
        return error
    siblings = sorted(str(k) for k in parent if str(k) != "hydra")
    return ConfigError(error.field, unknown_key_problem(key, siblings))


def _values(override: Override) -> list[str]:
    """Each value of a sweep override as override text (intervals have none to list)."""
    try:
        return list(override.sweep_string_iterator())
    except Exception:  # an interval (Optuna) is not iterable: numbers only
        return []


def _first_value(override: Override) -> str:
    if not override.is_sweep_override():
        return override.input_line or ""
    values = _values(override)
    if not values:  # an interval: numbers only, the override itself is left to the sweeper
        return ""
    return f"{override.get_key_element()}={values[0]}"


def _needs_compose(override: Override, groups: set[str]) -> bool:
    """Whether another value of this sweep could change what the guard checks.

    A config-group choice (``groups``: those of the first job), anything under ``hydra``, a
    package override (``@``), an instantiate key, or a value with an interpolation or a
    container. Plain values of other keys (``seed=range(0,1000)``) cannot name code.
    """
    key = override.get_key_element().lstrip("+~")
    name = key.split("@", 1)[0]
    if name in groups or "@" in key or "/" in key or key.startswith("hydra"):
        return True
    if key.rsplit(".", 1)[-1][:1] == "_":
        return True
    return any("${" in v or v[:1] in "[{" for v in _values(override))


def check_config(cfg: DictConfig, primary_keys: Sequence[str] | None = None) -> None:
    """Refuse a composed config (``hydra`` node included) that could run code.

    Raises:
        ConfigError: Naming the dotted field and what is allowed there.
    """
    for path, node in _walk(cfg, ""):
        key = path.rsplit(".", 1)[-1]
        if key in INSTANTIATE_KEYS:
            _check_instantiate_key(path, node)
    for location, allowed in ALLOWED_TARGETS.items():
        for path, node in _select(cfg, location):
            if not isinstance(node, DictConfig) or "_target_" not in node:
                raise ConfigError(f"{path}._target_", _allowed_text(allowed))
            _check_target(f"{path}._target_", node, allowed)
    _check_hydra_node(cfg)
    if primary_keys is not None:
        check_top_level_keys(cfg, primary_keys)


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, value) for every entry, interpolations resolved where they can be."""
    if isinstance(node, DictConfig):
        items: list[tuple[str, Any]] = [(str(k), k) for k in node]
    elif isinstance(node, ListConfig):
        items = [(f"[{i}]", i) for i in range(len(node))]
    else:
        return
    for name, key in items:
        where = (f"{path}{name}" if name.startswith("[") else f"{path}.{name}") if path else name
        value = node._get_node(key)
        yield where, value
        if OmegaConf.is_interpolation(node, key):
            try:
                resolved = node[key]
            except Exception:
                continue
            yield from _walk(resolved, where)
        else:
            yield from _walk(value, where)


def _check_instantiate_key(path: str, node: Any) -> None:
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


def _select(cfg: DictConfig, location: str) -> Iterator[tuple[str, Any]]:
    if location.endswith(".*"):
        parent = OmegaConf.select(cfg, location[:-2])
        if isinstance(parent, DictConfig):
            for key in parent:
                yield f"{location[:-2]}.{key!s}", parent[key]
        elif parent is not None:
            raise ConfigError(location[:-2], "must be a mapping of callbacks")
        return
    node = OmegaConf.select(cfg, location)
    if node is not None:
        yield location, node


def _allowed_text(allowed: dict[str, str]) -> str:
    return "must be one of " + ", ".join(sorted(allowed))


def _check_target(path: str, node: DictConfig, allowed: dict[str, str]) -> None:
    """The ``_target_`` must be a literal allowlisted name resolving to the allowlisted object."""
    if OmegaConf.is_interpolation(node, "_target_"):
        raise ConfigError(
            path, f"must be a literal name, not an interpolation; {_allowed_text(allowed)}"
        )
    value = node._get_node("_target_")._value()  # type: ignore[union-attr]
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(
            path, f"{value!r} is not allowed (configs are data); {_allowed_text(allowed)}"
        )
    try:
        target = _locate(value)  # the same import Hydra is about to do for this name
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


def _check_hydra_node(cfg: DictConfig) -> None:
    """Logging, environment, file names and plugin options that would run or write code."""
    for section in ("hydra.job_logging", "hydra.hydra_logging"):
        node = OmegaConf.select(cfg, section)
        if isinstance(node, DictConfig):
            _check_logging(section, node)
    env_set = OmegaConf.select(cfg, "hydra.job.env_set") or {}
    for name in env_set:
        if str(name) not in ENV_VARS:
            raise ConfigError(
                f"hydra.job.env_set.{name}", f"not allowed; only {', '.join(ENV_VARS)}"
            )
    job_name = OmegaConf.select(cfg, "hydra.job.name", throw_on_missing=False)
    if job_name is not None and (not SAFE_NAME.fullmatch(str(job_name)) or ".." in str(job_name)):
        raise ConfigError(
            "hydra.job.name", f"must be a plain name ([A-Za-z0-9_.-]), got {job_name!r}"
        )
    subdir = OmegaConf.select(cfg, "hydra.output_subdir")
    if subdir is not None and (Path(str(subdir)).is_absolute() or ".." in Path(str(subdir)).parts):
        raise ConfigError(
            "hydra.output_subdir", f"must be a relative name inside the run dir, got {subdir!r}"
        )
    sweeper = OmegaConf.select(cfg, "hydra.sweeper")
    if isinstance(sweeper, DictConfig):
        if sweeper.get("custom_search_space") is not None:
            raise ConfigError(
                "hydra.sweeper.custom_search_space", "not allowed (it names code); use params"
            )
        storage = sweeper.get("storage")
        if storage is not None and not SQLITE_STORAGE.fullmatch(str(storage)):
            raise ConfigError(
                "hydra.sweeper.storage", f"must be null or sqlite:///PATH.db, got {storage!r}"
            )
        study_name = sweeper.get("study_name")
        if study_name is not None and not SAFE_NAME.fullmatch(str(study_name)):
            raise ConfigError(
                "hydra.sweeper.study_name",
                f"must be a plain name ([A-Za-z0-9_.-]), got {study_name!r}",
            )
    launcher = OmegaConf.select(cfg, "hydra.launcher")
    if isinstance(launcher, DictConfig):
        for line in launcher.get("setup") or []:
            if not SETUP_LINE.fullmatch(str(line)):
                raise ConfigError(
                    "hydra.launcher.setup",
                    f"{line!r} is not allowed; only source PATH/bin/activate or module load NAME",
                )
        for part, keys in (("init", RAY_INIT_KEYS), ("remote", RAY_REMOTE_KEYS)):
            options = OmegaConf.select(launcher, f"ray.{part}") or {}
            for key in options:
                if str(key) not in keys:
                    raise ConfigError(
                        f"hydra.launcher.ray.{part}.{key}", f"not allowed; only {', '.join(keys)}"
                    )


def _check_logging(section: str, node: DictConfig) -> None:
    """``logging.config.dictConfig`` imports ``class``/``()``/``ext://`` names and opens files."""
    for path, value in _walk(node, section):
        key = path.rsplit(".", 1)[-1]
        raw = value._value() if hasattr(value, "_value") else value
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


def check_top_level_keys(cfg: DictConfig, allowed: Sequence[str]) -> None:
    """Refuse a top-level key the app does not read, with a near-miss suggestion.

    Raises:
        ConfigError: Naming the key, e.g. ``sead: unknown key; did you mean seed?``.
    """
    known = set(allowed) | {"hydra"}
    for key in cfg:
        if str(key) not in known:
            raise ConfigError(str(key), unknown_key_problem(str(key), sorted(known - {"hydra"})))


def unknown_key_problem(key: str, allowed: Sequence[str]) -> str:
    """``unknown key; did you mean seed?`` (difflib) or the list of known keys."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(allowed)}"
    return f"unknown key; {hint}"


@functools.cache
def app_keys(conf_dir: Path, config_name: str) -> tuple[str, ...]:
    """Top-level keys an app reads: its composed ``conf/<config_name>.yaml`` and known extras."""
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose(config_name)
    return tuple(sorted({str(k) for k in cfg} | set(PRIMARY_EXTRA_KEYS.get(config_name, ()))))


def probe_output_dirs(cfg: DictConfig, multirun: bool) -> None:
    """Refuse a run, sweep or cache directory that cannot be created and written.

    Creates the missing part of each path and an unnamed temporary file in it, then removes
    what it created, so a bad path (``hydra.run.dir=/proc/x``, a file in the way, a read-only
    mount) is one line with exit code 2 before anything runs, and nothing is left behind.

    Raises:
        ConfigError: Naming the field, the path and the operating system's reason.
    """
    fields = ["hydra.sweep.dir" if multirun else "hydra.run.dir"]
    if "cache_dir" in cfg:
        fields.append("cache_dir")
    for field in fields:
        try:
            value = OmegaConf.select(cfg, field, throw_on_missing=True)
        except Exception:  # an interpolation only Hydra's runtime can resolve: Hydra's to report
            continue
        if value is not None:
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
