"""Shared fixtures: specs loaded from the repo's conf/ tree."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.perf.borrowed import (
    BORROWED_FILE,
    ResolvedEfficiency,
    parse_borrowing,
    resolve_efficiency,
)
from planner.perf.efficiency import EfficiencyFactors
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


def _fitted_factors(family: str) -> dict[str, Any] | None:
    path = CONF / "efficiency" / f"{family}.yaml"
    if family == BORROWED_FILE or not path.exists():
        return None
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


@cache
def load_resolved_efficiency(family: str) -> ResolvedEfficiency:
    """Fitted factors from conf/efficiency/<family>.yaml, else borrowed via borrowed.yaml."""
    rules = parse_borrowing(
        yaml.safe_load((CONF / "efficiency" / f"{BORROWED_FILE}.yaml").read_text())
    )
    return resolve_efficiency(family, _fitted_factors, rules)


def load_efficiency(family: str) -> EfficiencyFactors:
    """The factors of a family, fitted or borrowed (see load_resolved_efficiency)."""
    return load_resolved_efficiency(family).factors


def model_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def hardware_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "hardware").glob("*.yaml"))


@pytest.fixture
def conf_dir() -> Path:
    return CONF
