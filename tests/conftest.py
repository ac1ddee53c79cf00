"""Shared fixtures: specs loaded from the repo's conf/ tree."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from planner import config
from planner.perf.borrowed import ResolvedEfficiency
from planner.perf.efficiency import EfficiencyFactors
from planner.sim.config import FleetSpec
from planner.sim.engine import WorkloadSpec
from planner.specs.hardware import System
from planner.specs.model import Model

CONF = Path(__file__).resolve().parents[1] / "conf"


@cache
def load_model(name: str) -> Model:
    """A model from conf/model/<name>.yaml."""
    return config.named_model(name)


@cache
def load_system(name: str) -> System:
    """A system from conf/hardware/<name>.yaml."""
    return config.named_system(name)


@cache
def load_resolved_efficiency(family: str, stack: str | None = None) -> ResolvedEfficiency:
    """Fitted factors (conf/efficiency/<family>[__<stack>].yaml), else borrowed (borrowed.yaml)."""
    return config.resolved_efficiency(family, stack)


def load_efficiency(family: str, stack: str | None = None) -> EfficiencyFactors:
    """The factors of a family and stack, fitted or borrowed (see load_resolved_efficiency)."""
    return load_resolved_efficiency(family, stack).factors


def load_fleet(name: str) -> FleetSpec:
    """A fleet from conf/fleet/<name>.yaml."""
    return config.fleet(config.load_named("fleet", name, "fleet"))


def load_workload(name: str) -> WorkloadSpec:
    """A workload from conf/workload/<name>.yaml."""
    return config.workload(config.load_named("workload", name, "workload"))


def model_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def hardware_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "hardware").glob("*.yaml"))


@pytest.fixture
def conf_dir() -> Path:
    return CONF


# Tests that start a local Ray instance (or a Ray launcher) run on one xdist worker, one after
# another (``make test`` uses --dist loadgroup): each instance starts workers for both cores.
# Every other test is scheduled on its own.
_RAY_TEST = re.compile(r"(?<![a-z])ray(?![a-z])", re.IGNORECASE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every test whose id names Ray into xdist group ``ray``."""
    for item in items:
        if _RAY_TEST.search(item.nodeid):
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(autouse=True)
def _no_ray_left_running() -> Iterator[None]:
    """Shut down a Ray instance a test left connected in this worker.

    A later ``ray.init()`` in the same process would otherwise fail ("Maybe you called ray.init
    twice by accident?"), as test_montecarlo's did when another Ray test ran before it there.
    """
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
