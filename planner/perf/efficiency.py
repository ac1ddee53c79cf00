"""Efficiency factors: the achieved fraction of peak, one set per accelerator family and stack.

The roofline gives what a chip could do; these factors say what serving software achieves on it.
They are fitted once per (family, serving stack) by ``scripts/calibrate.py`` to the measured rows
of ``shared/reference/calibration.md`` and stored in ``conf/efficiency/<family>.yaml`` (the
family's default stack) or ``conf/efficiency/<family>__<stack>.yaml``. They are never tuned per
(model, hardware) pair: Blackwell predictions use the Hopper-fitted sets unchanged, MI325X and
MI355X the MI300X-fitted set.

A (family, stack) pair without measurements borrows a documented neighbour (:data:`BORROWED`);
outputs built on it say ``calibrated: false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from planner.specs.errors import (
    ConfigError,
    require_choice,
)

STACKS = ("trtllm", "sglang", "vllm")
"""Serving stacks a GPU profile can describe (TensorRT-LLM, SGLang, vLLM)."""

DEFAULT_STACK: dict[str, str] = {"nvidia_gpu": "trtllm", "amd_gpu": "sglang"}
"""The stack ``conf/efficiency/<family>.yaml`` describes, per GPU family."""

BORROWED: dict[tuple[str, str], str] = {
    # vLLM on AMD: no vLLM row for any AMD chip; SGLang on ROCm shares its kernel libraries
    # (AITER / hipBLASLt) and a Python scheduler of the same design, so it is the nearest stack.
    ("amd_gpu", "vllm"): "sglang",
}
"""(family, stack) pairs without measurements -> the stack of the same family they borrow."""

UNSUPPORTED: dict[tuple[str, str], str] = {
    (
        "amd_gpu",
        "trtllm",
    ): "TensorRT-LLM runs on NVIDIA GPUs only; allowed on amd_gpu: sglang, vllm",
}


def profile_file(family: str, stack: str | None) -> tuple[str, bool]:
    """The ``conf/efficiency/`` file name for ``family`` and ``stack`` and whether it is calibrated.

    ``stack=None`` means the family's default. Raises ConfigError for an unknown stack or a
    stack the family cannot run.
    """
    if stack is None or family not in DEFAULT_STACK:
        if stack is not None and family not in DEFAULT_STACK:
            raise ConfigError("stack", f"applies to GPU families only; {family} has one profile")
        return f"{family}.yaml", True
    require_choice("stack", stack, STACKS)
    if (family, stack) in UNSUPPORTED:
        raise ConfigError("stack", UNSUPPORTED[(family, stack)])
    calibrated = (family, stack) not in BORROWED
    source = BORROWED.get((family, stack), stack)
    if source == DEFAULT_STACK[family]:
        return f"{family}.yaml", calibrated
    return f"{family}__{source}.yaml", calibrated


@dataclass(frozen=True)
class EfficiencyFactors:
    """Achieved fractions of peak and fixed overheads for one accelerator family and stack.

    Attributes:
        family: Family key, matches ``Accelerator.family``.
        compute_efficiency: Achieved / peak dense FLOP/s for large matmuls (GEMMs).
        memory_efficiency: Achieved / peak memory bandwidth when streaming weights and KV.
        comm_efficiency: Achieved / peak scale-up link bandwidth for collectives.
        step_overhead_s: Fixed time per batch iteration (scheduler, sampling, host sync), s.
        kv_memory_fraction: Fraction of the memory left after weights that holds KV cache
            (the rest is activations, workspace, CUDA graphs).
        expert_memory_efficiency: Achieved / peak bandwidth when grouped-GEMM kernels stream many
            small routed-expert matrices (lower than one large dense GEMM achieves).
        sram_usable_fraction: LPU only: fraction of on-chip SRAM usable for weights and KV.
        stack: Serving stack the factors describe (``trtllm``, ``sglang``, ``vllm``; empty for
            compiler-scheduled chips).
        layer_overhead_s: Fixed time per transformer layer per iteration, s: the kernel launches
            and inter-kernel gaps (a decode layer runs ~10-20 kernels that each cost a few us
            even on tiny inputs) and the synchronisation of its collectives. Scales the step
            overhead with depth: a 61-layer model pays 61 of them, an 80-layer one 80.
        attention_compute_efficiency: Achieved / peak FLOP/s of attention kernels (FlashAttention,
            MLA decode); 0 means "as ``compute_efficiency``".
        expert_gemm_half_tokens: Tokens per expert at which a grouped GEMM reaches half of
            ``compute_efficiency``: a GEMM with ``m`` rows fills ``m / (m + m_half)`` of the
            tensor cores, because tiles are 64-128 rows tall and small per-expert batches leave
            them mostly padding.
        request_overhead_s: Fixed latency per request before its first token beyond the prefill
            compute (HTTP, tokenisation, scheduling queue), s.
        moe_layer_overhead_s: Extra fixed time per MoE layer per iteration, s: the router,
            top-k, token permute / unpermute and dispatch / combine kernels a dense layer does
            not run.
        eager_layer_launch_s: Host time to launch one layer's kernels in a step that runs
            without CUDA graphs, s. Stacks that capture graphs for decode-only batches (vLLM,
            SGLang, TensorRT-LLM's PyTorch backend) launch every kernel of a step carrying
            prefill tokens from the host, so such a step takes at least ``n_layers`` times this
            (the GPU waits on the launches when its work is shorter). 0 where a stack's rows
            cannot pin it.
        windowed_kv_full_context: The stack keeps KV for every token of the context in
            sliding-window (and chunked-local) layers, as in a full-attention layer, instead of
            at most the window; their attention still reads only the window. TensorRT-LLM's
            PyTorch backend does unless ``kv_cache_config.max_attention_window`` lists the
            windows (its ``KVCacheManager`` sizes every layer for ``max_seq_len`` by default);
            vLLM's hybrid KV cache manager and SGLang's SWA pool free the blocks that leave the
            window. A documented setting of the stack, not fitted.
        calibrated: False when the profile is borrowed from a neighbour without measurements.
        borrowed_from: The calibrated family whose factors these are when borrowed across
            families (``conf/efficiency/borrowed.yaml``), else empty.
        sram_usable_fraction: LPU only: fraction of on-chip SRAM usable for weights and KV
            (unused by the per-layer pipeline model, which derives it; see ``planner.perf.lpu``).
        layer_floor_s: LPU only: fixed schedule floor of one layer for one token, s.
        hop_latency_s: LPU only: fixed latency of one chip-to-chip hop (serialization excluded), s.
        sram_reserve_fraction: LPU only: SRAM kept back from weights, KV and activations
            (instruction stream, compiler staging buffers).
        kv_sizing_context_tokens: LPU only: context the chip count is sized for (a full pipeline
            of sequences of this length must fit next to the weights), tokens.
    """

    family: str
    compute_efficiency: float
    memory_efficiency: float
    comm_efficiency: float
    step_overhead_s: float
    kv_memory_fraction: float
    expert_memory_efficiency: float = 1.0
    sram_usable_fraction: float = 1.0
    stack: str = ""
    layer_overhead_s: float = 0.0
    attention_compute_efficiency: float = 0.0
    expert_gemm_half_tokens: float = 0.0
    request_overhead_s: float = 0.0
    moe_layer_overhead_s: float = 0.0
    calibrated: bool = True
    borrowed_from: str = ""
    layer_floor_s: float = 0.0
    hop_latency_s: float = 0.0
    sram_reserve_fraction: float = 0.0
    kv_sizing_context_tokens: float = 4096.0
    eager_layer_launch_s: float = 0.0
    windowed_kv_full_context: bool = False

    @property
    def attention_efficiency(self) -> float:
        """Achieved fraction of peak for attention kernels (falls back to GEMM efficiency)."""
        return self.attention_compute_efficiency or self.compute_efficiency

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "efficiency") -> EfficiencyFactors:
        """Build and validate from a plain mapping (:mod:`planner.config.perf_rows`)."""
        from planner.config.perf_rows import efficiency_fields  # lazily: config imports perf

        return cls(**efficiency_fields(data, prefix, [f.name for f in fields(cls)], STACKS))

    def replace(self, **changes: Any) -> EfficiencyFactors:
        """A copy with some factors changed (used by the calibration fit)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return EfficiencyFactors(**values)
