"""Every console script's own options, given a wrong type, fail as one line with exit code 2.

The options are read from each script's primary config (``conf/planner.yaml``, ``size.yaml``,
``roi.yaml``, ``roofline.yaml``): every number, flag and null-able number that is not inside a
config group gets a string, a list and (for numbers) a float where an int is due. Each bad value
is composed with Hydra's compose API and fed to the script's own validation in-process (the
heavy step after validation is replaced by a sentinel, so a value that slips through fails fast
instead of running a study); a few values per script then go through the real console script to
check the exit code, the single stderr line and the absence of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from planner.app import roofline as app_roofline
from planner.app import simulation as app_simulation
from planner.cli import roi, roofline, simulate, size
from planner.config import CONF_DIR
from planner.specs.errors import ConfigError
from tests.cli_runner import run_cli

BIN = Path(sys.executable).parent


class HeavyStepReachedError(Exception):
    """Validation let the config through: the script reached its heavy step."""


def _reached(*_args: Any, **_kwargs: Any) -> Any:
    raise HeavyStepReachedError


# script -> (config name, groups (not the script's own options), in-process entry, heavy step)
SCRIPTS: dict[str, tuple[str, tuple[str, ...], Callable[[DictConfig], Any], tuple[Any, str]]] = {
    "planner": ("planner", simulate.GROUPS, simulate.run, (app_simulation, "simulate")),
    "planner-size": ("size", size.GROUPS, size.run, (size, "run_sizing")),
    "planner-roi": ("roi", roi.GROUPS, roi.run, (roi, "run_roi_study")),
    "planner-roofline": (
        "roofline",
        roofline.GROUPS,
        roofline.compute,
        (app_roofline, "roofline_summary"),
    ),
}
QUICK = {"planner": ["workload.n_trees=10"]}
# String options with a fixed set of values (any other string option takes any text).
CHOICES = {
    "planner": ["output.calls_table"],
    "planner-roi": ["mc.backend", "roi.baseline", "roi.candidate"],
    "planner-roofline": ["precision", "kv_precision"],
}
TEXT_OR_NULL = {"mc.ray_address", "cache_dir"}  # any string is an address or a path


def _leaves(data: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    else:
        yield path, data


def bad_values(script: str) -> list[tuple[str, str]]:
    """(dotted option, bad override value) for every own option of ``script``."""
    config_name, groups, _, _ = SCRIPTS[script]
    data = yaml.safe_load((CONF_DIR / f"{config_name}.yaml").read_text())
    out = []
    for key, value in _leaves({k: v for k, v in data.items() if k not in ("defaults", "hydra")}):
        if key.split(".")[0] in groups:
            continue
        if isinstance(value, bool):
            out += [(key, "maybe"), (key, "[1]")]
        elif isinstance(value, int):
            out += [(key, "abc"), (key, "[1]"), (key, "1.5")]
        elif key in TEXT_OR_NULL:
            out += [(key, "[1]")]
        elif isinstance(value, float) or value is None:
            out += [(key, "abc"), (key, "[1]")]
    out += [(key, "no_such_choice") for key in CHOICES.get(script, [])]
    return out


CASES = [(script, key, value) for script in SCRIPTS for key, value in bad_values(script)]


def test_every_script_has_options_under_test() -> None:
    counts = {script: sum(1 for s, _, _ in CASES if s == script) for script in SCRIPTS}
    assert all(count >= 6 for count in counts.values()), counts
    keys = {f"{s} {k}" for s, k, _ in CASES}
    for expected in (
        "planner seed",
        "planner run.max_sim_time_s",
        "planner-size demand.trees_per_s",
        "planner-roi mc.samples",
        "planner-roi roi.horizon_years",
        "planner-roi mc.inputs.discount_rate",
        "planner-roofline tp",
    ):
        assert expected in keys


def _expected_field(key: str) -> str:
    """A distribution's parameter is reported on the input (the problem names the parameter)."""
    parts = key.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["mc", "inputs"] else key


@pytest.mark.parametrize(
    ("script", "key", "value"), CASES, ids=[f"{s} {k}={v}" for s, k, v in CASES]
)
def test_bad_option_is_a_config_error_naming_it(
    script: str, key: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_name, _, entry, (module, heavy) = SCRIPTS[script]
    monkeypatch.setattr(module, heavy, _reached)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=[*QUICK.get(script, []), f"{key}={value}"])
    with pytest.raises(ConfigError) as caught:
        entry(cfg)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.field.startswith(_expected_field(key)), message


def test_valid_defaults_reach_the_heavy_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sentinel is reached with the shipped defaults, so the cases above test validation."""
    for script, (config_name, _, entry, (module, heavy)) in SCRIPTS.items():
        monkeypatch.setattr(module, heavy, _reached)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=QUICK.get(script, []))
        with pytest.raises(HeavyStepReachedError):
            entry(cfg)


# One real console-script run per script (each costs seconds): exit code, one line, no traceback.
RUNS = [
    ("planner", ["workload.n_trees=10", "seed=abc"], "seed"),
    ("planner", ["workload.n_trees=10", "run.max_sim_time_s=x"], "run.max_sim_time_s"),
    ("planner-size", ["demand.trees_per_s=fast"], "demand.trees_per_s"),
    ("planner-roi", ["mc.samples=1.5"], "mc.samples"),
    ("planner-roi", ["roi.horizon_years=[1]"], "roi.horizon_years"),
    ("planner-roofline", ["tp=two"], "tp"),
]


@pytest.mark.parametrize(
    ("script", "overrides", "field"), RUNS, ids=[" ".join([s, *o]) for s, o, _ in RUNS]
)
def test_console_script_exits_2_with_one_line(
    tmp_path: Path, script: str, overrides: list[str], field: str
) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(BIN / script, [f"hydra.run.dir={run_dir}", *overrides])
    assert result.returncode == 2, (result.stdout[-500:], result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"error: {field}: must be"), lines[0]
    assert not run_dir.exists()
