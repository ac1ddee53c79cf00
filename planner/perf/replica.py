"""One interface over GPU and LPU replicas, and the static (roofline) figures of a replica.

``build_replica`` picks the model for the hardware kind; ``roofline_summary`` answers the
per-replica questions ``planner-roofline`` prints: memory fit, largest batch, single-user speed,
saturated throughput and throughput under a TPOT limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from planner.perf.efficiency import EfficiencyFactors
from planner.perf.gpu import GpuReplica, Parallelism
from planner.perf.lpu import LpuReplica
from planner.specs.errors import ConfigError, require_positive
from planner.specs.hardware import System
from planner.specs.model import Model


class Replica(Protocol):
    """What the simulator and the economics need from a replica's cost model."""

    model: Model
    system: System
    accelerators: int
    weight_bytes: float
    kv_bytes_per_token: float
    state_bytes_per_sequence: float

    @property
    def kv_budget_bytes(self) -> float: ...
    def kv_bytes_for_context(self, context_tokens: float) -> float: ...
    def make_step_time_fn(self) -> Callable[[int, float, float, float], float]: ...
    def max_batch(self, context_tokens: float) -> int: ...
    def require_fit(self, context_tokens: float) -> None: ...
    def step_time_s(
        self,
        decode_sequences: int,
        decode_context_tokens: float,
        prefill_tokens: float = 0.0,
        prefill_attention_flops: float = 0.0,
    ) -> float: ...
    def prefill_time_s(self, prompt_tokens: float, cached_prefix_tokens: float = 0.0) -> float: ...
    def decode_tokens_per_s_per_user(self, context_tokens: float) -> float: ...
    def bytes_read_per_token_at_batch_1(self, context_tokens: float) -> float: ...


def build_replica(
    model: Model,
    system: System,
    efficiency: EfficiencyFactors,
    *,
    precision: str,
    kv_precision: str = "bf16",
    tp: int = 1,
    ep: int = 1,
    chips: int | None = None,
) -> GpuReplica | LpuReplica:
    """Build the replica cost model that fits the system's accelerator kind.

    Raises:
        ConfigError: The efficiency family does not match the chip, the precision is unsupported,
            the mapping is invalid, or the model does not fit.
    """
    accel = system.accelerator
    if efficiency.family != accel.family:
        raise ConfigError(
            "efficiency.family",
            f"{accel.name} needs the {accel.family} factors; got {efficiency.family}",
        )
    accel.peak_flops(precision)  # refuses precisions the chip lacks, naming the allowed ones
    if accel.kind == "lpu":
        if tp != 1 or ep != 1:
            raise ConfigError(
                "tp", f"LPU replicas are pipelined over chips; tp and ep must be 1, got {tp}, {ep}"
            )
        return LpuReplica(model, system, precision, kv_precision, efficiency, chips)
    if chips is not None:
        raise ConfigError("chips", "applies to LPU hardware only; use tp and ep for GPUs")
    return GpuReplica(model, system, precision, kv_precision, Parallelism(tp, ep), efficiency)


def steady_state_step_s(replica: Replica, batch: int, isl: float, osl: float) -> float:
    """Step time of a saturated replica serving ``isl``/``osl`` requests with ``batch`` decoding.

    In steady state each step completes ``batch / osl`` requests on average and admits as many,
    so it also prefills ``batch * isl / osl`` prompt tokens (chunked prefill). Decoding sequences
    hold on average ``isl + osl / 2`` tokens of context.
    """
    admitted = batch / osl
    prefill_attention = admitted * replica.model.prefill_attention_flops(isl, 0.0)
    return replica.step_time_s(
        batch, batch * (isl + osl / 2.0), batch * isl / osl, prefill_attention
    )


def largest_batch_within(limit_s: float, step_s: Callable[[int], float], max_batch: int) -> int:
    """Largest batch in [1, max_batch] whose step time is <= ``limit_s``; 0 if none.

    Step time is non-decreasing in batch, so bisection suffices.
    """
    if max_batch < 1 or step_s(1) > limit_s:
        return 0
    low, high = 1, max_batch
    while low < high:
        mid = (low + high + 1) // 2
        if step_s(mid) <= limit_s:
            low = mid
        else:
            high = mid - 1
    return low


@dataclass(frozen=True)
class ServingPoint:
    """Saturated operating point of one replica for fixed input/output lengths.

    Attributes:
        batch: Sequences decoding concurrently.
        step_s: Time per iteration (= TPOT of every decoding sequence), s.
        output_tokens_per_s: Output tokens/s of the whole replica.
    """

    batch: int
    step_s: float
    output_tokens_per_s: float


def serving_point(
    replica: Replica, isl: float, osl: float, tpot_limit_s: float | None = None
) -> ServingPoint:
    """Best throughput of a saturated replica, optionally with TPOT <= ``tpot_limit_s``.

    The batch is bounded by the paged KV cache at its mean occupancy: in steady state with
    uniform lengths a decoding sequence holds ``isl + osl / 2`` tokens on average. (Reserving
    the full ``isl + osl`` per request instead under-predicts the long-output calibration rows
    by 20-40%; see the README's calibration section.)
    """
    max_batch = replica.max_batch(isl + osl / 2.0)

    def step(b: int) -> float:
        return steady_state_step_s(replica, b, isl, osl)

    batch = (
        max_batch if tpot_limit_s is None else largest_batch_within(tpot_limit_s, step, max_batch)
    )
    if batch < 1:
        return ServingPoint(0, step(1) if max_batch >= 1 else float("inf"), 0.0)
    step_s = step(batch)
    return ServingPoint(batch, step_s, batch / step_s)


def roofline_summary(
    replica: Replica, *, isl: int, osl: int, tpot_limit_s: float
) -> dict[str, Any]:
    """Static per-replica figures for ``planner-roofline`` (keys are the public interface).

    Args:
        replica: The replica.
        isl: Input tokens per request.
        osl: Output tokens per request.
        tpot_limit_s: Time-per-output-token limit for the constrained throughput, s.
    """
    require_positive("isl", isl)
    require_positive("osl", osl)
    require_positive("tpot_limit_s", tpot_limit_s)
    context = isl + osl
    replica.require_fit(context)
    mean_context = isl + osl / 2.0
    saturated = serving_point(replica, isl, osl)
    limited = serving_point(replica, isl, osl, tpot_limit_s)
    accel = replica.system.accelerator
    n = replica.accelerators
    bytes_per_token = replica.bytes_read_per_token_at_batch_1(mean_context)
    # LPU only: the derived SRAM budget (sram_usable_fraction, sram_pinned_by) and pipeline shape.
    lpu = replica.static_figures(context) if isinstance(replica, LpuReplica) else {}
    return {
        "model": replica.model.name,
        "hardware": replica.system.name,
        "accelerator_kind": accel.kind,
        "precision": getattr(replica, "precision", None),
        "kv_precision": getattr(replica, "kv_precision", None),
        "isl": isl,
        "osl": osl,
        "tpot_limit_s": tpot_limit_s,
        "accelerators_per_replica": n,
        "racks_per_replica": n / replica.system.accelerators_per_rack,
        "weight_bytes": replica.weight_bytes,
        "kv_bytes_per_token": replica.kv_bytes_per_token,
        "state_bytes_per_sequence": replica.state_bytes_per_sequence,
        "context_tokens": context,
        "max_batch": replica.max_batch(context),
        "decode_tokens_per_s_per_user": replica.decode_tokens_per_s_per_user(mean_context),
        "bytes_read_per_token_at_batch_1": bytes_per_token,
        "roofline_tokens_per_s_per_user": accel.memory_bandwidth_bytes_per_s * n / bytes_per_token
        if accel.kind == "gpu"
        else accel.memory_bandwidth_bytes_per_s / bytes_per_token,
        "prefill_time_s": replica.prefill_time_s(isl),
        "saturation_batch": saturated.batch,
        "saturation_tpot_s": saturated.step_s,
        "max_output_tokens_per_s_per_accelerator": saturated.output_tokens_per_s / n,
        "batch_at_tpot": limited.batch,
        "tpot_at_limit_s": limited.step_s if limited.batch else None,
        "max_output_tokens_per_s_per_accelerator_at_tpot": limited.output_tokens_per_s / n,
        **lpu,
    }
