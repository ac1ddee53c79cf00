"""Transformer model architectures and the quantities a capacity planner derives from them.

Pure data and arithmetic: a frozen, validated :class:`Model` built from a plain mapping (the CLI
turns Hydra config into mappings; nothing here imports Hydra). Figures and their sources live in
``conf/model/``; ``/work/shared/reference/models.md`` (section C) is the source of truth.

Counting conventions (they reproduce models.md C1/C2):

* Parameters are counted from the Hugging Face module structure: every weight matrix, bias,
  RMSNorm weight, router, attention sink and Gated DeltaNet (GDN) conv/decay vector. The text
  decoder only: multi-token-prediction (MTP) layers and vision towers are not modelled.
* All FFNs are SwiGLU (gate, up, down): ``3 * hidden * ffn`` weights.
* "Active" parameters are the ones one token touches: attention, norms, dense FFNs, the router,
  shared experts, ``n_active_experts`` routed experts, the input embedding row gather counted as
  the whole table (as models.md does) and the lm_head.
* FLOPs count a multiply-add as 2 FLOPs. Byte counts take ``bytes_per_element`` (2 for BF16).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from planner.specs.errors import (
    ConfigError,
    require_non_negative_int,
    require_positive,
    require_positive_int,
)

Tokens = TypeVar("Tokens", float, npt.NDArray[np.float64])


def _require_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be true or false, got {value!r}")
    return value


def _validate_fields(obj: Any, prefix: str, non_negative: str = "") -> None:
    """Type-check ``int`` / ``bool`` fields; ints must be >= 1 unless named in ``non_negative``."""
    for f in fields(obj):
        field, value = f"{prefix}.{f.name}", getattr(obj, f.name)
        if f.type == "bool":
            _require_bool(field, value)
        elif f.type == "int" and f.name in non_negative.split():
            require_non_negative_int(field, value)
        elif f.type == "int":
            require_positive_int(field, value)


def _require_tokens(field: str, value: Any) -> None:
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(field, f"must be finite and >= 0, got {value!r}")


@dataclass(frozen=True)
class MlaShape:
    """DeepSeek multi-head latent attention (MLA) projection ranks.

    Attributes:
        q_lora_rank: Rank of the query down-projection (0 = queries not compressed).
        kv_lora_rank: Rank of the shared KV latent that is cached, elements per token per layer.
        qk_nope_head_dim: Per-head query/key dimension without RoPE.
        qk_rope_head_dim: Per-head decoupled RoPE dimension (the RoPE key is shared, and cached).
        v_head_dim: Per-head value dimension.
    """

    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int

    def __post_init__(self) -> None:
        _validate_fields(self, "model.mla", "q_lora_rank")


@dataclass(frozen=True)
class GatedDeltaNetShape:
    """Linear-attention (Gated DeltaNet) layer geometry, as in Qwen3-Next / Qwen3.5.

    Attributes:
        n_qk_heads: Query/key heads (``linear_num_key_heads``).
        n_v_heads: Value heads (``linear_num_value_heads``); one recurrent state per value head.
        head_k_dim: Key head dimension.
        head_v_dim: Value head dimension.
        conv_kernel: Causal depthwise-conv kernel length, tokens.
        state_bytes_per_element: Bytes per recurrent-state element (4 for Qwen3.5's
            ``mamba_ssm_dtype: float32``).
    """

    n_qk_heads: int
    n_v_heads: int
    head_k_dim: int
    head_v_dim: int
    conv_kernel: int
    state_bytes_per_element: int

    def __post_init__(self) -> None:
        _validate_fields(self, "model.gdn")


@dataclass(frozen=True)
class MoeShape:
    """Mixture-of-experts FFN shape (one MoE layer).

    Attributes:
        n_routed_experts: Routed experts per MoE layer.
        n_active_experts: Routed experts each token uses (top-k).
        n_shared_experts: Always-on shared experts per MoE layer.
        expert_ffn_size: Intermediate size of one routed expert.
        shared_expert_ffn_size: Intermediate size of one shared expert (0 if none).
        router_bias: Router has a per-expert bias (gpt-oss bias, DeepSeek/GLM
            ``e_score_correction_bias``).
        expert_bias: Expert projections carry biases (gpt-oss).
        shared_expert_gate: Sigmoid gate ``Linear(hidden, 1)`` on the shared expert (Qwen).
    """

    n_routed_experts: int
    n_active_experts: int
    n_shared_experts: int
    expert_ffn_size: int
    shared_expert_ffn_size: int
    router_bias: bool = False
    expert_bias: bool = False
    shared_expert_gate: bool = False

    def __post_init__(self) -> None:
        p = "model.moe"
        _validate_fields(self, p, "n_shared_experts shared_expert_ffn_size")
        if self.n_active_experts > self.n_routed_experts:
            raise ConfigError(
                f"{p}.n_active_experts",
                f"must be <= n_routed_experts ({self.n_routed_experts}), "
                f"got {self.n_active_experts}",
            )
        if (self.shared_expert_ffn_size > 0) != (self.n_shared_experts > 0):
            raise ConfigError(
                f"{p}.shared_expert_ffn_size",
                f"must be > 0 iff n_shared_experts ({self.n_shared_experts}) > 0, "
                f"got {self.shared_expert_ffn_size}",
            )
        if self.shared_expert_gate and self.n_shared_experts == 0:
            raise ConfigError(f"{p}.shared_expert_gate", "needs n_shared_experts > 0")


_SUBSHAPES: dict[str, type] = {"mla": MlaShape, "gdn": GatedDeltaNetShape, "moe": MoeShape}
_MODEL_NON_NEGATIVE = (
    "n_full_attention_layers n_sliding_window_layers sliding_window_tokens "
    "n_linear_attention_layers n_dense_ffn_layers dense_ffn_size"
)


@dataclass(frozen=True)
class Model:
    """A decoder-only LLM: layer mix, attention geometry, FFN/MoE shape.

    Attributes:
        name: Config name (the ``conf/model`` file stem).
        n_layers: Decoder layers (MTP layers excluded).
        hidden_size: Residual-stream width.
        vocab_size: Vocabulary size (rows of the embedding table).
        tie_word_embeddings: lm_head shares the input embedding matrix.
        n_heads: Query heads of full / sliding-window attention (MLA: attention heads).
        n_kv_heads: KV heads of full / sliding-window GQA layers (ignored when ``mla`` is set).
        head_dim: Head dimension of GQA layers (ignored when ``mla`` is set).
        n_full_attention_layers: Layers with full (global) softmax attention, GQA or MLA.
        n_sliding_window_layers: Layers with sliding-window (or chunked-local) GQA attention.
        sliding_window_tokens: Window of those layers, tokens (0 if none).
        n_linear_attention_layers: Gated DeltaNet layers.
        n_dense_ffn_layers: Layers with a dense FFN instead of MoE (all layers if dense model).
        dense_ffn_size: Intermediate size of the dense FFN (0 if no dense layers).
        attention_output_gate: Qwen3-Next/3.5 gated attention (q_proj output doubled).
        qkv_bias: q/k/v projections carry biases.
        attention_output_bias: o_proj carries a bias (gpt-oss).
        attention_sinks: One learned sink logit per head per attention layer (gpt-oss).
        qk_norm: Per-head RMSNorm on queries and keys (Qwen3, GLM-4.5).
        mla: MLA shape (DeepSeek) or None for GQA.
        gdn: Gated DeltaNet shape; required iff ``n_linear_attention_layers > 0``.
        moe: MoE shape, None for dense models.
        official_total_params: Model-card total parameters, for reporting only.
        official_active_params: Model-card active parameters, for reporting only.
    """

    name: str
    n_layers: int
    hidden_size: int
    vocab_size: int
    tie_word_embeddings: bool
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_full_attention_layers: int
    n_sliding_window_layers: int
    sliding_window_tokens: int
    n_linear_attention_layers: int
    n_dense_ffn_layers: int
    dense_ffn_size: int
    attention_output_gate: bool = False
    qkv_bias: bool = False
    attention_output_bias: bool = False
    attention_sinks: bool = False
    qk_norm: bool = False
    mla: MlaShape | None = None
    gdn: GatedDeltaNetShape | None = None
    moe: MoeShape | None = None
    official_total_params: float | None = None
    official_active_params: float | None = None

    # ------------------------------------------------------------------ construction

    def __post_init__(self) -> None:
        p = "model"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{p}.name", f"must be a non-empty string, got {self.name!r}")
        _validate_fields(self, p, _MODEL_NON_NEGATIVE)
        for key, sub_cls in _SUBSHAPES.items():
            value = getattr(self, key)
            if value is not None and not isinstance(value, sub_cls):
                raise ConfigError(f"{p}.{key}", f"must be a {sub_cls.__name__} or None")
        for name in ("official_total_params", "official_active_params"):
            if getattr(self, name) is not None:
                require_positive(f"{p}.{name}", getattr(self, name))
        self._check_consistency()

    def _check_consistency(self) -> None:
        n_sw, n_gdn = self.n_sliding_window_layers, self.n_linear_attention_layers
        n_full, n_dense, n_layers = (
            self.n_full_attention_layers,
            self.n_dense_ffn_layers,
            self.n_layers,
        )
        if n_full + n_sw + n_gdn != n_layers:
            raise ConfigError(
                "model.n_layers",
                "must equal n_full_attention_layers + n_sliding_window_layers + "
                f"n_linear_attention_layers ({n_full} + {n_sw} + {n_gdn}), got {n_layers}",
            )
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                "model.n_kv_heads", f"must divide n_heads ({self.n_heads}), got {self.n_kv_heads}"
            )
        if n_dense > n_layers:
            raise ConfigError(
                "model.n_dense_ffn_layers", f"must be <= n_layers ({n_layers}), got {n_dense}"
            )
        moe = "null" if self.moe is None else "set"
        for field, lhs, rhs, problem in (
            (
                "sliding_window_tokens",
                self.sliding_window_tokens > 0,
                n_sw > 0,
                f"must be > 0 iff n_sliding_window_layers ({n_sw}) > 0",
            ),
            (
                "gdn",
                self.gdn is not None,
                n_gdn > 0,
                f"must be set iff n_linear_attention_layers ({n_gdn}) > 0",
            ),
            (
                "n_dense_ffn_layers",
                n_dense == n_layers,
                self.moe is None,
                f"must equal n_layers ({n_layers}) iff moe is null (moe is {moe})",
            ),
            (
                "dense_ffn_size",
                self.dense_ffn_size > 0,
                n_dense > 0,
                f"must be > 0 iff n_dense_ffn_layers ({n_dense}) > 0",
            ),
        ):
            if lhs != rhs:
                raise ConfigError(f"model.{field}", f"{problem}, got {getattr(self, field)!r}")
        if self.mla is not None and n_sw:
            raise ConfigError("model.mla", "cannot be combined with sliding-window layers")

    # ------------------------------------------------------------------ parameter counts
    @property
    def n_moe_layers(self) -> int:
        """Layers with an MoE FFN (0 for dense models)."""
        return self.n_layers - self.n_dense_ffn_layers

    @property
    def embedding_params(self) -> float:
        """Input embedding table, parameters."""
        return float(self.vocab_size * self.hidden_size)

    @property
    def lm_head_params(self) -> float:
        """Output projection, parameters (0 if tied to the embedding)."""
        return 0.0 if self.tie_word_embeddings else self.embedding_params

    def _attention_layer_params(self) -> int:
        """One full or sliding attention layer: projections, biases, sinks, q/k norms."""
        h = self.hidden_size
        if self.mla is not None:
            m, nh = self.mla, self.n_heads
            qk = m.qk_nope_head_dim + m.qk_rope_head_dim
            r = m.q_lora_rank  # 0: plain q_proj; else q_a_proj + q_a_layernorm + q_b_proj
            q = h * nh * qk if r == 0 else h * r + r * (1 + nh * qk)
            kv = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank  # + kv_a_layernorm
            kv += m.kv_lora_rank * nh * (m.qk_nope_head_dim + m.v_head_dim)
            return q + kv + nh * m.v_head_dim * h
        q_out = self.n_heads * self.head_dim * (2 if self.attention_output_gate else 1)
        kv_out = 2 * self.n_kv_heads * self.head_dim
        n = h * (q_out + kv_out) + self.n_heads * self.head_dim * h
        n += (q_out + kv_out) * self.qkv_bias + h * self.attention_output_bias
        n += self.n_heads * self.attention_sinks + 2 * self.head_dim * self.qk_norm
        return n

    def _gdn_layer_params(self) -> int:
        """One Gated DeltaNet layer: in/out projections, conv, decay (A_log, dt_bias), norm."""
        if self.gdn is None:
            return 0
        g, h = self.gdn, self.hidden_size
        key_dim, value_dim = g.n_qk_heads * g.head_k_dim, g.n_v_heads * g.head_v_dim
        in_proj = h * (2 * key_dim + 2 * value_dim + 2 * g.n_v_heads)  # q,k,v,z + b,a
        conv = (2 * key_dim + value_dim) * g.conv_kernel
        return in_proj + conv + 2 * g.n_v_heads + g.head_v_dim + value_dim * h

    @property
    def params_per_routed_expert(self) -> float:
        """One routed expert in one layer (SwiGLU, plus biases if any), parameters."""
        if self.moe is None:
            return 0.0
        f, h = self.moe.expert_ffn_size, self.hidden_size
        return float(3 * h * f + (2 * f + h) * self.moe.expert_bias)

    @property
    def routed_expert_params(self) -> float:
        """All routed experts over all MoE layers, parameters."""
        n_routed = self.moe.n_routed_experts if self.moe is not None else 0
        return self.n_moe_layers * n_routed * self.params_per_routed_expert

    def _moe_layer_fixed_params(self) -> int:
        """Per MoE layer, everything but routed experts: router, shared experts, shared gate."""
        if self.moe is None:
            return 0
        m, h = self.moe, self.hidden_size
        router = h * m.n_routed_experts + m.n_routed_experts * m.router_bias
        shared = m.n_shared_experts * 3 * h * m.shared_expert_ffn_size
        return router + shared + h * m.shared_expert_gate

    def _non_expert_params(self) -> float:
        """Every parameter except routed experts (embedding and lm_head included)."""
        h = self.hidden_size
        n_attn = self.n_full_attention_layers + self.n_sliding_window_layers
        n = n_attn * self._attention_layer_params()
        n += self.n_linear_attention_layers * self._gdn_layer_params()
        n += self.n_layers * 2 * h + h  # input/post-attention RMSNorms + final norm
        n += self.n_dense_ffn_layers * 3 * h * self.dense_ffn_size
        n += self.n_moe_layers * self._moe_layer_fixed_params()
        return n + self.embedding_params + self.lm_head_params

    @property
    def total_params(self) -> float:
        """Every weight of the text decoder (no MTP, no vision tower), parameters."""
        return self._non_expert_params() + self.routed_expert_params

    @property
    def active_params(self) -> float:
        """Parameters one token uses, incl. input embedding table and lm_head (models.md C1)."""
        k = self.moe.n_active_experts if self.moe is not None else 0
        return self._non_expert_params() + self.n_moe_layers * k * self.params_per_routed_expert

    @property
    def always_read_params(self) -> float:
        """Parameters a decode step reads whatever the batch, parameters.

        Total minus routed experts minus the untied input embedding table (only its rows are
        gathered). Includes attention, norms, routers, shared experts, dense FFNs and lm_head.
        """
        untied_embedding = 0.0 if self.tie_word_embeddings else self.embedding_params
        return self.total_params - self.routed_expert_params - untied_embedding

    @property
    def linear_flops_per_token(self) -> float:
        """Matmul FLOPs of one token: ``2 * (active - input embedding)``, lm_head included.

        With tied embeddings the lm_head matmul reuses the embedding matrix, so it is added back.
        """
        tied_head = self.embedding_params if self.tie_word_embeddings else 0.0
        return 2.0 * (self.active_params - self.embedding_params + tied_head)

    @property
    def moe_active_fraction(self) -> float:
        """Fraction of routed experts one token uses (``n_active / n_routed``; 1.0 if dense)."""
        return 1.0 if self.moe is None else self.moe.n_active_experts / self.moe.n_routed_experts

    def weight_bytes(self, bytes_per_weight: float) -> float:
        """Resident weight footprint, bytes: ``total_params * bytes_per_weight``."""
        require_positive("bytes_per_weight", bytes_per_weight)
        return self.total_params * bytes_per_weight

    # ------------------------------------------------------------------ KV cache and state
    def _sliding_bytes_per_token(self, bytes_per_element: float) -> float:
        per_layer = 2.0 * self.n_kv_heads * self.head_dim * bytes_per_element
        return self.n_sliding_window_layers * per_layer

    def _gdn_state_bytes(self, bytes_per_element: float) -> float:
        if self.gdn is None:
            return 0.0
        g, n = self.gdn, self.n_linear_attention_layers
        recurrent = n * g.n_v_heads * g.head_k_dim * g.head_v_dim * g.state_bytes_per_element
        conv_channels = 2 * g.n_qk_heads * g.head_k_dim + g.n_v_heads * g.head_v_dim
        return recurrent + n * conv_channels * (g.conv_kernel - 1) * bytes_per_element

    def kv_bytes_per_token(self, bytes_per_element: float = 2.0) -> float:
        """KV cache growing with context, bytes per token (full-attention layers only).

        GQA: ``2 * n_full * n_kv_heads * head_dim * b``; MLA: ``n_full * (kv_lora_rank +
        qk_rope_head_dim) * b`` (the latent and the shared RoPE key).
        """
        require_positive("bytes_per_element", bytes_per_element)
        if self.mla is not None:
            per_layer = self.mla.kv_lora_rank + self.mla.qk_rope_head_dim
        else:
            per_layer = 2 * self.n_kv_heads * self.head_dim
        return float(self.n_full_attention_layers * per_layer * bytes_per_element)

    def fixed_state_bytes_per_sequence(self, bytes_per_element: float = 2.0) -> float:
        """Per-sequence bytes that stop growing with context, at full sliding windows.

        GDN recurrent state ``n_gdn * n_v * d_k * d_v * state_bytes_per_element`` plus conv
        state ``n_gdn * (2 n_qk d_k + n_v d_v) * (kernel - 1) * b``, plus sliding-window layers
        ``n_sw * 2 * n_kv * head_dim * window * b``.
        """
        require_positive("bytes_per_element", bytes_per_element)
        window = self._sliding_bytes_per_token(bytes_per_element) * self.sliding_window_tokens
        return self._gdn_state_bytes(bytes_per_element) + window

    def kv_bytes_for_context(
        self, context_tokens: Tokens, bytes_per_element: float = 2.0
    ) -> Tokens:
        """Cache bytes of one sequence holding ``context_tokens`` tokens (float or array).

        Full layers grow linearly; sliding layers hold ``min(context, window)`` tokens; GDN
        state is constant.
        """
        _require_tokens("context_tokens", context_tokens)
        window = np.minimum(context_tokens, self.sliding_window_tokens)
        sliding = self._sliding_bytes_per_token(bytes_per_element) * window
        full = self.kv_bytes_per_token(bytes_per_element) * context_tokens
        total: Tokens = full + sliding + self._gdn_state_bytes(bytes_per_element)
        return total

    # ------------------------------------------------------------------ attention FLOPs
    def _gdn_flops_per_token(self) -> float:
        """GDN FLOPs per token, all linear layers: ``n_gdn * 4 * n_v * d_k * d_v``.

        Per value head the delta rule reads and updates a ``d_k x d_v`` state (rank-1 update,
        ~2 d_k d_v) and reads it out with the query (~2 d_k d_v). The chunked prefill form has
        the same leading term per token (its intra-chunk terms are ignored).
        """
        if self.gdn is None:
            return 0.0
        g = self.gdn
        return 4.0 * self.n_linear_attention_layers * g.n_v_heads * g.head_k_dim * g.head_v_dim

    def decode_attention_flops(self, context_tokens: Tokens) -> Tokens:
        """Attention FLOPs (scores + weighted values) for ONE new token over a cache.

        Per layer: GQA full ``4 * n_heads * head_dim * context``; sliding the same with
        ``min(context, window)``; MLA (weight-absorbed decode) ``2 * n_heads * (kv_lora_rank +
        qk_rope_head_dim) * context + 2 * n_heads * kv_lora_rank * context``; GDN constant (see
        :meth:`_gdn_flops_per_token`). Projections are in :attr:`linear_flops_per_token`.

        Args:
            context_tokens: Cached tokens attended to (float or numpy array).
        """
        _require_tokens("context_tokens", context_tokens)
        if self.mla is not None:
            m = self.mla
            per_ctx = 2.0 * self.n_heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim)
        else:
            per_ctx = 4.0 * self.n_heads * self.head_dim
        full = self.n_full_attention_layers * per_ctx * context_tokens
        window = np.minimum(context_tokens, self.sliding_window_tokens)
        sliding = self.n_sliding_window_layers * 4.0 * self.n_heads * self.head_dim * window
        total: Tokens = full + sliding + self._gdn_flops_per_token()
        return total

    def prefill_attention_flops(
        self, prompt_tokens: Tokens, cached_prefix_tokens: Tokens | float = 0.0
    ) -> Tokens:
        """Causal attention FLOPs to prefill ``prompt_tokens`` new tokens after a cached prefix.

        New token ``i`` (1-based) attends to ``cached + i`` tokens, so full layers see
        ``S = P * cached + P * (P + 1) / 2`` token pairs: GQA ``4 * n_heads * head_dim * S``; MLA
        (non-absorbed) ``2 * n_heads * (qk_nope + qk_rope) * S + 2 * n_heads * v_head_dim * S``.
        Sliding layers count ``min(cached + i, window)`` exactly. GDN is linear in P.

        Args:
            prompt_tokens: New tokens P (float or numpy array).
            cached_prefix_tokens: Tokens already in the cache (float or numpy array).
        """
        _require_tokens("prompt_tokens", prompt_tokens)
        _require_tokens("cached_prefix_tokens", cached_prefix_tokens)
        p, c = prompt_tokens, cached_prefix_tokens
        pairs = p * c + p * (p + 1) / 2.0
        if self.mla is not None:
            m = self.mla
            per_pair = 2.0 * self.n_heads * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim)
        else:
            per_pair = 4.0 * self.n_heads * self.head_dim
        total = self.n_full_attention_layers * per_pair * pairs
        if self.n_sliding_window_layers:
            w = self.sliding_window_tokens
            below = np.clip(w - np.asarray(c, dtype=float), 0.0, p)  # tokens whose span < window
            window_pairs = below * c + below * (below + 1) / 2.0 + (p - below) * w
            per_pair_sw = 4.0 * self.n_heads * self.head_dim
            total = total + self.n_sliding_window_layers * per_pair_sw * window_pairs
        return total + self._gdn_flops_per_token() * p

    def prefill_attention_flops_fn(self) -> Callable[[float, float], float]:
        """A scalar closure equal to :meth:`prefill_attention_flops`, coefficients bound once.

        The simulator evaluates it for every prefill chunk; skipping the array handling and
        validation of the general method makes it ~20x cheaper. Tests check the two agree.
        """
        if self.mla is not None:
            m = self.mla
            per_pair = 2.0 * self.n_heads * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim)
        else:
            per_pair = 4.0 * self.n_heads * self.head_dim
        full = self.n_full_attention_layers * per_pair
        sliding = self.n_sliding_window_layers * 4.0 * self.n_heads * self.head_dim
        window = float(self.sliding_window_tokens)
        linear = self._gdn_flops_per_token()

        def prefill_attention_flops(prompt_tokens: float, cached_prefix_tokens: float) -> float:
            p, c = prompt_tokens, cached_prefix_tokens
            total = full * (p * c + p * (p + 1) / 2.0) + linear * p
            if sliding:
                below = window - c
                below = 0.0 if below < 0.0 else (p if below > p else below)
                total += sliding * (below * c + below * (below + 1) / 2.0 + (p - below) * window)
            return total

        return prefill_attention_flops

    # ------------------------------------------------------------------ reporting
    def describe(self) -> dict[str, float | str]:
        """Headline numbers for reports: parameters (units), FLOPs per token, bytes at BF16."""
        keys = "total_params active_params always_read_params routed_expert_params "
        keys += "linear_flops_per_token moe_active_fraction"
        out: dict[str, float | str] = {"name": self.name}
        out.update({k: getattr(self, k) for k in keys.split()})
        out["kv_bytes_per_token_bf16"] = self.kv_bytes_per_token(2.0)
        out["fixed_state_bytes_per_sequence_bf16"] = self.fixed_state_bytes_per_sequence(2.0)
        return out
