"""Roofline cost model of one model replica on a group of GPUs.

A replica spans ``tp`` GPUs inside one scale-up (NVLink / Infinity Fabric) domain, written as
TensorRT-LLM and SGLang write it:

* ``tp``: GPUs of one replica. Without ``dp_attention`` attention and dense layers are tensor
  parallel over them (heads and matrices sharded, one all-reduce after attention and one after
  each dense FFN / tensor-parallel MoE layer).
* ``ep``: expert-parallel degree within the ``tp`` GPUs (divides ``tp``). Each of the ``ep``
  ranks holds ``E / ep`` whole routed experts, sharded ``tp / ep`` ways inside the rank; a MoE
  layer then costs an all-to-all dispatch and combine. ``ep = 1`` shards every expert ``tp`` ways.
* ``dp_attention``: attention (and the other non-expert weights) is replicated and runs
  data-parallel: each GPU serves ``1/tp`` of the sequences and holds their KV whole. DEP8 is
  ``tp=8 ep=8 dp_attention=true``.

One batch iteration processes ``B`` decode tokens plus ``P`` prefill tokens (chunked prefill
piggybacks on decode steps). Its kernels run one after another, so its time on the busiest GPU
is a sum of rooflines, one per kernel class, plus communication and overheads::

    t = sum_k max(flops_k / (peak * eff_k), bytes_k / (mem_bw * memory_eff_k))
        + comm + step_overhead + n_layers * layer_overhead + n_moe_layers * moe_layer_overhead

A step carrying prefill tokens runs without CUDA graphs in the stacks modelled here and takes at
least ``n_layers * eager_layer_launch_s`` (host-bound kernel launches; the vLLM-era step times
pin it: a 128-token prompt iteration takes 49 ms against 28 ms for a decode step).

MoE terms (each from first principles):

* Experts touched: ``T`` tokens touch ``E * (1 - (1 - k/E)^T)`` distinct experts per layer
  (DESIGN.md, "The physics"): small batches read few experts, large batches read them all.
* Load imbalance across EP ranks: the ``T * k`` token-expert assignments fall on the ``ep`` ranks
  like balls in bins (uniform routing, the auxiliary-loss-free balancing of DeepSeek-V3, arXiv
  2412.19437 sec. 2.1.2, aims at exactly that). The busiest rank sets the step; its expected load
  is the multinomial maximum, ``n/ep + z_ep * sqrt(n/ep * (1 - 1/ep))`` for ``n`` assignments,
  with ``z_ep`` the expected maximum of ``ep`` standard normals (Gaussian approximation of the
  maximum of ``ep`` binomials; cf. Raab & Steger, "Balls into bins - a simple and tight
  analysis", RANDOM 1998, for the asymptotics). The same law bounds the distinct experts the
  busiest rank reads.
* Grouped-GEMM efficiency: an expert GEMM with ``m`` rows (tokens routed to that expert) runs
  at ``compute_eff * m / (m + m_half)``; tiles are 64-128 rows tall, so small per-expert batches
  waste most of the tensor cores (CUTLASS grouped GEMM; DeepGEMM reports its small-M
  masked-layout kernels at a fraction of peak).
* All-to-all dispatch and combine on the scale-up links: per MoE layer each GPU sends its tokens'
  hidden states to ``k`` experts (FP8 dispatch, 1 byte per element, and BF16 combine, 2 bytes, as
  DeepEP does) plus one link latency per collective.
* MLA attention in decode (DeepSeek's weight-absorbed form, ``Model.decode_attention_flops``):
  ``2 * heads * (2 * kv_lora_rank + rope_dim)`` FLOPs per cached token per layer, compute-bound
  at large batches, at ``attention_compute_efficiency``. The MLA latent is shared by all heads,
  so tensor-parallel attention replicates it on every GPU (no KV sharding).

All times in seconds, sizes in bytes, rates per second.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

import numpy as np

from planner.perf.efficiency import EfficiencyFactors
from planner.perf.gpu_step import (
    GpuStepCoefficients,
    gpu_step_components_s,
    gpu_step_time_s,
)
from planner.specs.errors import ConfigError, require_choice, require_positive_int
from planner.specs.hardware import PRECISION_BYTES_PER_WEIGHT, System
from planner.specs.model import Model

KV_BYTES_PER_ELEMENT: dict[str, float] = {"bf16": 2.0, "fp8": 1.0}
"""KV-cache element sizes. An FP8 KV cache (as TensorRT-LLM uses for gpt-oss and DeepSeek,
calibration.md sec. 3) halves the BF16 footprint."""

ACTIVATION_BYTES = 2.0
"""Bytes per activation element exchanged in all-reduces (BF16 hidden states)."""

A2A_BYTES = 1.5
"""Mean bytes per element of an EP all-to-all: FP8 dispatch (1 B) and BF16 combine (2 B), the
DeepEP / TensorRT-LLM wide-EP convention (github.com/deepseek-ai/DeepEP README)."""

STEP_COMPONENTS = ("dense_gemm", "expert_gemm", "attention", "activations", "comm", "overhead")
"""Kernel classes of one batch iteration, as :meth:`GpuReplica.step_components_s` names them."""

MAX_BATCH_PER_DP_RANK = 8192
"""Largest batch one attention (data-parallel) rank runs: TensorRT-LLM pads CUDA graphs up to
batch 8192 in the calibration runs (calibration.md sec. 3)."""


_SQRT_2PI = np.sqrt(2 * np.pi)
"""scipy.stats' normalisation of the normal density (``_norm_pdf_C``)."""


@cache
def expected_max_standard_normal(n: int) -> float:
    """Expected maximum of ``n`` independent standard normals, ``E[max Z_i]``.

    ``integral x * n * phi(x) * Phi(x)^(n-1) dx`` by quadrature (0 for one, 0.564 for two,
    1.029 for four, 1.424 for eight; it grows like ``sqrt(2 ln n)`` only for large ``n``).
    """
    if n <= 1:
        return 0.0
    # scipy.integrate and scipy.special, not scipy.stats (~0.6 s more at CLI start-up), imported
    # here rather than at module level. The integrand is scipy.stats.norm's pdf and cdf written
    # out the way scipy computes them, so the value is bit-for-bit the one ``stats.norm`` gives
    # (the calibration fit is sensitive to its last digits; tests/test_startup.py checks).
    from scipy import integrate, special

    def integrand(x: float) -> float:
        pdf = np.exp(-(x**2) / 2.0) / _SQRT_2PI
        return float(x * n * pdf * special.ndtr(x) ** (n - 1))

    value, _ = integrate.quad(integrand, -12.0, 12.0)
    return float(value)


def busiest_share(n: float, bins: int) -> float:
    """Expected largest count when ``n`` balls fall uniformly into ``bins`` bins.

    Gaussian approximation of the maximum of ``bins`` binomials ``Bin(n, 1/bins)``:
    ``n/bins + E[max of bins standard normals] * sqrt(n/bins * (1 - 1/bins))``, capped at
    ``n``. Exact for one bin; within ~10% of the sampled multinomial maximum from one ball per
    bin upwards (tests/test_perf_roofline.py).
    """
    if bins <= 1 or n <= 0:
        return n
    mean = n / bins
    return min(n, mean + expected_max_standard_normal(bins) * math.sqrt(mean * (1.0 - 1.0 / bins)))


@dataclass(frozen=True)
class Parallelism:
    """How a replica is spread over accelerators, in the serving frameworks' terms.

    Attributes:
        tp: GPUs of one replica (>= 1).
        ep: Expert-parallel degree within them (divides ``tp``).
        dp_attention: Attention runs data-parallel over the ``tp`` GPUs.
    """

    tp: int = 1
    ep: int = 1
    dp_attention: bool = False

    def __post_init__(self) -> None:
        """Validate the degrees (ConfigError naming the field)."""
        require_positive_int("tp", self.tp)
        require_positive_int("ep", self.ep)
        if self.ep > self.tp:
            # Also reached when only tp was given and ep kept a DEP8 default: name both forms.
            old_form = (
                f"; the old 'tp=1 ep={self.ep}' (DEP{self.ep}) is now written "
                f"tp={self.ep} ep={self.ep} dp_attention=true"
                if self.tp == 1
                else ""
            )
            raise ConfigError(
                "ep",
                f"ep={self.ep} exceeds tp={self.tp}: ep is the expert-parallel degree within the "
                f"tp GPUs of a replica; allowed: a divisor of tp={self.tp} (ep=1: experts "
                f"tensor-parallel){old_form}",
            )
        if self.tp % self.ep:
            raise ConfigError("ep", f"must divide tp={self.tp}; got {self.ep}")

    @property
    def accelerators(self) -> int:
        """Accelerators one replica occupies."""
        return self.tp

    @property
    def attention_ranks(self) -> int:
        """Data-parallel attention ranks (each serves its own share of the sequences)."""
        return self.tp if self.dp_attention else 1

    @property
    def attention_tp(self) -> int:
        """Tensor-parallel degree of attention and the other non-expert layers."""
        return 1 if self.dp_attention else self.tp

    def describe(self) -> str:
        """``tp=8 ep=8 dp_attention=true``."""
        return f"tp={self.tp} ep={self.ep} dp_attention={str(self.dp_attention).lower()}"


def _fit_hints(
    model: Model, system: System, precision: str, parallelism: Parallelism, weights_b: float
) -> str:
    """What can actually make weights of ``weights_b`` bytes per GPU fit, for the refusal.

    Only the options that exist are offered: a larger ``tp`` while below the scale-up domain,
    ``dp_attention=false`` while it is on, a smaller precision the GPU supports (with its weights
    per GPU at the largest ``tp``, and whether they fit), and a part with more memory. Pipeline
    parallelism across nodes, the usual remedy beyond one domain, is not modelled.
    """
    accel, domain = system.accelerator, system.scale_up_domain_size
    hints = []
    if parallelism.tp < domain:
        hints.append(f"a larger tp (up to {domain})")
    if parallelism.dp_attention:
        hints.append("dp_attention=false")
    per_weight = PRECISION_BYTES_PER_WEIGHT[precision]
    for smaller, size in PRECISION_BYTES_PER_WEIGHT.items():
        if size < per_weight and accel.supports(smaller):
            at_max_tp = model.total_params * size / domain
            fits = "fits" if at_max_tp < accel.memory_bytes else "still too large"
            hints.append(
                f"precision={smaller} ({at_max_tp / 1e9:.0f} GB of weights per GPU at "
                f"tp={domain}: {fits})"
            )
    hints.append(
        f"a part with more than {weights_b / 1e9:.0f} GB per GPU (pipeline parallelism across "
        "nodes is not modelled)"
    )
    return ", or ".join(hints)


class GpuReplica:
    """Step-time and memory model of one model replica on ``tp`` GPUs.

    Construction validates the mapping and the memory fit and precomputes per-GPU constants, so
    the step-time methods are cheap enough to call from the simulator's hot loop.

    Args:
        model: The model.
        system: The GPU system (its scale-up domain bounds ``tp``).
        precision: Weight precision (``bf16``, ``fp8``, ``fp4``, ``int8``); the GPU must support it.
        kv_precision: KV-cache precision (``bf16`` or ``fp8``).
        parallelism: ``tp``, ``ep`` and ``dp_attention``.
        efficiency: Factors of the accelerator's family and serving stack.

    Raises:
        ConfigError: Unsupported precision, a mapping larger than the scale-up domain, an ``ep``
            on a dense model or one that does not divide the experts, or weights that do not fit.
    """

    def __init__(
        self,
        model: Model,
        system: System,
        precision: str,
        kv_precision: str,
        parallelism: Parallelism,
        efficiency: EfficiencyFactors,
    ) -> None:
        """Build the replica; arguments as in the class docstring."""
        accel = system.accelerator
        if accel.kind != "gpu":
            raise ConfigError(
                "hardware", f"{system.name} is an {accel.kind}; GpuReplica needs a gpu"
            )
        self.model = model
        self.system = system
        self.precision = precision
        self.kv_precision = require_choice("kv_precision", kv_precision, KV_BYTES_PER_ELEMENT)
        self.parallelism = parallelism
        self.efficiency = efficiency
        tp, ep = parallelism.tp, parallelism.ep
        ranks, attn_tp = parallelism.attention_ranks, parallelism.attention_tp
        self.accelerators = tp
        if tp > system.scale_up_domain_size:
            raise ConfigError(
                "tp",
                f"tp = {tp} exceeds the {system.scale_up_domain_size}-GPU scale-up domain of "
                f"{system.name}; allowed: tp <= {system.scale_up_domain_size}",
            )
        moe = model.moe
        if ep > 1 and moe is None:
            raise ConfigError("ep", f"must be 1 for dense model {model.name}; got {ep}")
        if moe is not None and moe.n_routed_experts % ep:
            raise ConfigError(
                "ep",
                f"must divide the {moe.n_routed_experts} routed experts of {model.name}; got {ep}",
            )

        self._linear_flops_per_s = accel.peak_flops(precision) * efficiency.compute_efficiency
        # Attention runs at the KV cache's precision where the chip has it, else BF16, else the
        # weights' precision.
        attention_precision = next(
            p for p in (kv_precision, "bf16", precision) if accel.supports(p) or p == precision
        )
        self._attention_flops_per_s = (
            accel.peak_flops(attention_precision) * efficiency.attention_efficiency
        )
        self._bytes_per_s = accel.memory_bandwidth_bytes_per_s * efficiency.memory_efficiency
        self._expert_bytes_per_s = (
            accel.memory_bandwidth_bytes_per_s * efficiency.expert_memory_efficiency
        )
        self._link_bytes_per_s = accel.scale_up_bandwidth_bytes_per_s * efficiency.comm_efficiency
        self._link_latency_s = accel.scale_up_latency_s

        bytes_per_weight = PRECISION_BYTES_PER_WEIGHT[precision]
        kv_bytes = KV_BYTES_PER_ELEMENT[self.kv_precision]
        routed = model.routed_expert_params
        self.weight_bytes = model.total_params * bytes_per_weight
        """Weights of the whole model at ``precision`` (one copy), bytes."""
        self.weight_bytes_per_accelerator = (
            (model.total_params - routed) / attn_tp + routed / tp
        ) * bytes_per_weight
        """Resident weights on each GPU (data-parallel parts are replicated), bytes."""
        self._always_read_bytes = model.always_read_params / attn_tp * bytes_per_weight
        self._n_moe_layers = model.n_moe_layers
        self._experts = moe.n_routed_experts if moe else 0
        self._active_experts = moe.n_active_experts if moe else 0
        self._expert_bytes_per_accelerator_layer = (
            model.params_per_routed_expert / (tp // ep) * bytes_per_weight if moe else 0.0
        )

        # KV heads shard over the attention TP degree only as far as there are heads; an MLA
        # latent is shared by all heads and is not sharded.
        kv_shard = 1 if model.mla is not None else min(attn_tp, model.n_kv_heads)
        state_shard = min(attn_tp, model.gdn.n_v_heads) if model.gdn is not None else kv_shard
        self._window_tokens = float(model.sliding_window_tokens)
        sliding_bytes_per_token = (
            model.n_sliding_window_layers * 2 * model.n_kv_heads * model.head_dim * kv_bytes
        )
        recurrent_state = model.fixed_state_bytes_per_sequence(kv_bytes) - (
            sliding_bytes_per_token * self._window_tokens
        )
        full_kv_bytes_per_token = model.kv_bytes_per_token(kv_bytes)
        # What a sequence holds: a stack that keeps windowed layers' KV for the whole context
        # (EfficiencyFactors.windowed_kv_full_context) holds them like full layers; their
        # attention reads only the window either way (the step's coefficients below).
        self._held_window_tokens = (
            math.inf if efficiency.windowed_kv_full_context else self._window_tokens
        )
        # kv_bytes_per_token: KV bytes one token adds to the whole replica (full-attention
        # layers, and windowed ones where the stack holds them for the whole context);
        # state_bytes_per_sequence: context-independent bytes per sequence at most (recurrent
        # state, and full windows where the stack frees what leaves them).
        if efficiency.windowed_kv_full_context:
            self.kv_bytes_per_token = full_kv_bytes_per_token + sliding_bytes_per_token
            self.state_bytes_per_sequence = recurrent_state
        else:
            self.kv_bytes_per_token = full_kv_bytes_per_token
            self.state_bytes_per_sequence = model.fixed_state_bytes_per_sequence(kv_bytes)
        self._sliding_bytes_per_token = sliding_bytes_per_token
        self._full_kv_bytes_per_token = full_kv_bytes_per_token
        self._recurrent_state_bytes = recurrent_state
        self._kv_token_bytes_per_accelerator = full_kv_bytes_per_token / kv_shard
        self._window_token_bytes_per_accelerator = sliding_bytes_per_token / kv_shard
        self._recurrent_bytes_per_accelerator = recurrent_state / state_shard
        self._activation_bytes_per_token = activation_bytes_per_token(model)

        free = accel.memory_bytes - self.weight_bytes_per_accelerator
        self.kv_capacity_bytes_per_accelerator = max(free, 0.0) * efficiency.kv_memory_fraction
        """Memory each GPU gives to KV cache and state, bytes."""
        if free <= 0:
            raise ConfigError(
                "model",
                f"{model.name} at {precision} needs "
                f"{self.weight_bytes_per_accelerator / 1e9:.1f} GB "
                f"of weights per GPU on {parallelism.describe()}, more than the "
                f"{accel.memory_bytes / 1e9:.0f} GB of {accel.name}; allowed: "
                + _fit_hints(
                    model, system, precision, parallelism, self.weight_bytes_per_accelerator
                ),
            )

        self._hidden = model.hidden_size
        self._n_layers = model.n_layers
        self._expert_flops_per_token = (
            2.0 * model.n_moe_layers * moe.n_active_experts * model.params_per_routed_expert
            if moe
            else 0.0
        )
        self._dense_flops_per_token = model.linear_flops_per_token - self._expert_flops_per_token
        self._ranks = ranks
        self.coefficients = self._coefficients()
        """The folded constants of :func:`gpu_step_components_s` for this replica."""

    # ----------------------------------------------------------------------------- memory
    def sequence_bytes_per_accelerator(self, context_tokens: float) -> float:
        """KV + state one sequence of ``context_tokens`` holds on each GPU of its rank, bytes.

        Sliding-window layers hold at most their window (the whole context under a stack that
        keeps it: ``windowed_kv_full_context``); recurrent state is fixed.
        """
        return (
            self._kv_token_bytes_per_accelerator * context_tokens
            + self._window_token_bytes_per_accelerator
            * min(context_tokens, self._held_window_tokens)
            + self._recurrent_bytes_per_accelerator
        )

    def max_batch(self, context_tokens: float) -> int:
        """Largest number of sequences of ``context_tokens`` each that fit in KV memory.

        With ``dp_attention`` sequences are spread over the ``tp`` attention ranks; each rank is
        also capped at ``MAX_BATCH_PER_DP_RANK``.
        """
        per_rank = self.kv_capacity_bytes_per_accelerator / self.sequence_bytes_per_accelerator(
            context_tokens
        )
        per_rank_int = min(int(per_rank), MAX_BATCH_PER_DP_RANK)
        return per_rank_int * self._ranks

    @property
    def kv_budget_bytes(self) -> float:
        """KV memory the replica admits sequences against, bytes.

        In the units of :meth:`kv_bytes_for_context`: per GPU of an attention rank, summed over
        the ranks.
        """
        return self.kv_capacity_bytes_per_accelerator * self._ranks

    def kv_bytes_for_context(self, context_tokens: float) -> float:
        """What one sequence of ``context_tokens`` takes from :attr:`kv_budget_bytes`."""
        return self.sequence_bytes_per_accelerator(context_tokens)

    def require_fit(self, context_tokens: float) -> None:
        """Raise ConfigError unless at least one sequence of ``context_tokens`` fits."""
        if self.max_batch(context_tokens) < 1:
            raise ConfigError(
                "model",
                f"{self.model.name} on {self.parallelism.describe()} x "
                f"{self.system.accelerator.name} has "
                f"{self.kv_capacity_bytes_per_accelerator / 1e9:.2f} GB per GPU for KV, "
                f"less than one "
                f"{context_tokens:.0f}-token sequence needs "
                f"({self.sequence_bytes_per_accelerator(context_tokens) / 1e9:.2f} GB); allowed: a "
                f"larger tp, a smaller precision or a shorter context",
            )

    # ----------------------------------------------------------------------------- time
    def experts_touched_per_layer(self, tokens: float) -> float:
        """Expected distinct routed experts one MoE layer reads for ``tokens`` tokens."""
        if self._experts == 0 or tokens <= 0:
            return 0.0
        return float(self._experts * (1.0 - (1.0 - self._active_experts / self._experts) ** tokens))

    def _coefficients(self) -> GpuStepCoefficients:
        """Every constant of the step function, folded once (see GpuStepCoefficients)."""
        par = self.parallelism
        tp, ep, ranks, attn_tp = par.tp, par.ep, par.attention_ranks, par.attention_tp
        eff = self.efficiency
        dense_fpt, expert_fpt = self._dense_flops_per_token, self._expert_flops_per_token
        linear_rate, attention_rate = self._linear_flops_per_s, self._attention_flops_per_s
        experts, k = float(self._experts), float(self._active_experts)
        z_ep = expected_max_standard_normal(ep)
        latency, link = self._link_latency_s, self._link_bytes_per_s
        hidden = float(self._hidden)
        # All-reduces of the tensor-parallel non-expert layers: one after attention in every
        # layer, one after each dense FFN, and one after each MoE layer whose experts are
        # tensor-parallel (ep = 1) while attention is too.
        n_allreduce = 0
        if attn_tp > 1:
            n_allreduce = self._n_layers + (self._n_layers - self._n_moe_layers)
            if ep == 1:
                n_allreduce += self._n_moe_layers
        # MoE token exchange: an all-to-all dispatch + combine over the ep ranks, or (experts
        # tensor-parallel under data-parallel attention) an all-gather + reduce-scatter over tp.
        n_exchange = 2 * self._n_moe_layers if experts and (ep > 1 or ranks > 1) else 0
        if ep > 1:
            exchange_s = k * hidden * A2A_BYTES * (ep - 1) / ep / link / tp
        else:
            exchange_s = hidden * ACTIVATION_BYTES * (tp - 1) / tp / link
        g, a_full, a_window, _ = attention_flop_coefficients(self.model)
        pair_flops, linear_flops, prompt_constant = prefill_attention_coefficients(self.model)
        short_pair_flops, short_linear_flops = short_prompt_attention_coefficients(self.model)
        return GpuStepCoefficients(
            dense_per_token_s=dense_fpt / attn_tp / linear_rate,
            always_read_s=self._always_read_bytes / self._bytes_per_s,
            experts=experts,
            active_experts=k,
            miss=1.0 - k / experts if experts else 1.0,
            experts_per_rank=experts / ep,
            ep=ep,
            z_ep=z_ep,
            ep_mean_share=1.0 / ep,
            ep_spread=z_ep * math.sqrt(1.0 / ep * (1.0 - 1.0 / ep)),
            expert_read_s=(
                self._n_moe_layers
                * self._expert_bytes_per_accelerator_layer
                / self._expert_bytes_per_s
            ),
            expert_gemm_half_tokens=eff.expert_gemm_half_tokens,
            expert_per_assignment_s=(expert_fpt / k / (tp // ep) / linear_rate if experts else 0.0),
            kv_token_s=self._kv_token_bytes_per_accelerator / self._bytes_per_s,
            window_token_s=self._window_token_bytes_per_accelerator / self._bytes_per_s,
            recurrent_s=self._recurrent_bytes_per_accelerator / self._bytes_per_s,
            window_tokens=self._window_tokens,
            attention_flops_base=g,
            attention_flops_per_context=a_full,
            attention_flops_per_window=a_window,
            attention_per_flop_s=1.0 / attn_tp / attention_rate,
            activation_per_token_s=self._activation_bytes_per_token / attn_tp / self._bytes_per_s,
            ranks=float(ranks),
            inv_ranks=1.0 / ranks,
            half_pair_flops=pair_flops / 2.0,
            linear_prefill_flops=linear_flops + pair_flops / 2.0,
            prompt_constant_flops=prompt_constant,
            half_pair_short_flops=short_pair_flops / 2.0,
            linear_short_flops=short_linear_flops + short_pair_flops / 2.0,
            n_allreduce=n_allreduce,
            ring_latency_s=n_allreduce * latency,
            ring_per_token_s=hidden * ACTIVATION_BYTES * 2.0 * (attn_tp - 1) / attn_tp / link,
            n_exchange=n_exchange,
            exchange_latency_s=n_exchange * latency,
            exchange_per_token_s=exchange_s,
            overhead_s=(
                eff.step_overhead_s
                + self._n_layers * eff.layer_overhead_s
                + self._n_moe_layers * eff.moe_layer_overhead_s
            ),
            eager_floor_s=self._n_layers * eff.eager_layer_launch_s,
        )

    def step_components_s(
        self,
        decode_sequences: int,
        decode_context_tokens: float,
        prefill_tokens: float = 0.0,
        prefill_attention_flops: float = 0.0,
    ) -> dict[str, float]:
        """Time of each kernel class in one batch iteration on the busiest GPU, s.

        Kernels run one after another, so each class is bounded by its own roofline
        ``max(flops / achieved_flops, bytes / achieved_bandwidth)`` and the step is their sum:

        * ``dense_gemm``: always-read weights (attention projections, dense FFNs, shared experts,
          lm_head) against the busiest attention rank's tokens;
        * ``expert_gemm``: the routed experts the busiest EP rank holds and its tokens touch
          (grouped GEMMs at the efficiency of their per-expert row count);
        * ``attention``: KV / state reads of the decoding sequences and score FLOPs of decode and
          prefill tokens;
        * ``activations``: intermediate tensors written and read between kernels;
        * ``comm``: TP all-reduces and EP all-to-alls on the scale-up links;
        * ``overhead``: per-step and per-layer fixed costs of the stack, and in a step carrying
          prefill tokens whatever the host's eager kernel launches add beyond the GPU's work.

        Arguments as for :meth:`step_time_s`.
        """
        parts = gpu_step_components_s(
            self.coefficients,
            decode_sequences,
            decode_context_tokens,
            prefill_tokens,
            prefill_attention_flops,
        )
        return dict(zip(STEP_COMPONENTS, parts, strict=True))

    def step_time_s(
        self,
        decode_sequences: int,
        decode_context_tokens: float,
        prefill_tokens: float = 0.0,
        prefill_attention_flops: float = 0.0,
    ) -> float:
        """Time of one batch iteration, s (:func:`gpu_step_time_s` on this replica).

        Under ``dp_attention`` the prefill tokens run on as many attention ranks as they hold
        prompts (:func:`~planner.perf.gpu_step.prefill_ranks_used`).

        Args:
            decode_sequences: Sequences producing one token each this step (``B``).
            decode_context_tokens: Sum over those sequences of their cached context, tokens.
            prefill_tokens: Prompt tokens prefilled in the same step (``P``).
            prefill_attention_flops: Attention-score FLOPs of those prefill tokens (from
                ``Model.prefill_attention_flops``), FLOPs.
        """
        return gpu_step_time_s(
            self.coefficients,
            decode_sequences,
            decode_context_tokens,
            prefill_tokens,
            prefill_attention_flops,
        )

    def make_step_time_fn(self) -> Callable[[float, float, float, float], float]:
        """:func:`gpu_step_time_s` bound to this replica's coefficients (the simulator's entry)."""
        return partial(gpu_step_time_s, self.coefficients)

    def prefill_time_s(self, prompt_tokens: float, cached_prefix_tokens: float = 0.0) -> float:
        """Time to prefill one prompt alone in one iteration (no decode in the step), s.

        The step function on the prompt's new tokens: with ``dp_attention`` the prompt runs on
        one attention rank while the others wait at the MoE layers' collectives, in the
        simulator as here (:func:`~planner.perf.gpu_step.prefill_ranks_used`). The simulator
        prefills a prompt longer than its token budget in chunks, one step each, and so pays the
        per-step costs (overhead, expert reads) once per chunk.
        """
        new_tokens = max(prompt_tokens - cached_prefix_tokens, 0.0)
        if new_tokens <= 0:
            return 0.0
        flops = self.model.prefill_attention_flops(new_tokens, cached_prefix_tokens)
        return self.step_time_s(0, 0.0, new_tokens, float(flops))

    def decode_tokens_per_s_per_user(self, context_tokens: float) -> float:
        """Single-stream decode speed at batch 1 with ``context_tokens`` cached, tokens/s."""
        return 1.0 / self.step_time_s(1, context_tokens)

    def sequence_bytes(self, context_tokens: float) -> float:
        """KV + state of one sequence of ``context_tokens`` over the whole replica, bytes."""
        return (
            self._full_kv_bytes_per_token * context_tokens
            + self._sliding_bytes_per_token * min(context_tokens, self._held_window_tokens)
            + self._recurrent_state_bytes
        )

    def bytes_read_per_token_at_batch_1(self, context_tokens: float) -> float:
        """Bytes the replica reads to decode one token of one sequence (the roofline bound).

        One copy of the always-read weights, the ``k`` experts the token routes to in every MoE
        layer, and the sequence's KV and state.
        """
        tp = self.parallelism.tp
        return (
            self._always_read_bytes * self.parallelism.attention_tp
            + self._n_moe_layers
            * self.experts_touched_per_layer(1)
            * self._expert_bytes_per_accelerator_layer
            * (tp // self.parallelism.ep)
            + self.sequence_bytes(context_tokens)
        )


def activation_bytes_per_token(model: Model) -> float:
    """Activation bytes one token moves through memory in a forward pass (read + write), bytes.

    Counts the tensors that do not stay on chip between kernels: per layer about eight
    hidden-sized vectors (residual stream, norms, QKV input, attention output) and, per FFN it
    visits, the gate/up/activation intermediates and its input/output copies. For a routed MoE
    layer that is ``k`` expert visits plus dispatch and combine copies. BF16 activations.
    """
    moe = model.moe
    per_token = model.n_layers * 8 * model.hidden_size
    per_token += model.n_dense_ffn_layers * 3 * model.dense_ffn_size
    if moe is not None:
        per_expert_visit = 3 * moe.expert_ffn_size + 2 * model.hidden_size
        shared = moe.n_shared_experts * 3 * moe.shared_expert_ffn_size
        per_token += model.n_moe_layers * (moe.n_active_experts * per_expert_visit + shared)
    return 2.0 * ACTIVATION_BYTES * per_token


def attention_flop_coefficients(model: Model) -> tuple[float, float, float, float]:
    """Decode attention FLOPs of one token as ``g + a_full * c + a_window * min(c, window)``.

    ``Model.decode_attention_flops`` is piecewise linear in the context ``c``: a constant from
    Gated DeltaNet layers, a slope from full-attention layers and a slope that stops at the
    window from sliding-window layers. Reading the coefficients off it once lets the simulator's
    hot loop evaluate it with a few multiplications.

    Returns:
        ``(g, a_full, a_window, window)``; ``a_window`` and ``window`` are 0 without sliding layers.
    """
    window = float(model.sliding_window_tokens)
    g = float(model.decode_attention_flops(0.0))
    if window > 0:
        a_full = (
            model.decode_attention_flops(2 * window) - model.decode_attention_flops(window)
        ) / window
        a_window = (model.decode_attention_flops(window) - g) / window - a_full
    else:
        a_full, a_window = float(model.decode_attention_flops(1.0)) - g, 0.0
    return g, float(a_full), float(a_window), window


def prefill_attention_coefficients(model: Model) -> tuple[float, float, float]:
    """Prefill attention FLOPs of a whole prompt of ``L`` tokens as a quadratic in ``L``.

    ``Model.prefill_attention_flops(L, 0) = pair * L * (L + 1) / 2 + linear * L - constant`` for
    prompts longer than the sliding window: ``pair`` is the FLOPs of one (query, key) pair
    summed over the full-attention layers, ``linear`` the FLOPs per token of the layers whose span
    is bounded (sliding window, GDN) and ``constant`` what the window's first tokens save.

    Returns:
        ``(pair, linear, constant)``, FLOPs.
    """
    beyond = 2.0 * float(model.sliding_window_tokens) + 1.0
    at = float(model.prefill_attention_flops(1.0, beyond))
    pair = float(model.prefill_attention_flops(1.0, beyond + 1.0)) - at
    linear = at - pair * (beyond + 1.0)
    whole = float(model.prefill_attention_flops(beyond, 0.0))
    constant = pair * beyond * (beyond + 1.0) / 2.0 + linear * beyond - whole
    return pair, linear, max(constant, 0.0)


def short_prompt_attention_coefficients(model: Model) -> tuple[float, float]:
    """Prefill attention FLOPs of a prompt within the sliding window, as a quadratic.

    ``pair * L * (L + 1) / 2 + linear * L``: every attention layer sees every earlier token;
    ``linear`` is GDN's.

    Returns:
        ``(pair, linear)``, FLOPs; the long-prompt ones of
        :func:`prefill_attention_coefficients` for a model without sliding layers.
    """
    if model.sliding_window_tokens < 2:
        pair, linear, _ = prefill_attention_coefficients(model)
        return pair, linear
    first = float(model.prefill_attention_flops(1.0, 0.0))
    pair = float(model.prefill_attention_flops(1.0, 1.0)) - first
    return pair, first - pair
