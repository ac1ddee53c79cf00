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

_NO_FACTORS = EfficiencyFactors("none", 1.0, 1.0, 1.0, 0.0, 1.0, calibrated=False)
"""Stand-in for replicas without fitted factors (``FixedStepReplica``)."""


class Replica(Protocol):
    """What the simulator and the economics need from a replica's cost model."""

    model: Model
    system: System
    accelerators: int
    weight_bytes: float
    kv_bytes_per_token: float
    state_bytes_per_sequence: float

    @property
    def kv_budget_bytes(self) -> float:
        """Memory the replica has for KV cache and recurrent state, bytes."""
        ...

    def kv_bytes_for_context(self, context_tokens: float) -> float:
        """KV (and recurrent state) one sequence of ``context_tokens`` holds, bytes."""
        ...

    def sequence_bytes(self, context_tokens: float) -> float:
        """KV + state of one sequence of ``context_tokens`` over the whole replica, bytes."""
        ...

    def make_step_time_fn(self) -> Callable[[float, float, float, float], float]:
        """The replica's one step-time function with its coefficients bound (s per step)."""
        ...

    def max_batch(self, context_tokens: float) -> int:
        """Sequences of ``context_tokens`` the KV budget holds at once."""
        ...

    def require_fit(self, context_tokens: float) -> None:
        """Raise ConfigError unless one sequence of ``context_tokens`` fits the replica."""
        ...

    def step_time_s(
        self,
        decode_sequences: int,
        decode_context_tokens: float,
        prefill_tokens: float = 0.0,
        prefill_attention_flops: float = 0.0,
    ) -> float:
        """One iteration's time, s: a decode batch plus prefill tokens (the step function)."""
        ...

    def prefill_time_s(self, prompt_tokens: float, cached_prefix_tokens: float = 0.0) -> float:
        """A lone prompt's prefill time on an idle replica, s."""
        ...

    def decode_tokens_per_s_per_user(self, context_tokens: float) -> float:
        """Batch-1 decode speed at ``context_tokens`` of context, tokens/s."""
        ...

    def bytes_read_per_token_at_batch_1(self, context_tokens: float) -> float:
        """Bytes streamed from memory per decoded token at batch 1, bytes."""
        ...


def build_replica(
    model: Model,
    system: System,
    efficiency: EfficiencyFactors,
    *,
    precision: str,
    kv_precision: str = "bf16",
    tp: int = 1,
    ep: int = 1,
    dp_attention: bool = False,
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
        if tp != 1 or ep != 1:  # dp_attention over one rank is a no-op
            raise ConfigError(
                "tp", f"LPU replicas are pipelined over chips; tp and ep must be 1, got {tp}, {ep}"
            )
        return LpuReplica(model, system, precision, kv_precision, efficiency, chips)
    if chips is not None:
        raise ConfigError("chips", "applies to LPU hardware only; use tp and ep for GPUs")
    return GpuReplica(
        model, system, precision, kv_precision, Parallelism(tp, ep, dp_attention), efficiency
    )


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


@dataclass(frozen=True)
class ConcurrencyPoint:
    """Steady state of one replica loaded by ``C`` closed-loop users (no think time).

    Attributes:
        concurrency: Users (sequences in flight), ``C``.
        batch: Mean sequences decoding in one step (the rest are being prefilled or queued).
        tpot_s: Mean time per output token of a request, s (includes the stalls other requests'
            prefills cause).
        ttft_s: Mean time to first token, s.
        output_tokens_per_s_per_accelerator: Output tokens/s of the replica / its accelerators.
        tokens_per_s_per_user: ``1 / tpot_s``.
    """

    concurrency: int
    batch: float
    tpot_s: float
    ttft_s: float
    output_tokens_per_s_per_accelerator: float
    tokens_per_s_per_user: float


def at_concurrency(
    replica: Replica,
    concurrency: int,
    isl: float,
    osl: float,
    request_overhead_s: float = 0.0,
    cached_prefix_tokens: float = 0.0,
) -> ConcurrencyPoint:
    """Static steady state of ``concurrency`` closed-loop users on one replica.

    Each user sends its next request when the previous one finishes (``benchmark_serving
    --max-concurrency C``). A request's life is ``TTFT + (osl - 1) * TPOT``:

    * ``TTFT = request_overhead + prefill(isl) + step / 2``: the fixed per-request latency of the
      stack, the prompt's prefill, and on average half a running step before it is scheduled;
      when ``C`` exceeds the KV-bounded batch, the excess waits in the queue as well.
    * Prefill is interleaved the way SGLang and TensorRT-LLM schedule it: a prefill step runs
      while the decoding sequences wait, so each decode step is stretched by the prefills that
      arrive during it. ``B`` sequences decoding finish ``B / osl`` requests per step and admit
      as many, so ``TPOT = step(B) + (B / osl) * prefill(isl)``. With ``dp_attention`` a prompt
      runs on one attention rank while the others wait at the MoE collectives.
    * ``B = C * (osl - 1) * TPOT / cycle``: the share of users that are decoding, capped by the
      KV cache at mean occupancy ``isl + osl / 2`` tokens per sequence.

    Solved by fixed-point iteration (the map is a contraction: ``B`` grows with ``TPOT`` only
    through the decoding share, which stays below ``C``). ``cached_prefix_tokens`` of each
    prompt (a prefix-cache hit) are not prefilled again; the KV still holds all ``isl``.
    """
    require_positive("concurrency", concurrency)
    cap = replica.max_batch(isl + osl / 2.0)
    if cap < 1:
        replica.require_fit(isl + osl / 2.0)
    prefill_s = replica.prefill_time_s(isl, cached_prefix_tokens)
    batch = float(min(concurrency, cap))
    tpot_s = ttft_s = cycle_s = 0.0
    for _ in range(60):
        decode = max(round(batch), 1)
        step_s = replica.step_time_s(decode, decode * (isl + osl / 2.0))
        tpot_s = step_s + decode / osl * prefill_s
        service_s = request_overhead_s + prefill_s + step_s / 2.0
        busy_s = service_s + (osl - 1.0) * tpot_s
        # Only ``cap`` sequences hold KV; beyond that the others queue for a slot.
        cycle_s = busy_s * concurrency / cap if concurrency > cap else busy_s
        ttft_s = cycle_s - (osl - 1.0) * tpot_s
        new_batch = min(concurrency * (osl - 1.0) * tpot_s / cycle_s, float(cap))
        if abs(new_batch - batch) < 1e-6 * max(batch, 1.0):
            batch = new_batch
            break
        batch = 0.5 * (batch + new_batch)
    throughput = concurrency * osl / cycle_s
    return ConcurrencyPoint(
        concurrency=concurrency,
        batch=batch,
        tpot_s=tpot_s,
        ttft_s=ttft_s,
        output_tokens_per_s_per_accelerator=throughput / replica.accelerators,
        tokens_per_s_per_user=1.0 / tpot_s,
    )


def roofline_summary(
    replica: Replica,
    *,
    isl: float,
    osl: float,
    tpot_limit_s: float,
    concurrency: int | None = None,
) -> dict[str, Any]:
    """Static per-replica figures for ``planner-roofline`` (keys are the public interface).

    Args:
        replica: The replica.
        isl: Input tokens per request.
        osl: Output tokens per request.
        tpot_limit_s: Time-per-output-token limit for the constrained throughput, s.
        concurrency: Closed-loop users for the ``at_concurrency`` figures (None: omitted).
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
    efficiency: EfficiencyFactors = getattr(replica, "efficiency", _NO_FACTORS)
    parallelism = getattr(replica, "parallelism", None)
    # LPU only: the derived SRAM budget (sram_usable_fraction, sram_pinned_by) and pipeline shape.
    lpu = replica.static_figures(context) if isinstance(replica, LpuReplica) else {}
    summary: dict[str, Any] = {
        "model": replica.model.name,
        "hardware": replica.system.name,
        "accelerator_kind": accel.kind,
        "precision": getattr(replica, "precision", None),
        "kv_precision": getattr(replica, "kv_precision", None),
        "stack": efficiency.stack or None,
        "calibrated": efficiency.calibrated,
        "borrowed_from": efficiency.borrowed_from or None,
        "hardware_confirmed": accel.confirmed,
        "tp": parallelism.tp if parallelism else 1,
        "ep": parallelism.ep if parallelism else 1,
        "dp_attention": parallelism.dp_attention if parallelism else False,
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
    if concurrency is not None:
        point = at_concurrency(replica, concurrency, isl, osl, efficiency.request_overhead_s)
        summary["concurrency"] = concurrency
        summary["at_concurrency"] = {
            "output_tokens_per_s_per_accelerator": point.output_tokens_per_s_per_accelerator,
            "tokens_per_s_per_user": point.tokens_per_s_per_user,
            "ttft_s": point.ttft_s,
            "tpot_s": point.tpot_s,
            "batch": point.batch,
        }
    return summary
