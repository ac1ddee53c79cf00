"""Accelerator failures during a run: Poisson failures, blast radius, repair, retried calls.

Every installed accelerator of a pool fails at a constant rate per accelerator-hour (default: the
Meta Llama 3 training figures, about one interruption per 50,700 GPU-hours, shared/reference/
hardware.md A6; LPU rates are set separately). A failure strikes one accelerator chosen
uniformly and takes down every replica that shares its *blast radius*:

* ``replica``: the replica using that accelerator;
* ``host``: every replica on the same host (an 8-GPU HGX node, a 4-GPU NVL72 compute tray, an
  8-chip GroqNode: ``System.accelerators_per_host``);
* ``domain``: every replica in the same scale-up domain (a whole NVL72 rack, an LPU chain).

A downed replica comes back after a repair time drawn from a law. Its in-flight calls lose
their KV cache: each is restarted from the start (prefill again, on any live replica) with its
retry count raised; once it has been restarted ``max_retries`` times, the next loss fails it and
its tree dies (its calls in flight drain; its calls not yet ready are abandoned).

Every run ends: a pool all of whose replicas are down *gives up* when failures outpace repairs,
that is when the expected time until one of its replicas survives a whole repair without being
struck again, ``(exp(lambda R) - 1) / lambda`` (``lambda``: the rate of failures striking a
replica's blast group, ``R``: the mean repair time), exceeds :data:`GIVE_UP_HORIZON_S`. Its
parked and queued calls fail (reason ``pool_down``), later calls fail on arrival, and its
failure process stops; the summary says when and why. Failure processes also stop once every
tree has finished or failed. All failure handling lives here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np
import simpy

from planner.sim.pool import FAIL_POOL_DOWN, PoolRuntime
from planner.sim.replica import ReplicaSim
from planner.specs.errors import (
    require_choice,
    require_non_negative,
    require_non_negative_int,
)
from planner.workload.lengths import DelayLaw

BLAST_RADII = ("replica", "host", "domain")

LLAMA3_FAILURES_PER_GPU_HOUR = 1.0 / 50_700.0
"""Unexpected interruptions per GPU-hour: 419 in 16,384 H100 x 54 days (hardware.md A6, [D])."""

DEFAULT_REPAIR = DelayLaw("lognormal", median_s=1800.0, sigma=1.0)
"""[A] Repair: median 30 min (automated drain, reset or host swap), heavy tail to hours; the
retrieved sources give interruption counts but not repair times."""

FAILURE_DRAW_BLOCK = 1024

GIVE_UP_HORIZON_S = 365 * 86400.0
"""[A] A pool whose replicas are all down gives up when the expected time until one comes back
exceeds a year of simulated time: no capacity study waits that long, and at the rates where
this triggers (failures striking a replica's group many times per repair) it is astronomically
longer (the 10,000x LPU stress run: about 10^82 s, 9e74 years)."""


NEVER_YEARS = 1e10
"""[A] An expected wait beyond 10^10 years (about the age of the universe) is stated as never."""


def expected_wait_text(years: float) -> str:
    """An expected wait in years as a review reads it.

    ``"3.2 years"``, or ``"never"`` beyond :data:`NEVER_YEARS` (a figure like 1.89e+275 years
    says nothing more than that).
    """
    if not years < NEVER_YEARS:  # also inf and NaN
        return f"never (over 10^{math.log10(NEVER_YEARS):.0f} years)"
    return f"{years:,.3g} years"


@dataclass(frozen=True)
class FailureSpec:
    """How accelerators fail and recover during a run.

    Attributes:
        gpu_failures_per_accelerator_hour: Failure rate of one GPU, per hour.
        lpu_failures_per_accelerator_hour: Failure rate of one LPU chip, per hour.
        rate_multiplier: Multiplies both rates (fault-injection stress runs use 100x).
        blast_radius: ``replica``, ``host`` or ``domain``.
        repair_time: Law of the time a downed replica takes to come back, s.
        max_retries: Retries a call gets before it is counted as failed.
    """

    gpu_failures_per_accelerator_hour: float = LLAMA3_FAILURES_PER_GPU_HOUR
    lpu_failures_per_accelerator_hour: float = LLAMA3_FAILURES_PER_GPU_HOUR
    rate_multiplier: float = 1.0
    blast_radius: str = "replica"
    repair_time: DelayLaw = DEFAULT_REPAIR
    max_retries: int = 3

    def __post_init__(self) -> None:
        """Refuse negative rates, an unknown blast radius or negative retries (ConfigError)."""
        prefix = "failures"
        require_non_negative(
            f"{prefix}.gpu_failures_per_accelerator_hour", self.gpu_failures_per_accelerator_hour
        )
        require_non_negative(
            f"{prefix}.lpu_failures_per_accelerator_hour", self.lpu_failures_per_accelerator_hour
        )
        require_non_negative(f"{prefix}.rate_multiplier", self.rate_multiplier)
        require_choice(f"{prefix}.blast_radius", self.blast_radius, BLAST_RADII)
        require_non_negative_int(f"{prefix}.max_retries", self.max_retries)

    def rate_per_accelerator_s(self, kind: str) -> float:
        """Failures per second of one accelerator of ``kind`` (``gpu`` or ``lpu``)."""
        hourly = (
            self.gpu_failures_per_accelerator_hour
            if kind == "gpu"
            else self.lpu_failures_per_accelerator_hour
        )
        return hourly * self.rate_multiplier / 3600.0


class FaultHost(Protocol):
    """What the fault injector needs from the engine."""

    env: simpy.Environment
    pools: dict[str, PoolRuntime]

    def settled(self) -> bool:
        """Whether no work can remain (failures stop being drawn then)."""
        ...

    def retry(self, call: int) -> None:
        """Restart ``call``, whose replica went down (or fail it past its retries)."""
        ...

    def fail_call(self, call: int, reason: int) -> None:
        """Give ``call`` up with failure code ``reason``."""
        ...


class FaultInjector:
    """Draws failures for every pool and applies them: downs, repairs, retries, giving up.

    Args:
        engine: The run (see :class:`FaultHost`).
        spec: Failure rates and policies.
        rng: The failures' own random stream (a separate child of the run's seed).
    """

    def __init__(self, engine: FaultHost, spec: FailureSpec, rng: np.random.Generator) -> None:
        """Bind the injector to its run (nothing is drawn until :meth:`start`)."""
        self.engine = engine
        self.spec = spec
        self.rng = rng
        self._repairs: list[float] = []
        self.any_failures = False

    def start(self) -> None:
        """Start one failure process per pool with a non-zero rate."""
        for pool in self.engine.pools.values():
            kind = pool.spec.system.accelerator.kind
            chips = pool.spec.racks * pool.spec.system.accelerators_per_rack
            rate = self.spec.rate_per_accelerator_s(kind) * chips
            if rate > 0:
                self.engine.env.process(self._failures(pool, rate, chips))

    def expected_return_s(self, pool: PoolRuntime) -> float:
        """Expected time until a downed replica of ``pool`` survives a whole repair, s.

        Failures strike the chips of a replica's blast group (the replica's own chips, or the
        host or domain around it, whichever is larger) at ``lambda`` per second; the replica
        comes back once a repair (mean ``R``) passes without a strike: a renewal argument gives
        ``(exp(lambda R) - 1) / lambda`` (exact for a fixed ``R``; used as the estimate for
        every law).
        """
        kind = pool.spec.system.accelerator.kind
        group = max(self._group_size(pool), pool.perf.accelerators)
        rate = self.spec.rate_per_accelerator_s(kind) * group
        repair = self.spec.repair_time.expected_s()
        if rate <= 0:
            return repair
        exponent = rate * repair
        return math.inf if exponent > 700 else math.expm1(exponent) / rate

    def _repair_s(self) -> float:
        if not self._repairs:
            self._repairs = self.spec.repair_time.sample(self.rng, FAILURE_DRAW_BLOCK).tolist()
        return self._repairs.pop()

    def _failures(
        self, pool: PoolRuntime, rate_per_s: float, chips: int
    ) -> simpy.events.ProcessGenerator:
        env, engine = self.engine.env, self.engine
        while not engine.settled():
            gaps = self.rng.exponential(1.0 / rate_per_s, FAILURE_DRAW_BLOCK)
            struck = self.rng.integers(0, chips, FAILURE_DRAW_BLOCK)
            for gap, accelerator in zip(gaps.tolist(), struck.tolist(), strict=True):
                yield env.timeout(gap)
                if engine.settled() or pool.gave_up_s is not None:
                    return  # nothing left to fail
                pool.failures += 1
                for index in self._replicas_hit(pool, int(accelerator)):
                    self.fail_replica(pool, index, self._repair_s())

    def _group_size(self, pool: PoolRuntime) -> int:
        system = pool.spec.system
        group = {
            "replica": pool.perf.accelerators,
            "host": system.accelerators_per_host,
            "domain": system.scale_up_domain_size,
        }[self.spec.blast_radius]
        return max(group, 1)

    def _replicas_hit(self, pool: PoolRuntime, accelerator: int) -> range:
        """Indices of the replicas within the blast radius of ``accelerator``."""
        per_replica = pool.perf.accelerators
        group = self._group_size(pool)
        first = accelerator // group * group
        last = first + group - 1
        replicas = len(pool.replicas)
        low, high = first // per_replica, min(last // per_replica, replicas - 1)
        if self.spec.blast_radius == "replica":
            low = high = accelerator // per_replica
        if low >= replicas:
            return range(0)  # an installed chip no replica uses
        return range(low, high + 1)

    # ------------------------------------------------------------------- downs and repairs
    def fail_replica(self, pool: PoolRuntime, index: int, repair_s: float) -> None:
        """A failure takes replica ``index`` of ``pool`` down for ``repair_s``; retry its calls."""
        self.any_failures = True
        replica = pool.replicas[index]
        env = self.engine.env
        due_s = env.now + repair_s
        if replica.down:  # struck again while down: it comes back after the later repair
            if due_s > replica.repair_at:
                replica.repair_at = due_s
                env.timeout(repair_s).callbacks.append(partial(self._repair, pool, replica, due_s))
            return
        admitted, waiting = replica.fail()
        replica.repair_at = due_s
        pool.n_live -= 1
        for call in admitted:
            self.engine.retry(call)
        for call in waiting:
            pool.submit(call)
        env.timeout(repair_s).callbacks.append(partial(self._repair, pool, replica, due_s))
        if pool.n_live == 0 and pool.gave_up_s is None:
            expected = self.expected_return_s(pool)
            if expected > GIVE_UP_HORIZON_S:
                self.give_up(pool, expected)

    def _repair(
        self, pool: PoolRuntime, replica: ReplicaSim, due_s: float, _event: simpy.Event
    ) -> None:
        if not replica.down or due_s < replica.repair_at or pool.gave_up_s is not None:
            return  # superseded by a later repair, or the pool gave up
        pool.down_s += self.engine.env.now - replica.down_since
        replica.restore()
        pool.n_live += 1
        parked, pool.parked = pool.parked, type(pool.parked)()
        for call in parked:
            pool.submit(call)
        replica.wake()

    def give_up(self, pool: PoolRuntime, expected_return_s: float) -> None:
        """Declare ``pool`` unable to serve: fail its waiting calls and every later one."""
        now = self.engine.env.now
        kind = pool.spec.system.accelerator.kind
        chips = pool.spec.racks * pool.spec.system.accelerators_per_rack
        years = expected_return_s / GIVE_UP_HORIZON_S
        pool.gave_up_s = now
        pool.give_up_reason = (
            f"every replica down at {now:,.1f} s and failures outpace repairs "
            f"({self.spec.rate_per_accelerator_s(kind) * chips * 3600:,.4g} failures/h on "
            f"{chips:,} chips, mean repair {self.spec.repair_time.expected_s():,.0f} s): expected "
            f"wait for a replica to come back "
            + expected_wait_text(years)
            + "; its waiting and later calls fail (pool_down)"
        )
        waiting = list(pool.parked)
        pool.parked.clear()
        if pool.central_queue is not None:
            waiting += list(pool.central_queue)
            pool.central_queue.clear()
        for call in waiting:
            self.engine.fail_call(call, FAIL_POOL_DOWN)
