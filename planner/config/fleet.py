"""Plain mappings -> the simulator's specs: fleets of pools, batching, SLOs, failures, workloads.

Hardware and models are named in fleet files (``hardware: gb200_nvl72``) and loaded from
``conf/hardware/`` and ``conf/model/`` (:func:`planner.config.resolve.load_named`), so a fleet can
mix accelerators in several pools. Every number is type-checked here before it reaches a spec;
the specs check ranges and cross-field rules themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from planner.config import specs as spec_parsers
from planner.config.errors import reject_unknown
from planner.config.resolve import CONF_DIR, load_named, load_yaml
from planner.config.workload import arrivals as parse_arrivals
from planner.config.workload import delay_law, tree_shape
from planner.perf.borrowed import (
    BORROWED_FILE,
    ResolvedEfficiency,
    parse_borrowing,
    resolve_efficiency,
)
from planner.perf.efficiency import DEFAULT_STACK, STACKS, EfficiencyFactors, profile_file
from planner.sim.config import BatchingSpec, FleetSpec, PoolSpec, SloSpec
from planner.sim.faults import FailureSpec
from planner.sim.workload_draw import WorkloadSpec
from planner.specs.errors import (
    ConfigError,
    field_prefix,
    require_choice,
    require_non_negative,
    require_positive,
    require_positive_int,
)

POOL_KEYS = (
    "role",
    "hardware",
    "model",
    "racks",
    "precision",
    "kv_precision",
    "stack",
    "tp",
    "ep",
    "dp_attention",
    "chips",
    "batching",
    "step_jitter_cv",
    "replicas",
    "fixed_step_s",
)


def mapping(data: object, field: str) -> Mapping[str, Any]:
    """``data`` if it is a mapping (``None``: empty), else a ConfigError naming ``field``."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(field, f"must be a mapping, got {type(data).__name__}")
    return data


def _text(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(field, f"must be a string, got {value!r}")
    return value


def resolved_efficiency(family: str, stack: str | None = None) -> ResolvedEfficiency:
    """An accelerator family's factors for a serving stack, fitted or borrowed.

    A family's own profile is ``conf/efficiency/<family>.yaml`` (its default stack) or
    ``<family>__<stack>.yaml``; a stack the family has no rows for borrows a documented
    neighbouring stack (:data:`planner.perf.efficiency.BORROWED`). A family with no file at all
    borrows its donor family's profile for the same stack through
    ``conf/efficiency/borrowed.yaml`` (see :mod:`planner.perf.borrowed`). Either way the result
    says ``calibrated: false``.

    Raises:
        ConfigError: An unknown stack, a stack the family cannot run, or a family with neither
            factors nor a borrowing rule.
    """

    def fitted(candidate: str) -> dict[str, Any] | None:
        if candidate == BORROWED_FILE:
            return None
        own_file = CONF_DIR / "efficiency" / f"{candidate}.yaml"
        if candidate not in DEFAULT_STACK and not own_file.exists():
            return None
        name, calibrated = profile_file(candidate, stack)
        path = CONF_DIR / "efficiency" / name
        if not path.exists():
            return None
        data = load_yaml(path, f"efficiency[{candidate}]")
        return data if calibrated else {**data, "calibrated": False}

    table = load_yaml(CONF_DIR / "efficiency" / f"{BORROWED_FILE}.yaml", "efficiency.borrowed")
    return resolve_efficiency(family, fitted, parse_borrowing(table))


def efficiency(family: str, stack: str | None = None) -> EfficiencyFactors:
    """The factors of an accelerator family and stack (:func:`resolved_efficiency`)."""
    return resolved_efficiency(family, stack).factors


def batching(data: object, prefix: str) -> BatchingSpec:
    """A :class:`BatchingSpec` from ``{max_batch, token_budget, prefix_cache_fraction}``.

    The spec checks its own ranges (named ``batching.<field>``); they are re-named here by the
    full path, e.g. ``fleet.pools.gpu.batching.max_batch``.
    """
    data = mapping(data, prefix)
    reject_unknown(prefix, data, ("max_batch", "token_budget", "prefix_cache_fraction"))
    with field_prefix("batching", prefix):
        return BatchingSpec(**{str(k): v for k, v in data.items()})


def slo(data: object, prefix: str = "slo") -> SloSpec:
    """A :class:`SloSpec` (``planner``'s ``slo``); missing keys keep the defaults."""
    data = mapping(data, prefix)
    reject_unknown(prefix, data, ("tree_e2e_s", "ttft_s", "tpot_s"))
    return SloSpec(
        **{
            key: float(require_positive(f"{prefix}.{key}", data[key]))
            for key in ("tree_e2e_s", "ttft_s", "tpot_s")
            if key in data
        }
    )


def failures(data: object, prefix: str = "failures") -> FailureSpec | None:
    """A :class:`FailureSpec` from the ``failures`` mapping; ``None`` when ``enabled`` is false."""
    data = mapping(data, prefix)
    allowed = (
        "enabled",
        "gpu_failures_per_accelerator_hour",
        "lpu_failures_per_accelerator_hour",
        "rate_multiplier",
        "blast_radius",
        "repair_time",
        "max_retries",
    )
    reject_unknown(prefix, data, allowed)
    enabled = data.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{prefix}.enabled", f"must be true or false, got {enabled!r}")
    if not enabled:
        return None
    kwargs: dict[str, Any] = {
        str(k): v for k, v in data.items() if k not in ("enabled", "repair_time")
    }
    for key in (
        "gpu_failures_per_accelerator_hour",
        "lpu_failures_per_accelerator_hour",
        "rate_multiplier",
    ):
        if key in kwargs:
            kwargs[key] = float(require_non_negative(f"{prefix}.{key}", kwargs[key]))
    if "blast_radius" in kwargs:
        _text(f"{prefix}.blast_radius", kwargs["blast_radius"])
    if "repair_time" in data:
        kwargs["repair_time"] = delay_law(data["repair_time"], f"{prefix}.repair_time")
    return FailureSpec(**kwargs)


def pool(name: str, data: object) -> PoolSpec:
    """One ``fleet.pools.<name>`` mapping as a :class:`PoolSpec` (hardware/model by name)."""
    prefix = f"fleet.pools.{name}"
    data = mapping(data, prefix)
    reject_unknown(prefix, data, POOL_KEYS)
    for key in ("role", "hardware", "model", "racks"):
        if data.get(key) is None:
            raise ConfigError(f"{prefix}.{key}", "is required")
    system = spec_parsers.system(load_named("hardware", data["hardware"], f"{prefix}.hardware"))
    model = spec_parsers.model(load_named("model", data["model"], f"{prefix}.model"))
    chips, replicas, fixed = data.get("chips"), data.get("replicas"), data.get("fixed_step_s")
    stack = data.get("stack")
    if stack is not None:
        stack = require_choice(f"{prefix}.stack", _text(f"{prefix}.stack", stack), STACKS)
    dp_attention = data.get("dp_attention", False)
    if not isinstance(dp_attention, bool):
        raise ConfigError(f"{prefix}.dp_attention", f"must be true or false, got {dp_attention!r}")
    try:
        factors = efficiency(system.accelerator.family, stack)
    except ConfigError as error:
        if error.field != "stack":
            raise
        raise ConfigError(f"{prefix}.stack", error.problem) from None
    return PoolSpec(
        name=name,
        role=_text(f"{prefix}.role", data["role"]),
        system=system,
        model=model,
        efficiency=factors,
        racks=require_positive_int(f"{prefix}.racks", data["racks"]),
        precision=_text(f"{prefix}.precision", data.get("precision", "fp8")),
        kv_precision=_text(f"{prefix}.kv_precision", data.get("kv_precision", "bf16")),
        tp=require_positive_int(f"{prefix}.tp", data.get("tp", 1)),
        ep=require_positive_int(f"{prefix}.ep", data.get("ep", 1)),
        dp_attention=dp_attention,
        stack=stack,
        chips=None if chips is None else require_positive_int(f"{prefix}.chips", chips),
        batching=batching(data.get("batching"), f"{prefix}.batching"),
        step_jitter_cv=float(
            require_non_negative(f"{prefix}.step_jitter_cv", data.get("step_jitter_cv", 0.0))
        ),
        replicas=None if replicas is None else require_positive_int(f"{prefix}.replicas", replicas),
        fixed_step_s=None
        if fixed is None
        else float(require_positive(f"{prefix}.fixed_step_s", fixed)),
    )


def fleet(data: object) -> FleetSpec:
    """The ``fleet`` mapping as a :class:`FleetSpec`."""
    data = mapping(data, "fleet")
    reject_unknown(
        "fleet", data, ("router", "kv_link_bandwidth_bytes_per_s", "kv_link_latency_s", "pools")
    )
    pools_raw = data.get("pools")
    if not isinstance(pools_raw, Mapping) or not pools_raw:
        raise ConfigError("fleet.pools", "must map pool names to pool settings")
    return FleetSpec(
        pools=tuple(pool(str(name), settings) for name, settings in pools_raw.items()),
        router=_text("fleet.router", data.get("router", "least_outstanding")),
        kv_link_bandwidth_bytes_per_s=float(
            require_positive(
                "fleet.kv_link_bandwidth_bytes_per_s",
                data.get("kv_link_bandwidth_bytes_per_s", 50e9),
            )
        ),
        kv_link_latency_s=float(
            require_non_negative("fleet.kv_link_latency_s", data.get("kv_link_latency_s", 20e-6))
        ),
    )


def workload(data: object, base_dir: Path | None = None) -> WorkloadSpec:
    """The ``workload`` mapping as a :class:`WorkloadSpec`.

    Args:
        data: ``{arrivals, tree, n_trees, horizon_s}``.
        base_dir: Directory a relative trace path is resolved against (the CLI passes Hydra's
            original working directory); ``None`` keeps the path as given.
    """
    data = mapping(data, "workload")
    reject_unknown("workload", data, ("arrivals", "tree", "n_trees", "horizon_s"))
    arrivals = dict(mapping(data.get("arrivals"), "workload.arrivals"))
    path = arrivals.get("path")
    if base_dir is not None and arrivals.get("kind") == "trace" and isinstance(path, str):
        arrivals["path"] = str(base_dir / path)
    n_trees, horizon = data.get("n_trees"), data.get("horizon_s")
    return WorkloadSpec(
        arrivals=parse_arrivals(arrivals),
        tree=tree_shape(data.get("tree") or {"kind": "chat"}),
        n_trees=None if n_trees is None else require_positive_int("workload.n_trees", n_trees),
        horizon_s=None
        if horizon is None
        else float(require_positive("workload.horizon_s", horizon)),
    )
