"""Shared fixtures: specs loaded from the repo's conf/ tree."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml

from planner.perf.efficiency import EfficiencyFactors, profile_file
from planner.specs.hardware import System
from planner.specs.model import Model

CONF = Path(__file__).resolve().parents[1] / "conf"


@cache
def load_model(name: str) -> Model:
    """A model from conf/model/<name>.yaml."""
    return Model.from_dict(yaml.safe_load((CONF / "model" / f"{name}.yaml").read_text()))


@cache
def load_system(name: str) -> System:
    """A system from conf/hardware/<name>.yaml."""
    return System.from_dict(yaml.safe_load((CONF / "hardware" / f"{name}.yaml").read_text()))


@cache
def load_efficiency(family: str, stack: str | None = None) -> EfficiencyFactors:
    """The fitted factors from conf/efficiency/<family>.yaml (or <family>__<stack>.yaml)."""
    name = f"{family}.yaml" if stack is None else profile_file(family, stack)[0]
    data = yaml.safe_load((CONF / "efficiency" / name).read_text())
    return EfficiencyFactors.from_dict(data)


def model_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def hardware_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "hardware").glob("*.yaml"))


@pytest.fixture
def conf_dir() -> Path:
    return CONF
