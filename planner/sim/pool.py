"""One pool during a run: its replicas, its router, its KV ledger and its busy timeline.

Replicas report back through the pool (``on_admit``, ``on_first_token``,
``on_prefill_complete``, ``on_finish``, ``on_load_change``); the pool records timestamps, keeps
its router's index current and tells the engine (through the small :class:`PoolHost` protocol,
so this module does not import the engine).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol, cast

import numpy as np
import simpy
from librt.vecs import vec
from mypy_extensions import i64
from numpy.typing import NDArray

from planner.perf.fixed import FixedStepReplica
from planner.perf.gpu import GpuReplica
from planner.perf.gpu_step import GpuStepCoefficients
from planner.perf.replica import Replica, build_replica
from planner.sim.clock import EventQueue, int_vector
from planner.sim.config import PoolSpec
from planner.sim.jitter import JitterStream
from planner.sim.paged_kv import KV_BLOCK_TOKENS, paged_kv_bytes
from planner.sim.replica import NO_RESERVATION, ReplicaSim
from planner.sim.results import PoolStats
from planner.sim.routing import Router, make_router
from planner.specs.errors import ConfigError

TIMELINE_BINS = 200
"""Bins of the per-pool utilization timeline over the arrival window."""

MAX_TIMELINE_BINS = 512
"""The timeline never holds more bins: past them (a long drain, a runaway clock) adjacent bins
merge pairwise and the width doubles, so its memory is fixed whatever the simulated time."""

BYTES_PER_REPLICA = 4096
"""[M] Simulator state per replica (a ``ReplicaSim``, its queues, its routing entries incl. 16
ring points), bytes: tracemalloc over building 16,000 replicas gave 3.1 kB resident and 4.1 kB
at the setup peak. A jitter block in use adds 12 kB (drawn only once the replica runs)."""

MAX_SETUP_BYTES = 2 * 1024**3
"""[A] Most simulator state a run may build for its replicas (2 GiB): a larger fleet is refused
before anything is allocated (split it into cells, or simulate a representative slice)."""

UNBOUNDED_KV_BYTES = 1 << 62
"""KV capacity of a model without a KV limit (the fixed-step test model)."""


class PoolHost(Protocol):
    """What a pool needs from the engine that runs it."""

    env: simpy.Environment
    clock: EventQueue
    stepwise: bool
    timeline_bin_s: float
    input_tokens: vec[i64]
    output_tokens: vec[i64]
    shared_prefix_tokens: vec[i64]
    prefix_group: vec[i64]
    admit_s: NDArray[np.float64]
    decode_admit_s: NDArray[np.float64]
    first_token_s: NDArray[np.float64]
    cached_tokens: NDArray[np.int64]
    prefill_replica: NDArray[np.int64]
    decode_replica: NDArray[np.int64]

    def finish(self, call: int, now: float) -> None:
        """``call`` produced its last token at ``now``, s."""
        ...

    def hand_off(self, call: int, replica: ReplicaSim) -> None:
        """Ship prefilled ``call``'s KV from ``replica`` to the decode pool."""
        ...

    def fail_call(self, call: int, reason: int) -> None:
        """Give ``call`` up with failure code ``reason``."""
        ...


def pool_replica(spec: PoolSpec) -> Replica:
    """The cost model of one replica of a pool (the fixed-step model where the pool asks for it)."""
    if spec.fixed_step_s is not None:
        return FixedStepReplica(spec.model, spec.system, spec.fixed_step_s)
    try:
        return build_replica(
            spec.model,
            spec.system,
            spec.efficiency,
            precision=spec.precision,
            kv_precision=spec.kv_precision,
            tp=spec.tp,
            ep=spec.ep,
            dp_attention=spec.dp_attention,
            chips=spec.chips,
        )
    except ConfigError as error:
        # The cost model names its own arguments (``tp``, ``precision``, ``model``); in a fleet
        # they are the pool's fields.
        if error.field.startswith("fleet."):
            raise
        raise ConfigError(f"fleet.pools.{spec.name}.{error.field}", error.problem) from None


def replica_count(spec: PoolSpec, perf: Replica) -> int:
    """Replicas a pool runs, refused (ConfigError) if too few chips or too much to build."""
    chips = spec.racks * spec.system.accelerators_per_rack
    n_replicas = chips // perf.accelerators
    if spec.replicas is not None:
        if spec.replicas > n_replicas:
            raise ConfigError(
                f"fleet.pools.{spec.name}.replicas",
                f"{spec.racks} racks hold {n_replicas} replicas; got {spec.replicas}",
            )
        n_replicas = spec.replicas
    if n_replicas < 1:
        raise ConfigError(
            f"fleet.pools.{spec.name}.racks",
            f"{spec.racks} racks hold {chips} chips, fewer than one replica needs "
            f"({perf.accelerators}); allowed: racks >= "
            f"{-(-perf.accelerators // spec.system.accelerators_per_rack)}",
        )
    need = n_replicas * BYTES_PER_REPLICA
    if need > MAX_SETUP_BYTES:
        field = "replicas" if spec.replicas is not None else "racks"
        raise ConfigError(
            f"fleet.pools.{spec.name}.{field}",
            f"{n_replicas:,} replicas would need about {need / 1e9:,.1f} GB of simulator state; "
            f"allowed: at most {MAX_SETUP_BYTES // BYTES_PER_REPLICA:,} replicas per pool "
            f"({MAX_SETUP_BYTES / 1e9:.1f} GB)",
        )
    return n_replicas


class PoolRuntime:
    """One pool during a run (see the module docstring).

    Args:
        spec: The pool.
        host: The engine (call data and where finished / prefilled calls go).
        router: Router name (``fleet.router``).
        jitter_seed: Root of the replicas' step-time jitter streams (one child per replica).
        router_rng: Random stream of randomized routers.
    """

    def __init__(
        self,
        spec: PoolSpec,
        host: PoolHost,
        router: str,
        jitter_seed: np.random.SeedSequence,
        router_rng: np.random.Generator,
    ) -> None:
        """Build the pool's cost model, replicas, router and ledgers (see the class docstring)."""
        self.spec = spec
        self.host = host
        self.clock = host.clock
        self.perf = pool_replica(spec)
        n_replicas = replica_count(spec, self.perf)
        self.role = spec.role
        self.prefills = spec.role in ("unified", "prefill")
        self.decodes = spec.role in ("unified", "decode")
        self.holds_kv_for_transfer = spec.role == "prefill"
        self.max_batch = spec.batching.max_batch
        self.token_budget = spec.batching.token_budget
        cache_fraction = spec.batching.prefix_cache_fraction if self.prefills else 0.0
        budget = self.perf.kv_budget_bytes
        admission = budget * (1.0 - cache_fraction)
        self.kv_capacity_bytes = int(admission) if math.isfinite(admission) else UNBOUNDED_KV_BYTES
        per_token = (
            self.perf.kv_bytes_for_context(1000.0) - self.perf.kv_bytes_for_context(0.0)
        ) / 1000.0
        cache_tokens = (
            budget * cache_fraction / per_token if cache_fraction and per_token > 0 else 0.0
        )
        # An unbounded budget (the fixed-step test model) gets an unbounded cache.
        self.prefix_cache_tokens = int(cache_tokens) if math.isfinite(cache_tokens) else 1 << 62
        self.step_time_fn = self.perf.make_step_time_fn()
        # A GPU replica's step function is GpuReplica.make_step_time_fn's partial of
        # gpu_step_time_s on these coefficients; the compiled replica calls it natively with them
        # (the same function on the same arguments, without a Python-level call: reference run
        # 95,500 -> 99,700 sub-calls/s, medians of 3).
        self.gpu_step_coefficients: GpuStepCoefficients | None = (
            self.perf.coefficients if isinstance(self.perf, GpuReplica) else None
        )
        self.prefill_attention_flops = spec.model.prefill_attention_flops_fn()
        self.kv_bytes_for_context = self.perf.kv_bytes_for_context
        self.input_tokens = host.input_tokens
        self.output_tokens = host.output_tokens
        self.shared_prefix_tokens = host.shared_prefix_tokens
        self.prefix_group = host.prefix_group
        # KV bytes each call holds here (NO_RESERVATION: none), by call id.
        self.reserved_bytes = int_vector(np.full(len(host.input_tokens), NO_RESERVATION))
        self._reserve_bytes = self._reserve_table()
        self.central_queue: deque[int] | None = deque() if router == "central_queue" else None
        self.stepwise = host.stepwise
        self.timeline_bin_s = host.timeline_bin_s
        # Doubles in a flat vector: adding to a bin boxes no float (once per segment).
        self.busy_timeline: vec[float] = vec[float]([0.0] * MAX_TIMELINE_BINS)
        cv = spec.step_jitter_cv
        streams = jitter_seed.spawn(n_replicas) if cv > 0 else []
        self.replicas = [
            ReplicaSim(
                host.env,
                self,
                i,
                JitterStream(np.random.default_rng(streams[i]), cv) if cv > 0 else None,
            )
            for i in range(n_replicas)
        ]
        self.router: Router = make_router(
            router, self.replicas, rng=router_rng, prefix_group=self.prefix_group
        )
        # Hot-loop callbacks bound straight to their targets (one Python call less per use):
        # a replica's load change goes to the router, a decoded call to the engine.
        self.on_load_change: Callable[[ReplicaSim], None] = self.router.on_change
        self.on_finish: Callable[[int, float], None] = host.finish
        self.n_live = n_replicas
        self.parked: deque[int] = deque()  # calls waiting while every replica is down
        self.failures = 0
        self.down_s = 0.0
        self.gave_up_s: float | None = None
        self.give_up_reason = ""

    @staticmethod
    def check_size(spec: PoolSpec) -> int:
        """Replicas the pool would run; ConfigError if too few chips or too many to build."""
        return replica_count(spec, pool_replica(spec))

    # ------------------------------------------------------------------------------ timeline
    def record_busy(self, start_s: float, duration_s: float) -> None:
        """Add a busy interval of one replica to the utilization timeline."""
        end_s = start_s + duration_s
        while end_s > self.timeline_bin_s * MAX_TIMELINE_BINS:
            self.coarsen()
        width = self.timeline_bin_s
        timeline = self.busy_timeline
        index = int(start_s / width)
        while start_s < end_s and index < MAX_TIMELINE_BINS:
            bin_end = (index + 1) * width
            piece_end = bin_end if bin_end < end_s else end_s
            timeline[index] += piece_end - start_s
            start_s = piece_end
            index += 1

    def coarsen(self) -> None:
        """Merge adjacent timeline bins pairwise (the width doubles; the length stays fixed)."""
        old = self.busy_timeline
        merged = [old[i] + old[i + 1] for i in range(0, MAX_TIMELINE_BINS, 2)]
        self.busy_timeline = vec[float](merged + [0.0] * (MAX_TIMELINE_BINS - len(merged)))
        self.timeline_bin_s *= 2.0

    # --------------------------------------------------------------------------- admission
    def _reserve_tokens(self, call: int, cached_tokens: int) -> int:
        tokens = self.input_tokens[call] - cached_tokens
        if not self.holds_kv_for_transfer:
            tokens += self.output_tokens[call]
        return tokens

    def _reserve_table(self) -> list[int]:
        """Every call's reservation without a prefix-cache hit, bytes (one per call).

        The cost model runs once per distinct token count (a few thousand), not once per
        admission attempt; the values are those :meth:`call_reserve_bytes` computes.
        """
        tokens = np.asarray(self.input_tokens, dtype=np.int64)
        if not self.holds_kv_for_transfer:
            tokens = tokens + np.asarray(self.output_tokens, dtype=np.int64)
        distinct, inverse = np.unique(tokens, return_inverse=True)
        kv = self.kv_bytes_for_context
        values = [math.ceil(kv(count)) for count in distinct.tolist()]
        return [values[i] for i in inverse.tolist()]

    def call_reserve_bytes(self, call: int, cached_tokens: int) -> int:
        """KV bytes a call reserves on admission (whole bytes, rounded up).

        Unified and decode replicas: its whole context (prompt + output) less the prefix-cache
        hit; prefill replicas: its prompt only less the hit (held until the transfer lands).
        """
        if not cached_tokens:
            return self._reserve_bytes[call]
        return math.ceil(self.kv_bytes_for_context(self._reserve_tokens(call, cached_tokens)))

    def fits_one(self, call: int) -> bool:
        """Whether ``call`` alone fits an empty replica's KV memory.

        Where the replica pages its KV, in whole blocks: a lone sequence must be able to grow to
        its full context.
        """
        if self.holds_kv_for_transfer:
            return self.call_reserve_bytes(call, 0) <= self.kv_capacity_bytes
        state, block = paged_kv_bytes(self.kv_bytes_for_context)
        tokens = self.input_tokens[call] + self.output_tokens[call]
        blocks = -(-tokens // KV_BLOCK_TOKENS)
        return state + blocks * block <= self.kv_capacity_bytes

    # ------------------------------------------------------------------------------ routing
    def submit(self, call: int) -> None:
        """Place a ready call on a replica (or in the pool queue, or parked, or fail it)."""
        if self.gave_up_s is not None:
            self.host.fail_call(call, FAIL_POOL_DOWN)
            return
        if self.n_live == 0:
            self.parked.append(call)
            return
        # The router indexes this pool's replicas, so what it returns is one of them.
        replica = cast(ReplicaSim, self.router.choose(call))
        if self.central_queue is not None:
            self.central_queue.append(call)
            if replica.has_batch_room():
                replica.wake()
            return
        replica.submit(call)

    # ---------------------------------------------------------------------------- callbacks
    def on_admit(self, call: int, replica: ReplicaSim, now: float, hit: int) -> None:
        """Record ``call``'s admission on ``replica`` at ``now`` with ``hit`` cached tokens."""
        host = self.host
        if self.prefills:
            host.admit_s[call] = now
            host.cached_tokens[call] = hit
            host.prefill_replica[call] = replica.index
        if self.decodes:
            host.decode_replica[call] = replica.index
            if not self.prefills:
                host.decode_admit_s[call] = now

    def on_first_token(self, call: int, now: float) -> None:
        """Record ``call``'s first token at ``now``, s."""
        self.host.first_token_s[call] = now

    def on_prefill_complete(self, call: int, replica: ReplicaSim, now: float) -> None:
        """``call``'s prompt is prefilled on ``replica``: finish it or hand its KV off."""
        self.host.first_token_s[call] = now
        if self.role == "unified" or self.output_tokens[call] <= 1:
            self.host.finish(call, now)
        else:
            self.host.hand_off(call, replica)

    # ------------------------------------------------------------------------------ results
    def queued_calls(self) -> list[int]:
        """Calls waiting for admission: on a replica's queue or in the pool queue."""
        calls = [call for r in self.replicas for call in r.waiting_calls()]
        if self.central_queue is not None:
            calls += list(self.central_queue)
        return calls

    def check_invariants(self) -> None:
        """Assert every replica's KV ledger balances and no call holds KV twice."""
        admitted = [call for r in self.replicas for call in r.admitted_calls()]
        holding = int((np.asarray(self.reserved_bytes) != NO_RESERVATION).sum())
        assert len(admitted) == len(set(admitted)) == holding
        for replica in self.replicas:
            replica.check_invariants()

    def stats(self, now: float, bin_s: float) -> PoolStats:
        """The pool's totals, its timeline at width ``bin_s`` (its own times a power of 2)."""
        while self.timeline_bin_s < bin_s * (1 - 1e-9):
            self.coarsen()
        spec = self.spec
        accel = spec.system.accelerator
        # Hosts, switches and fans: the system's power beyond its chips, shared per chip.
        overhead = (
            spec.system.system_power_kw
            * 1000.0
            / (spec.system.accelerators_per_system * accel.max_power_w)
        )
        replicas: Sequence[ReplicaSim] = self.replicas
        return PoolStats(
            name=spec.name,
            role=spec.role,
            replicas=len(replicas),
            accelerators=len(replicas) * self.perf.accelerators,
            racks=spec.racks,
            busy_s=np.array([r.busy_s for r in replicas]),
            batch_s=np.array([r.batch_s for r in replicas]),
            decode_tokens=sum(r.decode_tokens for r in replicas),
            prefill_tokens=sum(r.prefill_tokens for r in replicas),
            idle_power_w=accel.idle_power_w * overhead,
            max_power_w=accel.max_power_w * overhead,
            busy_timeline_s=np.array(self.busy_timeline, dtype=np.float64),
            timeline_bin_s=self.timeline_bin_s,
            down_s=self.down_s + sum(now - r.down_since for r in replicas if r.down),
            failures=self.failures,
            preemptions=sum(r.preemptions for r in replicas),
            gave_up_s=self.gave_up_s,
            give_up_reason=self.give_up_reason,
            calibrated=spec.efficiency.calibrated,
            borrowed_from=spec.efficiency.borrowed_from,
            hardware_confirmed=accel.confirmed,
        )


FAIL_RETRIES = 1
"""Failure reason: the call lost its replica more than ``max_retries`` times."""
FAIL_POOL_DOWN = 2
"""Failure reason: its pool gave up (no replica can come back within the horizon)."""
