"""Config mappings -> typed specs: fleets, pools, workloads, economics (shared by the CLIs).

Hardware and models are named in fleet files (``hardware: gb200_nvl72``) and loaded from
``conf/hardware/`` and ``conf/model/`` here, so a fleet can mix accelerators in several pools.
"""

from __future__ import annotations

from typing import Any

import yaml
from hydra.utils import to_absolute_path

from planner.cli.common import CONF_DIR, group_options, load_efficiency, to_mapping
from planner.econ.tco import EconomicsSpec
from planner.perf.efficiency import STACKS
from planner.sim.config import BatchingSpec, FleetSpec, PoolSpec
from planner.sim.engine import WorkloadSpec
from planner.specs.errors import (
    ConfigError,
    reject_unknown_keys,
    require_choice,
    require_positive,
    require_positive_int,
)
from planner.specs.hardware import System
from planner.specs.model import Model
from planner.workload.arrivals import ArrivalProcess
from planner.workload.trees import TreeShape

POOL_KEYS = {
    "role", "hardware", "model", "racks", "precision", "kv_precision", "tp", "ep", "dp_attention",
    "stack", "chips",
    "batching", "step_jitter_cv", "replicas", "fixed_step_s",
}  # fmt: skip


def load_named(group: str, name: Any, field: str) -> dict[str, Any]:
    """The YAML file ``conf/<group>/<name>.yaml`` as a dict; ``field`` names it in errors."""
    options = group_options(group)
    require_choice(field, str(name), options)
    data = yaml.safe_load((CONF_DIR / group / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def build_pool(name: str, data: dict[str, Any]) -> PoolSpec:
    """One ``fleet.pools.<name>`` mapping as a :class:`PoolSpec` (hardware/model by name)."""
    prefix = f"fleet.pools.{name}"
    reject_unknown_keys(prefix, data, POOL_KEYS)
    for key in ("role", "hardware", "model", "racks"):
        if data.get(key) is None:
            raise ConfigError(f"{prefix}.{key}", "is required")
    system = System.from_dict(load_named("hardware", data["hardware"], f"{prefix}.hardware"))
    model = Model.from_dict(load_named("model", data["model"], f"{prefix}.model"))
    chips = data.get("chips")
    dp_attention = data.get("dp_attention", False)
    if not isinstance(dp_attention, bool):
        raise ConfigError(f"{prefix}.dp_attention", f"must be true or false, got {dp_attention!r}")
    stack = data.get("stack")
    if stack is not None:
        require_choice(f"{prefix}.stack", str(stack), STACKS)
    return PoolSpec(
        name=name,
        role=str(data["role"]),
        system=system,
        model=model,
        efficiency=load_efficiency(
            system.accelerator.family, None if stack is None else str(stack)
        ),
        racks=require_positive_int(f"{prefix}.racks", data["racks"]),
        precision=str(data.get("precision", "fp8")),
        kv_precision=str(data.get("kv_precision", "bf16")),
        tp=require_positive_int(f"{prefix}.tp", data.get("tp", 1)),
        ep=require_positive_int(f"{prefix}.ep", data.get("ep", 1)),
        dp_attention=dp_attention,
        stack=None if stack is None else str(stack),
        chips=None if chips is None else require_positive_int(f"{prefix}.chips", chips),
        batching=BatchingSpec.from_dict(data.get("batching") or {}, f"{prefix}.batching"),
        step_jitter_cv=float(data.get("step_jitter_cv", 0.0)),
        replicas=None
        if data.get("replicas") is None
        else require_positive_int(f"{prefix}.replicas", data["replicas"]),
        fixed_step_s=None
        if data.get("fixed_step_s") is None
        else float(require_positive(f"{prefix}.fixed_step_s", data["fixed_step_s"])),
    )


def build_fleet(data: dict[str, Any]) -> FleetSpec:
    """The ``fleet`` mapping as a :class:`FleetSpec`."""
    allowed = {"router", "kv_link_bandwidth_bytes_per_s", "kv_link_latency_s", "pools"}
    reject_unknown_keys("fleet", data, allowed)
    pools_raw = data.get("pools")
    if not isinstance(pools_raw, dict) or not pools_raw:
        raise ConfigError("fleet.pools", "must map pool names to pool settings")
    pools = tuple(build_pool(str(name), dict(pool)) for name, pool in pools_raw.items())
    return FleetSpec(
        pools=pools,
        router=str(data.get("router", "least_outstanding")),
        kv_link_bandwidth_bytes_per_s=float(data.get("kv_link_bandwidth_bytes_per_s", 50e9)),
        kv_link_latency_s=float(data.get("kv_link_latency_s", 20e-6)),
    )


def build_workload(data: dict[str, Any]) -> WorkloadSpec:
    """The ``workload`` mapping as a :class:`WorkloadSpec` (trace paths made absolute)."""
    allowed = {"arrivals", "tree", "n_trees", "horizon_s"}
    reject_unknown_keys("workload", data, allowed)
    arrivals = dict(data.get("arrivals") or {})
    if arrivals.get("kind") == "trace" and isinstance(arrivals.get("path"), str):
        arrivals["path"] = to_absolute_path(arrivals["path"])
    n_trees = data.get("n_trees")
    horizon = data.get("horizon_s")
    return WorkloadSpec(
        arrivals=ArrivalProcess.from_dict(arrivals),
        tree=TreeShape.from_dict(data.get("tree") or {"kind": "chat"}),
        n_trees=None if n_trees is None else require_positive_int("workload.n_trees", n_trees),
        horizon_s=None
        if horizon is None
        else float(require_positive("workload.horizon_s", horizon)),
    )


def build_economics(node: Any) -> EconomicsSpec:
    """The ``economics`` config node as an :class:`EconomicsSpec`."""
    return EconomicsSpec.from_dict(to_mapping(node or {}, "economics"))
