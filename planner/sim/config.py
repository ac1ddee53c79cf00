"""Typed description of a simulated fleet: pools of replicas, routing, batching limits, SLOs.

Frozen dataclasses built from plain mappings by :mod:`planner.config.fleet`; the engine takes these,
never a config object. Hardware, model and efficiency factors arrive as already-validated specs.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.perf.efficiency import EfficiencyFactors
from planner.specs.errors import (
    ConfigError,
    require_choice,
    require_fraction,
    require_non_negative,
    require_positive,
    require_positive_int,
)
from planner.specs.hardware import System
from planner.specs.model import Model

POOL_ROLES = ("unified", "prefill", "decode")
ROUTERS = (
    "round_robin",
    "least_outstanding",
    "power_of_two",
    "prefix_affinity",
    "central_queue",
)


@dataclass(frozen=True)
class BatchingSpec:
    """Continuous-batching limits of every replica in a pool.

    Attributes:
        max_batch: Most sequences decoding at once on one replica (``max_num_seqs``).
        token_budget: Most tokens (decode + prefill chunk) one iteration processes
            (``max_num_tokens``); the prefill chunk is what the decoding sequences leave.
        prefix_cache_fraction: Fraction of a replica's KV memory kept as an LRU cache of shared
            prompt prefixes (0 disables prefix caching).
    """

    max_batch: int = 256
    token_budget: int = 8192
    prefix_cache_fraction: float = 0.2

    def __post_init__(self) -> None:
        prefix = "batching"
        require_positive_int(f"{prefix}.max_batch", self.max_batch)
        require_positive_int(f"{prefix}.token_budget", self.token_budget)
        require_fraction(f"{prefix}.prefix_cache_fraction", self.prefix_cache_fraction)
        if self.token_budget < self.max_batch:
            raise ConfigError(
                f"{prefix}.token_budget",
                f"must be >= max_batch ({self.max_batch}) so every decoding sequence fits one "
                f"step; got {self.token_budget}",
            )


@dataclass(frozen=True)
class PoolSpec:
    """One pool: identical replicas of one model on one kind of hardware.

    Attributes:
        name: Pool name (used in metrics keys: ``pools.<name>.*``).
        role: ``unified`` (prefill and decode), ``prefill`` or ``decode``.
        system: Hardware system of the pool.
        model: Model served.
        efficiency: Efficiency factors of the hardware's family.
        racks: Racks bought for the pool (>= 1); replicas = floor(chips / chips per replica).
        precision: Weight precision.
        kv_precision: KV-cache precision.
        tp: Tensor-parallel degree (GPUs).
        ep: Expert-parallel degree within the ``tp`` GPUs (divides ``tp``).
        dp_attention: Attention data-parallel over the ``tp`` GPUs (DEP8 = tp 8, ep 8, true).
        stack: Serving stack whose efficiency profile ``efficiency`` is (``trtllm``, ``sglang``,
            ``vllm``; None = the family's default).
        chips: LPU chain length (``None``: fewest whole racks holding the weights).
        batching: Continuous-batching limits.
        step_jitter_cv: Coefficient of variation of GPU step times (lognormal); LPUs are
            deterministic and must leave it 0.
        replicas: Replicas to run (``None``: as many as the racks hold); at most what they hold.
        fixed_step_s: Replace the roofline by a constant iteration time, s (queueing tests and
            abstract what-ifs; see ``planner.perf.fixed``).
    """

    name: str
    role: str
    system: System
    model: Model
    efficiency: EfficiencyFactors
    racks: int
    precision: str = "fp8"
    kv_precision: str = "bf16"
    tp: int = 1
    ep: int = 1
    dp_attention: bool = False
    stack: str | None = None
    chips: int | None = None
    batching: BatchingSpec = BatchingSpec()
    step_jitter_cv: float = 0.0
    replicas: int | None = None
    fixed_step_s: float | None = None

    def __post_init__(self) -> None:
        prefix = f"fleet.pools.{self.name}"
        require_choice(f"{prefix}.role", self.role, POOL_ROLES)
        require_positive_int(f"{prefix}.racks", self.racks)
        require_non_negative(f"{prefix}.step_jitter_cv", self.step_jitter_cv)
        if self.replicas is not None:
            require_positive_int(f"{prefix}.replicas", self.replicas)
        if self.fixed_step_s is not None:
            require_positive(f"{prefix}.fixed_step_s", self.fixed_step_s)
        if self.system.accelerator.kind == "lpu" and self.step_jitter_cv > 0:
            raise ConfigError(
                f"{prefix}.step_jitter_cv",
                "must be 0 on LPU hardware (compiler-scheduled, deterministic step times)",
            )


@dataclass(frozen=True)
class SloSpec:
    """Service-level objectives; a tree meets them when all three hold.

    Attributes:
        tree_e2e_s: Limit on a tree's end-to-end latency, s.
        ttft_s: Limit on every call's time to first token, s.
        tpot_s: Limit on every call's mean time per output token, s.
    """

    tree_e2e_s: float = 60.0
    ttft_s: float = 10.0
    tpot_s: float = 0.1

    def __post_init__(self) -> None:
        for name in ("tree_e2e_s", "ttft_s", "tpot_s"):
            require_positive(f"slo.{name}", getattr(self, name))


@dataclass(frozen=True)
class FleetSpec:
    """The serving fleet: either one unified pool, or a prefill pool feeding a decode pool.

    Attributes:
        pools: The pools (one ``unified``, or one ``prefill`` and one ``decode``).
        router: How calls are placed on replicas: ``round_robin``, ``least_outstanding``,
            ``prefix_affinity`` (replica chosen by the call's prefix group, so a tree's calls
            share one replica's prefix cache) or ``central_queue`` (one FIFO per pool; a replica
            takes the next call when it has room).
        kv_link_bandwidth_bytes_per_s: Prefill-to-decode network bandwidth per transfer, bytes/s.
        kv_link_latency_s: Latency of one KV transfer, s.
    """

    pools: tuple[PoolSpec, ...]
    router: str = "least_outstanding"
    kv_link_bandwidth_bytes_per_s: float = 50e9
    kv_link_latency_s: float = 20e-6

    def __post_init__(self) -> None:
        require_choice("fleet.router", self.router, ROUTERS)
        require_positive("fleet.kv_link_bandwidth_bytes_per_s", self.kv_link_bandwidth_bytes_per_s)
        require_non_negative("fleet.kv_link_latency_s", self.kv_link_latency_s)
        roles = sorted(p.role for p in self.pools)
        if roles not in (["unified"], ["decode", "prefill"]):
            raise ConfigError(
                "fleet.pools",
                f"must be one unified pool, or one prefill and one decode pool; got roles {roles}",
            )
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ConfigError("fleet.pools", f"pool names must be unique; got {names}")
        if len(self.pools) == 2:
            prefill, decode = self.prefill_pool, self.decode_pool
            if prefill.model.name != decode.model.name:
                raise ConfigError(
                    f"fleet.pools.{decode.name}.model",
                    f"must be the prefill pool's model ({prefill.model.name}); "
                    f"got {decode.model.name}",
                )

    @property
    def disaggregated(self) -> bool:
        """Whether prefill and decode run on separate pools."""
        return len(self.pools) == 2

    @property
    def prefill_pool(self) -> PoolSpec:
        """The pool that prefills (the unified pool when not disaggregated)."""
        return next(p for p in self.pools if p.role in ("unified", "prefill"))

    @property
    def decode_pool(self) -> PoolSpec:
        """The pool that decodes (the unified pool when not disaggregated)."""
        return next(p for p in self.pools if p.role in ("unified", "decode"))
