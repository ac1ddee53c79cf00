"""Hydra config nodes -> specs, through :mod:`planner.config` (the one converter).

CLI glue only: OmegaConf nodes become plain mappings, and a trace path is resolved against the
directory the user started the command in (Hydra may change the working directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import to_absolute_path

from planner import config
from planner.cli.common import to_mapping
from planner.config import load_named
from planner.econ.tco import EconomicsSpec
from planner.sim.config import FleetSpec
from planner.sim.engine import WorkloadSpec

__all__ = ["build_economics", "build_fleet", "build_workload", "load_named"]


def build_fleet(data: Any) -> FleetSpec:
    """The ``fleet`` node as a :class:`FleetSpec`."""
    return config.fleet(to_mapping(data, "fleet"))


def build_workload(data: Any) -> WorkloadSpec:
    """The ``workload`` node as a :class:`WorkloadSpec` (trace paths from the user's cwd)."""
    return config.workload(to_mapping(data, "workload"), base_dir=Path(to_absolute_path(".")))


def build_economics(node: Any) -> EconomicsSpec:
    """The ``economics`` node as an :class:`EconomicsSpec` (absent: the defaults)."""
    return config.economics(to_mapping(node or {}, "economics"))
