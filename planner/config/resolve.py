"""Where the shipped configs live and how a config names one (``hardware: gb200_nvl72``).

A fleet pool, a sizing option or a study case names hardware, models and fleets by their file stem
in a ``conf/`` group; this module turns the name into the file's plain mapping, refusing unknown
names with the list of the ones that exist.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from planner.specs.errors import ConfigError, require_choice

CONF_DIR = Path(str(resources.files("planner.conf")))
"""The config tree: top-level ``conf/`` in a checkout, ``planner/conf`` in an installed wheel
(pyproject.toml maps one to the other)."""


def group_options(group: str) -> list[str]:
    """The option names of the config group ``group`` (the YAML file stems in ``conf/<group>/``)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def load_yaml(path: Path, field: str) -> dict[str, Any]:
    """A YAML file holding a mapping, as a dict with string keys; ``field`` names it in errors."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(field, f"cannot read {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(field, f"{path} must hold a mapping, got {type(data).__name__}")
    return {str(k): v for k, v in data.items()}


def load_named(group: str, name: Any, field: str) -> dict[str, Any]:
    """The mapping in ``conf/<group>/<name>.yaml``; ``field`` names the reference in errors.

    Raises:
        ConfigError: ``name`` is not an option of the group (the options are listed).
    """
    require_choice(field, str(name), group_options(group))
    return load_yaml(CONF_DIR / group / f"{name}.yaml", field)


def load_primary(name: str, **choices: str) -> dict[str, Any]:
    """``conf/<name>.yaml`` with its group defaults filled in, as plain mappings (no Hydra).

    What a notebook passes to :func:`planner.app.simulation.simulation_spec`,
    :func:`planner.app.sizing.sizing_spec` or :func:`planner.app.roi_spec.study_spec`: each
    ``defaults`` entry ``group: option`` becomes ``cfg[group] = conf/<group>/<option>.yaml``
    (``choices`` replace options, as ``group=option`` does on the command line). Group files have
    no defaults of their own, so one level is the whole composition; interpolations are not
    resolved (the shipped primary configs use none outside ``hydra``).

    Raises:
        ConfigError: An unknown config, group or option.
    """
    cfg = load_yaml(CONF_DIR / f"{name}.yaml", name)
    for entry in cfg.pop("defaults", []):
        if isinstance(entry, dict):
            for group, option in entry.items():
                cfg[str(group)] = load_named(str(group), choices.pop(str(group), option), group)
    for group, option in choices.items():
        raise ConfigError(group, f"is not a config group of {name}.yaml (option {option!r})")
    cfg.pop("hydra", None)
    return cfg
