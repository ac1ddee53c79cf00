"""``scenario=NAME``: the shipped studies in ``scenarios/`` and the console script each one is for.

A scenario file is a primary config extending one of ``conf/``'s (``defaults: [roi, ...]``), so
it runs under that config's console script only; :func:`check_scenario` names the right one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from planner.config.resolve import load_yaml
from planner.specs.errors import ConfigError, require_choice

SCENARIO_DIR = Path(str(resources.files("planner.scenarios")))
"""``scenarios/``, found like :data:`planner.config.resolve.CONF_DIR`."""

COMMANDS = {
    "planner": "planner",
    "size": "planner-size",
    "roi": "planner-roi",
    "roofline": "planner-roofline",
}
"""The console script of each primary config in ``conf/``."""


def scenario_tool(name: str) -> str | None:
    """The primary config scenario ``name`` extends (the first entry of its ``defaults``)."""
    defaults = load_yaml(SCENARIO_DIR / f"{name}.yaml", "scenario").get("defaults") or []
    first = next(iter(defaults), None)
    return first if isinstance(first, str) and first in COMMANDS else None


def check_scenario(name: str, config_name: str | None) -> None:
    """Refuse an unknown scenario, or one meant for another console script than ``config_name``.

    Raises:
        ConfigError: ``scenario: moe_paradox_roi is a planner-roi scenario: run `planner-roi
            scenario=moe_paradox_roi```, or the list of scenarios.
    """
    require_choice("scenario", name, sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
    tool = scenario_tool(name)
    if config_name is not None and tool is not None and tool != config_name:
        command = COMMANDS[tool]
        raise ConfigError(
            "scenario", f"{name} is a {command} scenario: run `{command} scenario={name}`"
        )


def scenario_arguments(
    argv: Sequence[str], config_name: str | None, config_flags: Callable[[list[str]], list[str]]
) -> list[str]:
    """Translate ``scenario=NAME`` into Hydra's ``--config-dir scenarios --config-name NAME``.

    Hydra's parser wants its flags before the overrides, so they go first.

    Args:
        argv: The command line.
        config_name: The running console script's primary config (None: any scenario).
        config_flags: The config-selecting flags (``--config-dir``...) the rest of the command
            line gives, read as Hydra reads them.

    Raises:
        ConfigError: NAME is not a scenario or is another console script's
            (:func:`check_scenario`), is given twice, or the command line also names a config by
            flag (which one would win is not obvious, so neither does).
    """
    flags: list[str] = []
    rest: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key != "scenario":
            rest.append(arg)
            continue
        check_scenario(value, config_name)
        flags += ["--config-dir", str(SCENARIO_DIR), "--config-name", value]
    if flags:
        for flag in config_flags(rest):
            raise ConfigError("scenario", f"cannot be combined with {flag}")
        if len(flags) > 4:
            raise ConfigError("scenario", "given more than once")
    return flags + rest
