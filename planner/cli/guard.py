"""Configs are data: Hydra's side of the check every console script runs before Hydra starts.

The policy (what a config may name: allowlisted targets, logging, environment, file names,
plugin options) is :mod:`planner.config.policy`, on plain mappings. This module does what needs
Hydra: read the command line with Hydra's own parser, compose the master config and one config
per value of every sweep as ``hydra.main`` would, turn each into a plain tree and hand it to the
policy, and keep ``pkg://``/``structured://`` config sources from importing modules.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence
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

from planner.config import policy
from planner.config.policy import PRIMARY_EXTRA_KEYS, Interpolation
from planner.specs.errors import ConfigError


class _ParseError(Exception):
    pass


def _raise_parse_error(message: str) -> NoReturn:
    raise _ParseError(message)


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` read by Hydra's own parser (so ``--config-dir=X``, ``-cd X``, abbreviations...).

    Raises:
        ConfigError: Hydra's parser refuses ``argv``, ``--experimental-rerun`` (it loads a pickle)
            or ``--shell-completion`` in any form but Hydra's documented ones.
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
        policy.check_shell_completion(args.overrides)
    return args


def _guarded_source(base: type[ConfigSource]) -> type[ConfigSource]:
    """A config source class that refuses to import modules the policy does not allow."""

    def guarded_init(self: Any, provider: str, path: str) -> None:
        policy.check_config_source(base.scheme(), path)
        base.__init__(self, provider, path)

    return type(base.__name__, (base,), {"__init__": guarded_init, "_planner_guarded": True})


def install_source_guard() -> None:
    """Make Hydra refuse ``pkg://``/``structured://`` sources that would import a module.

    Process-wide and idempotent: it holds for the guard's compositions and for Hydra's own run.
    """
    registry = SourcesRegistry.instance()
    for base in (ImportlibResourcesConfigSource, StructuredConfigSource):
        scheme = base.scheme()
        # Hydra's plugin scan re-executes its plugin modules, so the registered class may be
        # another object than the one imported here: wrap whatever is registered, once.
        current = registry.types.get(scheme, base)
        if not getattr(current, "_planner_guarded", False):
            registry.types[scheme] = _guarded_source(current)


def plain(node: Any, depth: int = 0) -> Any:
    """A composed config as plain mappings and lists for :mod:`planner.config.policy`.

    An interpolation becomes an :class:`~planner.config.policy.Interpolation` (its text and
    what it resolves to); ``???`` and what only Hydra's run can resolve become ``UNRESOLVED``.
    """
    if depth > 64:  # an interpolation that contains itself
        raise ConfigError("config", "nested too deeply (an interpolation refers to itself?)")
    if not isinstance(node, DictConfig | ListConfig) or node._is_none():
        return None if isinstance(node, DictConfig | ListConfig) else node
    keys = list(node) if isinstance(node, DictConfig) else list(range(len(node)))
    values: list[Any] = []
    for key in keys:
        child: Any = node._get_node(key)
        if OmegaConf.is_interpolation(node, key):
            try:
                values.append(Interpolation(str(child._value()), plain(node[key], depth + 1)))
            except ConfigError:
                raise
            except Exception:  # resolvers only Hydra's run has (hydra:runtime...)
                values.append(Interpolation(str(child._value()), policy.UNRESOLVED))
        elif OmegaConf.is_missing(node, key):
            values.append(policy.UNRESOLVED)
        else:
            container = isinstance(child, DictConfig | ListConfig)
            values.append(plain(child, depth + 1) if container else child._value())
    return (
        dict(zip(map(str, keys), values, strict=True)) if isinstance(node, DictConfig) else values
    )


def check_config(cfg: DictConfig, primary_keys: Sequence[str] | None = None) -> None:
    """:func:`planner.config.policy.check_config` on a composed config.

    Raises:
        ConfigError: Naming the dotted field and what is allowed there.
    """
    policy.check_config(plain(cfg), _locate, primary_keys)


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
            raise policy.composition_error(error) from None
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
            parsed_error = policy.composition_error(error)
            name = parsed_error.field if field == "overrides" else field
            raise ConfigError(name, parsed_error.problem) from None
        finally:
            GlobalHydra.instance().clear()


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
    if args.shell_completion:
        return  # no config to compose: Hydra prints a shell script or completes a word
    composer = Composer(args, task_function, config_path, config_name)
    parsed = composer.parse([str(o) for o in args.overrides])
    try:
        master = composer.compose([str(o) for o in args.overrides], multirun=None)
    except ConfigError as error:
        raise _with_suggestion(error, composer) from None
    multirun = bool(args.multirun) or OmegaConf.select(master, "hydra.mode") == RunMode.MULTIRUN
    check_config(master, primary_keys)
    policy.probe_output_dirs(plain(master), multirun)
    params = OmegaConf.select(master, "hydra.sweeper.params")
    if params is not None:
        container = OmegaConf.to_container(params)
        assert isinstance(container, dict)
        entries = [f"{k!s}={v!s}" for k, v in container.items()]
        parsed = parsed + composer.parse(entries, field="hydra.sweeper.params")
    sweeps = [_plain_override(o) for o in parsed]
    if all(o.values is None for o in sweeps) and not multirun:
        return
    first = composer.compose(policy.first_job(sweeps), multirun=False)
    check_config(first, primary_keys)
    groups = set(OmegaConf.select(first, "hydra.runtime.choices") or {})
    for job in policy.sweep_jobs(sweeps, groups):
        check_config(composer.compose(job, multirun=False), primary_keys)


def _plain_override(override: Override) -> policy.SweepOverride:
    """Hydra's parsed override as the policy's :class:`~planner.config.policy.SweepOverride`."""
    values: tuple[str, ...] | None = None
    if override.is_sweep_override():
        try:
            values = tuple(override.sweep_string_iterator())
        except Exception:  # an interval (Optuna) is not iterable: numbers only
            values = ()
    return policy.SweepOverride(override.get_key_element(), override.input_line or "", values)


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
    return ConfigError(error.field, policy.unknown_key_problem(key, siblings))


@functools.cache
def app_keys(conf_dir: Path, config_name: str) -> tuple[str, ...]:
    """Top-level keys an app reads: its composed ``conf/<config_name>.yaml`` and known extras."""
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose(config_name)
    return tuple(sorted({str(k) for k in cfg} | set(PRIMARY_EXTRA_KEYS.get(config_name, ()))))
