"""Per-layer pipeline cost model of one model replica on a chain of Groq-style LPU chips.

An LPU has no HBM: weights, KV cache and activations live in on-chip SRAM (230 MB per LPU v1
chip), so a model is spread over as many chips as they need (``planner.perf.lpu_placement``).

A token crosses every layer's chips in turn. One layer takes the longest of three times::

    t_layer = max(layer bytes read / (chips of the layer * sram_bw * memory_eff),
                  layer FLOPs / (chips of the layer * peak * compute_eff),
                  layer_floor_s)

and the token crosses ``hops`` chip-to-chip hops, each ``hop_latency_s`` plus the activation
vector's serialization over the chip's C2C bandwidth::

    traversal = layers * t_layer + hops * (hop_latency_s + hidden * 2 B / c2c_bw)

``layer_floor_s`` and ``hop_latency_s`` are fitted by :func:`planner.perf.lpu_fit.fit_lpu_factors`
to the two Groq rows (Llama-2-70B and Llama-2-7B); the floor (the dependent chain of operations
the compiler schedules in one layer) is what makes per-user speed scale with layers rather than
with bytes: streaming a layer from SRAM takes a few microseconds, the floor tens.

Latency is deterministic (no jitter). Throughput comes from keeping the pipeline full: about one
sequence per stage (a stage is a layer, or a chip when layers share chips), bounded by the SRAM
left for KV. With ``B`` sequences in flight each gets a token every
``traversal * max(1, B / stages)``. An iteration carrying prefill tokens pays their compute,
spread over the chain, and (when nothing else is decoding) one traversal of the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from planner.perf.efficiency import EfficiencyFactors
from planner.perf.gpu import KV_BYTES_PER_ELEMENT, attention_flop_coefficients
from planner.perf.lpu_placement import (
    ACTIVATION_BYTES_PER_ELEMENT,
    place,
)
from planner.specs.errors import ConfigError, require_choice
from planner.specs.hardware import PRECISION_BYTES_PER_WEIGHT, System
from planner.specs.model import Model


class LpuStepCoefficients(NamedTuple):
    """The constants of one LPU chain's step function, folded once (a frozen record).

    :func:`lpu_step_time_s` is the one step-time function of an LPU replica: the simulator
    (through :meth:`LpuReplica.make_step_time_fn`) and the static figures (through
    :meth:`LpuReplica.step_time_s`, :meth:`LpuReplica.layer_time_s` and
    :meth:`LpuReplica.prefill_time_s`) evaluate it on these coefficients.

    Attributes:
        layers: Model layers (pipeline depth in layers).
        stages: Pipeline stages (sequences in flight without sharing a stage).
        base_read_bytes: Weights and per-sequence state one token streams per layer, bytes.
        kv_token_bytes: KV bytes per context token per layer.
        layer_bytes_per_s: SRAM bandwidth serving one layer, bytes/s.
        layer_flops_per_s: Compute serving one layer, FLOP/s.
        linear_flops_per_token: GEMM FLOPs of one token over the model.
        chain_flops_per_s: Compute of the whole chain (prefill), FLOP/s.
        attention_flops_base: Decode attention FLOPs independent of context.
        attention_flops_per_context: Decode attention FLOPs per context token (full layers).
        attention_flops_per_window: Decode attention FLOPs per in-window token (sliding).
        window_tokens: Sliding window, tokens (0 without sliding layers).
        layer_floor_s: Fixed schedule floor of one layer, s.
        hops_s: Chip-to-chip hops of one traversal, s.
        empty_traversal_s: One traversal at zero context (a prefill-only iteration pays it), s.
    """

    layers: float
    stages: float
    base_read_bytes: float
    kv_token_bytes: float
    layer_bytes_per_s: float
    layer_flops_per_s: float
    linear_flops_per_token: float
    chain_flops_per_s: float
    attention_flops_base: float
    attention_flops_per_context: float
    attention_flops_per_window: float
    window_tokens: float
    layer_floor_s: float
    hops_s: float
    empty_traversal_s: float


def lpu_layer_time_s(coefficients: LpuStepCoefficients, context_tokens: float) -> float:
    """Mean time of one layer for one token at ``context_tokens``, s.

    The larger of streaming the layer's share of weights and KV, its compute and the schedule
    floor.
    """
    c = coefficients
    in_window = context_tokens if context_tokens < c.window_tokens else c.window_tokens
    read_s = (c.base_read_bytes + c.kv_token_bytes * context_tokens) / c.layer_bytes_per_s
    compute_s = (
        c.linear_flops_per_token
        + c.attention_flops_base
        + c.attention_flops_per_context * context_tokens
        + c.attention_flops_per_window * in_window
    ) / (c.layers * c.layer_flops_per_s)
    return max(read_s, compute_s, c.layer_floor_s)


def lpu_step_time_s(
    coefficients: LpuStepCoefficients,
    decode_sequences: float,
    decode_context_tokens: float,
    prefill_tokens: float = 0.0,
    prefill_attention_flops: float = 0.0,
) -> float:
    """Time between successive tokens of each of ``decode_sequences`` in flight, s.

    Up to one sequence per stage rides the pipeline without slowing the others; beyond that
    the stages are shared. Prefill tokens cost their compute spread over the chain and, in an
    iteration with no decode traversal to ride along, one traversal of their own.

    A prompt longer than the simulator's token budget is prefilled in several such iterations
    and pays one traversal per iteration (iterations are synchronous), where a pipelined stream
    of chunks would pay one: the simulator's prefill-only time is then conservative by
    (chunks - 1) traversals against :meth:`LpuReplica.prefill_time_s`.

    Args:
        coefficients: The chain's folded constants.
        decode_sequences: Sequences producing one token each this step.
        decode_context_tokens: Sum over those sequences of their cached context, tokens.
        prefill_tokens: Prompt tokens prefilled in the same iteration.
        prefill_attention_flops: Attention-score FLOPs of those prefill tokens, FLOPs.
    """
    c = coefficients
    total = 0.0
    if decode_sequences > 0:
        mean = decode_context_tokens / decode_sequences
        share = decode_sequences / c.stages
        total = (c.layers * lpu_layer_time_s(c, mean) + c.hops_s) * (share if share > 1.0 else 1.0)
    if prefill_tokens > 0:
        total += (
            c.linear_flops_per_token * prefill_tokens + prefill_attention_flops
        ) / c.chain_flops_per_s
        if decode_sequences == 0:
            total += c.empty_traversal_s
    return total


class LpuReplica:
    """Step-time and memory model of one model replica pipelined layer by layer over LPU chips.

    Args:
        model: The model.
        system: The LPU system (rack); chips are deployed in whole systems.
        precision: Weight precision; the chip must support it (LPU v1: int8, fp8, bf16).
        kv_precision: KV-cache precision (``bf16`` or ``fp8``).
        efficiency: Factors of the ``groq_lpu`` family (layer floor, hop latency, SRAM reserve).
        chips: Chips to deploy; ``None`` sizes the replica for a full pipeline of sequences at
            ``efficiency.kv_sizing_context_tokens`` (see ``planner.perf.lpu_placement``).
        sizing_context_tokens: Overrides ``efficiency.kv_sizing_context_tokens`` (calibration).

    Raises:
        ConfigError: Unsupported precision, or ``chips`` too few for the weights.
    """

    def __init__(
        self,
        model: Model,
        system: System,
        precision: str,
        kv_precision: str,
        efficiency: EfficiencyFactors,
        chips: int | None = None,
        sizing_context_tokens: float | None = None,
    ) -> None:
        """Place the model on the chain; arguments as in the class docstring."""
        accel = system.accelerator
        if accel.kind != "lpu":
            raise ConfigError(
                "hardware", f"{system.name} is a {accel.kind}; LpuReplica needs an lpu"
            )
        self.model = model
        self.system = system
        self.precision = precision
        self.kv_precision = require_choice("kv_precision", kv_precision, KV_BYTES_PER_ELEMENT)
        self.efficiency = efficiency
        bytes_per_weight = PRECISION_BYTES_PER_WEIGHT[precision]
        kv_bytes = KV_BYTES_PER_ELEMENT[self.kv_precision]
        self.weight_bytes = model.total_params * bytes_per_weight
        self.kv_bytes_per_token = model.kv_bytes_per_token(kv_bytes)
        self.state_bytes_per_sequence = model.fixed_state_bytes_per_sequence(kv_bytes)
        self.sizing_context_tokens = (
            efficiency.kv_sizing_context_tokens
            if sizing_context_tokens is None
            else sizing_context_tokens
        )
        self.placement = place(
            model,
            system,
            bytes_per_weight=bytes_per_weight,
            sequence_bytes=self.sequence_bytes,
            reserve_fraction=efficiency.sram_reserve_fraction,
            sizing_context_tokens=self.sizing_context_tokens,
            chips=chips,
        )
        self.accelerators = self.placement.chips
        self.systems = self.placement.systems
        self.stages = self.placement.stages
        self.min_chips_for_weights = self.placement.min_chips_for_weights
        """Fewest chips the weights' packing needs."""
        self.kv_capacity_bytes = max(
            self.accelerators * self.placement.usable_bytes_per_chip
            - self.weight_bytes
            - self.placement.activation_bytes,
            0.0,
        )
        """SRAM left for KV cache and state over the whole chain, bytes."""

        layers = model.n_layers
        # Chips whose SRAM bandwidth and compute serve one layer (a chip holding several layers
        # serves them one after another with all of its bandwidth).
        self._chips_per_layer = max(self.accelerators / layers, 1.0)
        self._layer_bytes_per_s = (
            self._chips_per_layer
            * accel.memory_bandwidth_bytes_per_s
            * efficiency.memory_efficiency
        )
        self._layer_flops_per_s = (
            self._chips_per_layer * accel.peak_flops(precision) * efficiency.compute_efficiency
        )
        self._chain_flops_per_s = (
            self.accelerators * accel.peak_flops(precision) * efficiency.compute_efficiency
        )
        self.hop_s = efficiency.hop_latency_s + (
            model.hidden_size * ACTIVATION_BYTES_PER_ELEMENT / accel.scale_up_bandwidth_bytes_per_s
        )
        """One chip-to-chip hop: fixed latency plus the activation vector's serialization, s."""
        self.hops_s = self.placement.hops_per_token * self.hop_s

        moe = model.moe
        self._experts = moe.n_routed_experts if moe else 0
        self._active_fraction = moe.n_active_experts / moe.n_routed_experts if moe else 0.0
        expert_bytes = model.params_per_routed_expert * bytes_per_weight if moe else 0.0
        # Weights one token streams: everything but the untied input embedding (a row gather)
        # and the routed experts it does not touch.
        self._weight_read_bytes = (
            model.always_read_params * bytes_per_weight
            + model.n_moe_layers * self.experts_touched_per_layer(1) * expert_bytes
        )
        self._linear_flops_per_token = model.linear_flops_per_token
        self.coefficients = self._coefficients()
        """The folded constants of :func:`lpu_step_time_s` for this replica."""

    # ----------------------------------------------------------------------------- memory
    def sequence_bytes(self, context_tokens: float) -> float:
        """KV + state of one sequence, bytes."""
        return self.kv_bytes_per_token * context_tokens + self.state_bytes_per_sequence

    def max_batch(self, context_tokens: float) -> int:
        """Sequences in flight: one per pipeline stage, bounded by the SRAM left for KV."""
        by_memory = int(self.kv_capacity_bytes / self.sequence_bytes(context_tokens))
        return min(by_memory, self.stages)

    @property
    def kv_budget_bytes(self) -> float:
        """SRAM the chain admits sequences against (units of :meth:`kv_bytes_for_context`)."""
        return self.kv_capacity_bytes

    def kv_bytes_for_context(self, context_tokens: float) -> float:
        """What one sequence of ``context_tokens`` takes from :attr:`kv_budget_bytes`."""
        return self.sequence_bytes(context_tokens)

    def require_fit(self, context_tokens: float) -> None:
        """Raise ConfigError unless one sequence of ``context_tokens`` fits in the spare SRAM."""
        if self.max_batch(context_tokens) < 1:
            raise ConfigError(
                "model",
                f"{self.model.name} on {self.accelerators} {self.system.accelerator.name} chips "
                f"leaves {self.kv_capacity_bytes / 1e9:.2f} GB SRAM for KV, less than one "
                f"{context_tokens:.0f}-token sequence needs "
                f"({self.sequence_bytes(context_tokens) / 1e9:.2f} GB); allowed: more chips "
                f"(chips=N) or a shorter context",
            )

    def static_figures(self, context_tokens: float) -> dict[str, Any]:
        """SRAM budget and pipeline shape at ``context_tokens`` (keys of planner-roofline).

        ``sram_usable_fraction`` is derived, not fitted: the share of the chain's SRAM that
        weights, decode activations and the KV of the largest batch at this context occupy.
        ``sram_pinned_by`` says what set the chip count (``weights``, ``kv``, ``chips``, ``chain``).
        """
        sram = self.accelerators * self.system.accelerator.memory_bytes
        batch = max(self.max_batch(context_tokens), 0)
        kv = batch * self.sequence_bytes(context_tokens)
        used = self.weight_bytes + self.placement.activation_bytes + kv
        return {
            "sram_usable_fraction": used / sram,
            "sram_pinned_by": self.placement.pinned_by,
            "sram_weight_fraction": self.weight_bytes / sram,
            "sram_kv_fraction": kv / sram,
            "sram_activation_fraction": self.placement.activation_bytes / sram,
            "sram_reserve_fraction": self.efficiency.sram_reserve_fraction,
            "kv_sizing_context_tokens": self.sizing_context_tokens,
            "pipeline_stages": self.stages,
            "hops_per_token": self.placement.hops_per_token,
            "layer_time_s": self.layer_time_s(context_tokens),
            "layer_floor_s": self.efficiency.layer_floor_s,
        }

    # ----------------------------------------------------------------------------- time
    def experts_touched_per_layer(self, tokens: float) -> float:
        """Expected distinct routed experts one MoE layer reads for ``tokens`` tokens."""
        if self._experts == 0 or tokens <= 0:
            return 0.0
        return float(self._experts * (1.0 - (1.0 - self._active_fraction) ** tokens))

    def _coefficients(self) -> LpuStepCoefficients:
        """Every constant of the step function, folded once (see LpuStepCoefficients)."""
        layers = float(self.model.n_layers)
        g, a_full, a_window, window = attention_flop_coefficients(self.model)
        partial_coefficients = LpuStepCoefficients(
            layers=layers,
            stages=float(self.stages),
            base_read_bytes=(self._weight_read_bytes + self.state_bytes_per_sequence) / layers,
            kv_token_bytes=self.kv_bytes_per_token / layers,
            layer_bytes_per_s=self._layer_bytes_per_s,
            layer_flops_per_s=self._layer_flops_per_s,
            linear_flops_per_token=self._linear_flops_per_token,
            chain_flops_per_s=self._chain_flops_per_s,
            attention_flops_base=g,
            attention_flops_per_context=a_full,
            attention_flops_per_window=a_window,
            window_tokens=window,
            layer_floor_s=self.efficiency.layer_floor_s,
            hops_s=self.hops_s,
            empty_traversal_s=0.0,
        )
        empty = layers * lpu_layer_time_s(partial_coefficients, 0.0) + self.hops_s
        return partial_coefficients._replace(empty_traversal_s=empty)

    def layer_time_s(self, context_tokens: float) -> float:
        """Mean time of one layer for one token: streaming, compute or the floor, s."""
        return lpu_layer_time_s(self.coefficients, context_tokens)

    def token_latency_s(self, context_tokens: float) -> float:
        """Time for one token of one sequence to traverse the whole pipeline, s."""
        return self.model.n_layers * self.layer_time_s(context_tokens) + self.hops_s

    def step_time_s(
        self,
        decode_sequences: int,
        decode_context_tokens: float,
        prefill_tokens: float = 0.0,
        prefill_attention_flops: float = 0.0,
    ) -> float:
        """Time between successive tokens of each of ``decode_sequences`` in flight, s.

        :func:`lpu_step_time_s` on this replica's coefficients; arguments as there.
        """
        return lpu_step_time_s(
            self.coefficients,
            decode_sequences,
            decode_context_tokens,
            prefill_tokens,
            prefill_attention_flops,
        )

    def make_step_time_fn(self) -> Callable[[float, float, float, float], float]:
        """:func:`lpu_step_time_s` bound to this replica's coefficients (the simulator's entry)."""
        return partial(lpu_step_time_s, self.coefficients)

    def prefill_time_s(self, prompt_tokens: float, cached_prefix_tokens: float = 0.0) -> float:
        """Time to prefill one prompt: compute spread over the chain plus one traversal, s.

        Equal to one simulator iteration carrying the whole prompt and nothing else.
        """
        new_tokens = max(prompt_tokens - cached_prefix_tokens, 0.0)
        if new_tokens <= 0:
            return 0.0
        flops = self.model.prefill_attention_flops(new_tokens, cached_prefix_tokens)
        return self.step_time_s(0, 0.0, new_tokens, flops)

    def decode_tokens_per_s_per_user(self, context_tokens: float) -> float:
        """Single-stream decode speed, tokens/s."""
        return 1.0 / self.token_latency_s(context_tokens)

    def bytes_read_per_token_at_batch_1(self, context_tokens: float) -> float:
        """Bytes the chain reads to decode one token of one sequence."""
        return self._weight_read_bytes + self.sequence_bytes(context_tokens)
