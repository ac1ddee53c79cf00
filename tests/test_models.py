"""planner.specs.model: conf/model configs against models.md, FLOP formulas, validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from planner import config
from planner.specs.errors import ConfigError
from planner.specs.model import Model

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "model"
MIB = 2**20

EXPECTED_NAMES = {
    "llama3_70b",
    "mixtral_8x7b",
    "qwen3_235b_a22b",
    "qwen3_next_80b_a3b",
    "qwen35_35b_a3b",
    "qwen35_397b_a17b",
    "glm45_air",
    "deepseek_v3",
    "deepseek_r1",
    "gpt_oss_120b",
    "llama2_70b",
    "llama2_7b",
    "llama31_405b",
    "llama4_maverick",
    # The seeds' models (tests/test_models_catalog.py checks them against their sources).
    "mistral_small_4",
    "glm45v",
    "minimax_m25",
    "qwen35_9b",
    "grok_420_class",
}

# Reference figures from /work/shared/reference/models.md.
#   total_b / active_b: C1 "computed" column, billions of parameters (text decoder only, no MTP,
#     no vision tower; active incl. input embedding + lm_head). Where C1 gives no computed value
#     the official one is used: DeepSeek-V3 671 / 37 B, gpt-oss-120b total 116.8 B (its active
#     5.7 B is the computed "incl. embedding+unembedding" figure).
#   kv_bytes: C2 "KV bytes/token (BF16)", exact.
#   fixed_mib: C2 "Per-sequence fixed state" at BF16 conv / FP32 GDN state, MiB (None = "—").
#              Qwen: GDN state + conv state (e.g. "180 MiB FP32 + 3.2 MiB"); gpt-oss: 18 sliding
#              layers x 128 tokens = 4.5 MiB.
MODELS_MD: dict[str, tuple[float, float, int, float | None]] = {
    "llama3_70b": (70.6, 70.6, 327_680, None),
    "mixtral_8x7b": (46.7, 12.9, 131_072, None),
    "qwen3_235b_a22b": (235.1, 22.2, 192_512, None),
    "qwen3_next_80b_a3b": (79.7, 3.9, 24_576, 72 + 1.7),
    "qwen35_35b_a3b": (34.7, 3.45, 20_480, 60 + 1.4),
    "qwen35_397b_a17b": (396.3, 17.4, 30_720, 180 + 3.2),
    "glm45_air": (106.9, 13.4, 188_416, None),
    "deepseek_v3": (671.0, 37.0, 70_272, None),
    "deepseek_r1": (671.0, 37.0, 70_272, None),  # R1-0528: the V3 architecture (models.md C1)
    "gpt_oss_120b": (116.8, 5.7, 36_864, 4.5),
}


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((CONF_DIR / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def models() -> dict[str, Model]:
    out = {}
    for path in sorted(CONF_DIR.glob("*.yaml")):
        model = config.model(yaml.safe_load(path.read_text()))
        assert model.name == path.stem
        out[model.name] = model
    return out


def test_every_config_loads(models: dict[str, Model]) -> None:
    assert set(models) == EXPECTED_NAMES


@pytest.mark.parametrize("name", sorted(MODELS_MD))
def test_total_params_match_models_md(models: dict[str, Model], name: str) -> None:
    """total_params within 1 % of models.md C1 (computed column; official where none)."""
    expected_b = MODELS_MD[name][0]
    assert models[name].total_params / 1e9 == pytest.approx(expected_b, rel=0.01)


@pytest.mark.parametrize("name", sorted(MODELS_MD))
def test_active_params_match_models_md(models: dict[str, Model], name: str) -> None:
    """active_params within 2 % of models.md C1.

    Compared: our active_params (attention, norms, router, shared experts, top-k routed experts,
    dense FFNs, plus the whole input embedding table and the lm_head) against the C1 computed
    column, which counts embeddings the same way (Qwen3-Next "3.9 computed incl. 0.6 B
    embeddings", gpt-oss "5.7 B computed incl. embedding+unembedding"). DeepSeek-V3 has no
    computed value in C1, so it is compared with the official 37 B (ours: 37.55 B).
    """
    expected_b = MODELS_MD[name][1]
    assert models[name].active_params / 1e9 == pytest.approx(expected_b, rel=0.02)


@pytest.mark.parametrize("name", sorted(MODELS_MD))
def test_kv_bytes_per_token_exact(models: dict[str, Model], name: str) -> None:
    assert models[name].kv_bytes_per_token(2.0) == MODELS_MD[name][2]
    assert models[name].kv_bytes_per_token(1.0) == MODELS_MD[name][2] / 2  # FP8 KV halves it


@pytest.mark.parametrize("name", sorted(MODELS_MD))
def test_fixed_state_matches_models_md(models: dict[str, Model], name: str) -> None:
    expected_mib = MODELS_MD[name][3]
    got = models[name].fixed_state_bytes_per_sequence(2.0)
    if expected_mib is None:
        assert got == 0.0
    else:
        assert got / MIB == pytest.approx(expected_mib, rel=0.01)


def test_gdn_state_components_exact(models: dict[str, Model]) -> None:
    """models.md C2: Qwen3.5-397B 180 MiB FP32 state (90 MiB at BF16), Qwen3-Next 72 MiB."""
    m = models["qwen35_397b_a17b"]
    conv = 45 * (2 * 16 * 128 + 64 * 128) * 3 * 2
    assert m.fixed_state_bytes_per_sequence() == 180 * MIB + conv
    assert conv / MIB == pytest.approx(3.2, rel=0.02)
    assert models["qwen3_next_80b_a3b"].fixed_state_bytes_per_sequence() == 72 * MIB + 1_769_472


def test_calibration_models_not_in_models_md(models: dict[str, Model]) -> None:
    """Llama-2-70B, Llama-3.1-405B, Llama-4-Maverick: KV by hand, params vs model cards."""
    l2 = models["llama2_70b"]
    per_layer = 2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192
    assert l2.total_params == 80 * per_layer + 8192 + 2 * 32000 * 8192  # 68.98 B
    assert l2.kv_bytes_per_token() == 2 * 80 * 8 * 128 * 2 == 327_680
    l7 = models["llama2_7b"]  # the second Groq LPU row (calibration.md 5b): full MHA
    per_layer_7b = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096
    assert l7.total_params == 32 * per_layer_7b + 4096 + 2 * 32000 * 4096  # 6.74 B
    assert l7.kv_bytes_per_token() == 2 * 32 * 32 * 128 * 2 == 524_288
    l405 = models["llama31_405b"]
    assert l405.total_params / 1e9 == pytest.approx(405, rel=0.01)
    assert l405.kv_bytes_per_token() == 2 * 126 * 8 * 128 * 2
    mav = models["llama4_maverick"]
    assert mav.total_params / 1e9 == pytest.approx(400, rel=0.01)  # model card "~400B"
    assert mav.active_params / 1e9 == pytest.approx(17, rel=0.02)  # "17B active"
    assert mav.n_moe_layers == 24
    assert mav.kv_bytes_per_token() == 2 * 12 * 8 * 128 * 2  # 12 global layers
    chunked = 36 * 2 * 8 * 128 * 2  # bytes per token of the 36 chunked layers
    assert mav.kv_bytes_for_context(1000.0) == 1000 * (49_152 + chunked)
    assert mav.kv_bytes_for_context(100_000.0) == 100_000 * 49_152 + 8192 * chunked


def test_derived_identities(models: dict[str, Model]) -> None:
    m = models["deepseek_v3"]
    assert m.n_moe_layers == 58
    assert m.params_per_routed_expert == 3 * 7168 * 2048
    assert m.routed_expert_params == 58 * 256 * 3 * 7168 * 2048
    assert m.always_read_params == pytest.approx(
        m.total_params - m.routed_expert_params - m.embedding_params
    )
    assert m.lm_head_params == m.embedding_params == 129_280 * 7168
    assert m.linear_flops_per_token == 2 * (m.active_params - m.embedding_params)
    assert m.weight_bytes(1.0) == m.total_params
    assert m.moe_active_fraction == 8 / 256
    dense = models["llama3_70b"]
    assert dense.n_moe_layers == 0 and dense.routed_expert_params == 0
    assert dense.active_params == dense.total_params
    assert dense.moe_active_fraction == 1.0
    gpt = models["gpt_oss_120b"]
    assert gpt.params_per_routed_expert == 3 * 2880 * 2880 + 2 * 2880 + 2880  # + expert biases
    assert set(gpt.describe()) >= {"name", "total_params", "kv_bytes_per_token_bf16"}


# A toy hybrid model whose attention FLOPs are easy to do by hand:
#   1 full GQA layer, 1 sliding layer (window 4), 1 GDN layer; n_heads 2, head_dim 4.
#   GQA per attended token: 4 * n_heads * head_dim = 32 FLOPs. GDN per token: 4 * 2 * 3 * 5 = 120.
TOY: dict[str, Any] = {
    "name": "toy",
    "n_layers": 3,
    "hidden_size": 8,
    "vocab_size": 10,
    "tie_word_embeddings": True,
    "n_heads": 2,
    "n_kv_heads": 1,
    "head_dim": 4,
    "n_full_attention_layers": 1,
    "n_sliding_window_layers": 1,
    "sliding_window_tokens": 4,
    "n_linear_attention_layers": 1,
    "n_dense_ffn_layers": 3,
    "dense_ffn_size": 16,
    "gdn": {
        "n_qk_heads": 1,
        "n_v_heads": 2,
        "head_k_dim": 3,
        "head_v_dim": 5,
        "conv_kernel": 4,
        "state_bytes_per_element": 4,
    },
}

# MLA toy: 1 layer, 2 heads, kv_lora 8, rope 2, nope 3, v 5.
TOY_MLA: dict[str, Any] = {
    **{k: v for k, v in TOY.items() if k != "gdn"},
    "name": "toy_mla",
    "n_layers": 1,
    "n_full_attention_layers": 1,
    "n_sliding_window_layers": 0,
    "sliding_window_tokens": 0,
    "n_linear_attention_layers": 0,
    "n_dense_ffn_layers": 1,
    "mla": {
        "q_lora_rank": 0,
        "kv_lora_rank": 8,
        "qk_nope_head_dim": 3,
        "qk_rope_head_dim": 2,
        "v_head_dim": 5,
    },
}


def test_decode_attention_flops_by_hand() -> None:
    toy = config.model(TOY)
    # context 10: full 32*10 + sliding 32*min(10, 4) + GDN 120
    assert toy.decode_attention_flops(10.0) == 320 + 128 + 120
    assert toy.decode_attention_flops(2.0) == 64 + 64 + 120
    got = toy.decode_attention_flops(np.array([2.0, 10.0]))
    np.testing.assert_array_equal(got, [248.0, 568.0])
    mla = config.model(TOY_MLA)
    # absorbed: 2*2*(8+2)*10 + 2*2*8*10
    assert mla.decode_attention_flops(10.0) == 400 + 320


def test_prefill_attention_flops_by_hand() -> None:
    toy = config.model(TOY)
    # P=6 from empty: full pairs 1+..+6 = 21; sliding spans 1,2,3,4,4,4 = 18; GDN 6 tokens
    assert toy.prefill_attention_flops(6.0) == 32 * 21 + 32 * 18 + 120 * 6
    # P=3 after 2 cached: full spans 3,4,5 = 12; sliding spans 3,4,4 = 11
    assert toy.prefill_attention_flops(3.0, 2.0) == 32 * 12 + 32 * 11 + 120 * 3
    # cached prefix already beyond the window: every sliding span is 4
    assert toy.prefill_attention_flops(2.0, 9.0) == 32 * (10 + 11) + 32 * 8 + 120 * 2
    got = toy.prefill_attention_flops(np.array([6.0, 3.0]), np.array([0.0, 2.0]))
    np.testing.assert_array_equal(got, [1968.0, 1096.0])
    mla = config.model(TOY_MLA)
    # non-absorbed: per pair 2*2*(3+2) + 2*2*5 = 40; P=4 -> 10 pairs
    assert mla.prefill_attention_flops(4.0) == 400


def test_kv_bytes_for_context_by_hand() -> None:
    toy = config.model(TOY)
    per_token = 2 * 1 * 4 * 2  # full layer; the sliding layer holds the same per token
    gdn = 2 * 3 * 5 * 4 + (2 * 1 * 3 + 2 * 5) * 3 * 2  # FP32 state + BF16 conv state
    assert toy.kv_bytes_per_token() == per_token
    assert toy.fixed_state_bytes_per_sequence() == gdn + 4 * per_token
    assert toy.kv_bytes_for_context(10.0) == 10 * per_token + 4 * per_token + gdn
    assert toy.kv_bytes_for_context(2.0) == 2 * per_token + 2 * per_token + gdn
    assert config.model(TOY_MLA).kv_bytes_per_token() == 1 * (8 + 2) * 2


def _mutated(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[leaf] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("bogus_key", 1, "model.bogus_key"),
        ("moe.bogus", 1, "model.moe.bogus"),
        ("hidden_size", -4096, "model.hidden_size"),
        ("hidden_size", 4096.5, "model.hidden_size"),
        ("moe.expert_ffn_size", 0, "model.moe.expert_ffn_size"),
        ("n_full_attention_layers", 95, "model.n_layers"),  # 95 + 0 + 0 != 94
        ("moe.n_active_experts", 200, "model.moe.n_active_experts"),
        ("n_dense_ffn_layers", 94, "model.n_dense_ffn_layers"),  # all dense but moe set
        ("moe", None, "model.n_dense_ffn_layers"),  # dense model must have all dense layers
        ("tie_word_embeddings", "no", "model.tie_word_embeddings"),
        ("sliding_window_tokens", 128, "model.sliding_window_tokens"),  # no sliding layers
        ("n_kv_heads", 5, "model.n_kv_heads"),  # must divide n_heads
    ],
)
def test_validation_names_the_field(path: str, value: Any, field: str) -> None:
    data = _mutated(_load("qwen3_235b_a22b"), path, value)
    with pytest.raises(ConfigError) as err:
        config.model(data)
    assert err.value.field == field


def test_validation_messages() -> None:
    data = _mutated(_load("qwen3_235b_a22b"), "moe.n_active_experts", 200)
    with pytest.raises(ConfigError, match=r"must be <= n_routed_experts \(128\), got 200"):
        config.model(data)
    missing = _load("llama3_70b")
    del missing["vocab_size"]
    with pytest.raises(ConfigError) as err:
        config.model(missing)
    assert err.value.field == "model.vocab_size"


def test_gdn_required_iff_linear_layers() -> None:
    no_gdn = {k: v for k, v in TOY.items() if k != "gdn"}
    with pytest.raises(ConfigError) as err:
        config.model(no_gdn)
    assert err.value.field == "model.gdn"
    extra = _mutated(_load("llama3_70b"), "gdn", TOY["gdn"])
    with pytest.raises(ConfigError) as err:
        config.model(extra)
    assert err.value.field == "model.gdn"


def test_negative_token_counts_rejected() -> None:
    toy = config.model(TOY)
    with pytest.raises(ConfigError):
        toy.decode_attention_flops(-1.0)
    with pytest.raises(ConfigError):
        toy.prefill_attention_flops(np.array([1.0, -2.0]))
