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
their KV cache: each is retried from the start (prefill again, on any live replica) with its
retry count raised; past ``max_retries`` it is counted as failed and its tree can no longer
finish. Nothing is lost: arrived = completed + in flight + failed. Failures stop once every tree
has finished or failed, so a run always ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import simpy

from planner.specs.errors import (
    require_choice,
    require_non_negative,
    require_non_negative_int,
)
from planner.workload.lengths import DelayLaw

if TYPE_CHECKING:
    from planner.sim.engine import PoolRuntime, _Engine

BLAST_RADII = ("replica", "host", "domain")

LLAMA3_FAILURES_PER_GPU_HOUR = 1.0 / 50_700.0
"""Unexpected interruptions per GPU-hour: 419 in 16,384 H100 x 54 days (hardware.md A6, [D])."""

DEFAULT_REPAIR = DelayLaw("lognormal", median_s=1800.0, sigma=1.0)
"""[A] Repair: median 30 min (automated drain, reset or host swap), heavy tail to hours; the
retrieved sources give interruption counts but not repair times."""

FAILURE_DRAW_BLOCK = 1024


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


class FaultInjector:
    """Draws failures for every pool and applies them (one SimPy process per pool)."""

    def __init__(self, engine: _Engine, spec: FailureSpec, rng: np.random.Generator) -> None:
        self.engine = engine
        self.spec = spec
        self.rng = rng
        self._repairs: list[float] = []

    def start(self) -> None:
        for pool in self.engine.pools.values():
            kind = pool.spec.system.accelerator.kind
            chips = pool.spec.racks * pool.spec.system.accelerators_per_rack
            rate = self.spec.rate_per_accelerator_s(kind) * chips
            if rate > 0:
                self.engine.env.process(self._failures(pool, rate, chips))

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
                if engine.settled():
                    return
                pool.failures += 1
                affected = self._replicas_hit(pool, int(accelerator))
                for index in affected:
                    engine.fail_replica(pool, index, self._repair_s())

    def _replicas_hit(self, pool: PoolRuntime, accelerator: int) -> range:
        """Indices of the replicas within the blast radius of ``accelerator``."""
        per_replica = pool.perf.accelerators
        system = pool.spec.system
        group = {
            "replica": per_replica,
            "host": system.accelerators_per_host,
            "domain": system.scale_up_domain_size,
        }[self.spec.blast_radius]
        group = max(group, 1)
        first = accelerator // group * group
        last = first + group - 1
        replicas = len(pool.replicas)
        low, high = first // per_replica, min(last // per_replica, replicas - 1)
        if self.spec.blast_radius == "replica":
            low = high = accelerator // per_replica
        if low >= replicas:
            return range(0)  # an installed chip no replica uses
        return range(low, high + 1)
