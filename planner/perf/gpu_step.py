"""The step-time function of a GPU replica: one batch iteration's kernel-class times.

Split from :mod:`planner.perf.gpu` (the physics and the constants it folds live there) because
it is the simulator's hottest code: ``make`` compiles this module with mypyc
(:mod:`planner.native`), and it keeps to what mypyc compiles well (floats, a named tuple, no
numpy). All times in seconds, FLOPs, tokens.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class GpuStepCoefficients(NamedTuple):
    """The constants of one replica's step function, folded once (a frozen record).

    :func:`gpu_step_components_s` is the one step-time function of a GPU replica: the
    simulator (through ``GpuReplica.make_step_time_fn``) and every static figure (roofline,
    capacity, floors, through ``GpuReplica.step_time_s`` and ``GpuReplica.prefill_time_s``)
    evaluate it on these coefficients. A named tuple so the hot loop unpacks it in one
    instruction. Times in seconds, FLOPs, tokens.

    Attributes:
        dense_per_token_s: Always-read GEMM time per token on an attention rank.
        always_read_s: Time to stream the always-read weights once (the dense GEMMs' floor).
        experts: Routed experts per MoE layer (0 for a dense model).
        active_experts: Experts each token routes to (``k``).
        miss: ``1 - k / E``, the chance one token misses a given expert.
        experts_per_rank: Routed experts one EP rank holds.
        ep: Expert-parallel degree.
        z_ep: Expected maximum of ``ep`` standard normals.
        ep_mean_share: ``1 / ep``.
        ep_spread: ``z_ep * sqrt(1/ep * (1 - 1/ep))`` (busiest-rank spread per sqrt(assignment)).
        expert_read_s: Time to stream every routed expert of a rank once, all MoE layers.
        expert_gemm_half_tokens: Rows per expert at which a grouped GEMM runs at half speed.
        expert_per_assignment_s: Expert GEMM time of one token-expert assignment.
        kv_token_s: Time to read one cached full-attention token of one sequence.
        window_token_s: Time to read one cached sliding-window token of one sequence.
        recurrent_s: Time to read one sequence's recurrent state.
        window_tokens: Sliding window, tokens (0 without sliding layers).
        attention_flops_base: Decode attention FLOPs independent of context (GDN).
        attention_flops_per_context: Decode attention FLOPs per context token (full layers).
        attention_flops_per_window: Decode attention FLOPs per in-window token (sliding).
        attention_per_flop_s: Time per attention FLOP on one attention rank.
        activation_per_token_s: Activation traffic time per token on one attention rank.
        ranks: Attention (data-parallel) ranks.
        inv_ranks: ``1 / ranks``.
        half_pair_flops: Half the prefill attention FLOPs of one token pair (full layers).
        linear_prefill_flops: Prefill attention FLOPs per token that do not grow with the prompt
            (sliding-window and GDN layers, prompts longer than the window) plus half a pair.
        prompt_constant_flops: Prefill attention FLOPs a whole prompt saves on its first
            window of tokens (sliding layers).
        half_pair_short_flops: Half the prefill FLOPs of one token pair over every attention
            layer (prompts within the sliding window).
        linear_short_flops: Their per-token FLOPs (GDN) plus half a pair.
        n_allreduce: Tensor-parallel all-reduces per step.
        ring_latency_s: Their link latency.
        ring_per_token_s: Ring all-reduce time per token and all-reduce.
        n_exchange: MoE token exchanges (dispatch + combine) per step.
        exchange_latency_s: Their link latency.
        exchange_per_token_s: Exchange time per token and exchange.
        overhead_s: Fixed per-step cost of the stack (per step, per layer, per MoE layer).
        eager_floor_s: Least time of a step carrying prefill tokens: the host launches of its
            kernels without CUDA graphs (``n_layers * eager_layer_launch_s``).
    """

    dense_per_token_s: float
    always_read_s: float
    experts: float
    active_experts: float
    miss: float
    experts_per_rank: float
    ep: int
    z_ep: float
    ep_mean_share: float
    ep_spread: float
    expert_read_s: float
    expert_gemm_half_tokens: float
    expert_per_assignment_s: float
    kv_token_s: float
    window_token_s: float
    recurrent_s: float
    window_tokens: float
    attention_flops_base: float
    attention_flops_per_context: float
    attention_flops_per_window: float
    attention_per_flop_s: float
    activation_per_token_s: float
    ranks: float
    inv_ranks: float
    half_pair_flops: float
    linear_prefill_flops: float
    prompt_constant_flops: float
    half_pair_short_flops: float
    linear_short_flops: float
    n_allreduce: int
    ring_latency_s: float
    ring_per_token_s: float
    n_exchange: int
    exchange_latency_s: float
    exchange_per_token_s: float
    overhead_s: float
    eager_floor_s: float


def prefill_ranks_used(
    coefficients: GpuStepCoefficients,
    decode_sequences: float,
    prefill_tokens: float,
    prefill_attention_flops: float,
) -> float:
    """Attention ranks a step's prefill tokens spread over (1 without ``dp_attention``).

    Under data-parallel attention a prompt runs on one rank; each rank has its own queue and
    token budget and prefills its own prompts' chunks in the same iteration as the others.

    * A replica that is decoding is loaded: its prefill spreads over every rank, which the
      saturated TensorRT-LLM DEP rows confirm (Qwen3-235B DEP4 at 32k/1k within 1% spread over
      the ranks, -58% with each prompt on one rank). In the simulator a chunk taken from one
      long prompt then stands for the chunks every rank runs from its own queue: the replica's
      prefill throughput is right, one prompt's latency optimistic by up to ``ranks`` x.
    * An idle replica (no decoding sequence) runs as many ranks as the step holds prompts,
      ``n``: one for a lone prompt, while the others wait at the MoE collectives
      (``prefill_time_s``, and the simulator's chunks of a prompt that arrives at an idle
      replica). The step function is not told ``n`` and reads it off the attention FLOPs, which
      grow with the square of each prompt's length (``n`` whole prompts of ``L = P / n`` tokens
      have ``F = n * f(L)``, ``f`` the quadratic of :func:`prefill_attention_coefficients`,
      solved for ``n``); one prompt, or one chunk of a prompt after its cached or
      earlier-chunked prefix, gives ``n <= 1``; a mix of lengths counts as fewer prompts, the
      long ones dominating the FLOPs. A model without attention FLOPs that grow with the prompt
      is taken as spread over every rank.

    Args:
        coefficients: The replica's folded constants.
        decode_sequences: Sequences decoding in the same step.
        prefill_tokens: Prompt tokens of the step.
        prefill_attention_flops: Their attention FLOPs.
    """
    ranks = coefficients.ranks
    if ranks <= 1.0 or prefill_tokens <= 0.0 or decode_sequences > 0:
        return ranks
    square = prefill_tokens * prefill_tokens
    # Prompts longer than the window: F = half_pair * (P^2 / n + P) + linear * P - constant * n,
    # a quadratic in n (``linear_prefill_flops`` holds half_pair + linear).
    prompts = 0.0
    quadratic = prefill_attention_flops - coefficients.linear_prefill_flops * prefill_tokens
    scaled = coefficients.half_pair_flops * square
    constant = coefficients.prompt_constant_flops
    if scaled > 0.0 and constant > 0.0:
        # c * n^2 + quadratic * n - scaled = 0, its positive root in the stable form.
        root = math.sqrt(quadratic * quadratic + 4.0 * constant * scaled)
        if quadratic > 0.0:
            prompts = 2.0 * scaled / (quadratic + root)
        else:
            prompts = (root - quadratic) / (2.0 * constant)
    elif scaled > 0.0 and quadratic > 0.0:
        prompts = scaled / quadratic
    if prompts <= 0.0 or prefill_tokens < prompts * coefficients.window_tokens:
        # Prompts within the window: every attention layer is quadratic in them.
        quadratic = prefill_attention_flops - coefficients.linear_short_flops * prefill_tokens
        if coefficients.half_pair_short_flops <= 0.0 or quadratic <= 0.0:
            return ranks
        prompts = coefficients.half_pair_short_flops * square / quadratic
    return 1.0 if prompts < 1.0 else (ranks if prompts > ranks else prompts)


def gpu_step_components_s(
    coefficients: GpuStepCoefficients,
    decode_sequences: float,
    decode_context_tokens: float,
    prefill_tokens: float = 0.0,
    prefill_attention_flops: float = 0.0,
) -> tuple[float, float, float, float, float, float]:
    """Time of each kernel class of one batch iteration on the busiest GPU, s.

    The one step-time function of a GPU replica (:mod:`planner.perf.gpu` states the
    physics; :data:`~planner.perf.gpu.STEP_COMPONENTS` names the components).

    Args:
        coefficients: The replica's folded constants.
        decode_sequences: Sequences producing one token each this step (``B``).
        decode_context_tokens: Sum over those sequences of their cached context, tokens.
        prefill_tokens: Prompt tokens prefilled in the same step (``P``).
        prefill_attention_flops: Attention-score FLOPs of those prefill tokens, FLOPs.

    Returns:
        ``(dense_gemm, expert_gemm, attention, activations, comm, overhead)``, all 0 for an
        empty step.
    """
    (
        dense_per_token_s,
        always_read_s,
        experts,
        k,
        miss,
        experts_per_rank,
        ep,
        z_ep,
        ep_mean_share,
        ep_spread,
        expert_read_s,
        m_half,
        expert_per_assignment_s,
        kv_token_s,
        window_s,
        recurrent_s,
        window,
        g,
        a_full,
        a_window,
        attention_per_flop_s,
        activation_s,
        ranks,
        inv_ranks,
        _,
        _,
        _,
        _,
        _,
        n_allreduce,
        ring_latency_s,
        ring_s,
        n_exchange,
        exchange_latency_s,
        exchange_s,
        overhead,
        eager_floor_s,
    ) = coefficients
    tokens = decode_sequences + prefill_tokens
    if tokens <= 0:
        return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    prefill_ranks = ranks
    if prefill_tokens > 0.0 and ranks > 1.0:
        prefill_ranks = prefill_ranks_used(
            coefficients, decode_sequences, prefill_tokens, prefill_attention_flops
        )
    # The busiest attention rank: its share of the decodes plus the prefill spread over
    # ``prefill_ranks`` ranks (one prompt lands on one rank).
    rank_sequences = decode_sequences * inv_ranks
    rank_tokens = rank_sequences + prefill_tokens / prefill_ranks
    mean = decode_context_tokens / decode_sequences if decode_sequences else 0.0
    in_window = mean if mean < window else window
    dense = dense_per_token_s * rank_tokens
    if always_read_s > dense:
        dense = always_read_s
    expert = 0.0
    imbalance = 1.0
    if experts:
        # Busiest EP rank's token-expert assignments (``busiest_share``, inlined).
        assignments = tokens * k
        busiest = assignments * ep_mean_share + ep_spread * math.sqrt(assignments)
        if busiest > assignments:
            busiest = assignments
        imbalance = busiest * ep / assignments
        touched_fraction = 1.0 - miss**tokens
        per_gemm = assignments / (experts * touched_fraction)  # rows of one expert GEMM
        expert = expert_per_assignment_s * busiest * (per_gemm + m_half) / per_gemm
        touched = experts_per_rank * touched_fraction
        if ep > 1:
            touched += z_ep * math.sqrt(touched * (1.0 - touched_fraction))
            if touched > experts_per_rank:
                touched = experts_per_rank
        read = touched * expert_read_s
        if read > expert:
            expert = read
    attention = (
        rank_sequences * (g + a_full * mean + a_window * in_window)
        + prefill_attention_flops / prefill_ranks
    ) * attention_per_flop_s
    kv = rank_sequences * (kv_token_s * mean + window_s * in_window + recurrent_s)
    if kv > attention:
        attention = kv
    comm = 0.0
    if n_allreduce:
        comm = ring_latency_s + n_allreduce * ring_s * rank_tokens
    if n_exchange:
        comm += exchange_latency_s + n_exchange * exchange_s * tokens * imbalance
    activations = activation_s * rank_tokens
    if prefill_tokens > 0.0 and eager_floor_s > 0.0:
        # Without CUDA graphs the GPU waits on the host's launches when its work is shorter.
        busy = dense + expert + attention + activations + comm + overhead
        if eager_floor_s > busy:
            overhead += eager_floor_s - busy
    return (dense, expert, attention, activations, comm, overhead)


def gpu_step_time_s(
    coefficients: GpuStepCoefficients,
    decode_sequences: float,
    decode_context_tokens: float,
    prefill_tokens: float = 0.0,
    prefill_attention_flops: float = 0.0,
) -> float:
    """Time of one batch iteration, s: the sum of :func:`gpu_step_components_s`."""
    dense, expert, attention, activations, comm, overhead = gpu_step_components_s(
        coefficients,
        decode_sequences,
        decode_context_tokens,
        prefill_tokens,
        prefill_attention_flops,
    )
    return dense + expert + attention + activations + comm + overhead
