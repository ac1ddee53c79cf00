"""The cost model against hand-computed rooflines and physical bounds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from planner import config
from planner.perf.efficiency import EfficiencyFactors
from planner.perf.gpu import GpuReplica, Parallelism, activation_bytes_per_token, busiest_share
from planner.perf.lpu import LpuReplica
from planner.perf.replica import at_concurrency, build_replica, roofline_summary, serving_point
from planner.specs.errors import ConfigError
from planner.specs.hardware import System
from planner.specs.model import Model
from tests.conftest import hardware_names, load_efficiency, load_model, load_system, model_names

ROOT = Path(__file__).resolve().parents[1]

UNIT = EfficiencyFactors(
    family="nvidia_gpu",
    compute_efficiency=1.0,
    memory_efficiency=1.0,
    comm_efficiency=1.0,
    step_overhead_s=0.0,
    kv_memory_fraction=1.0,
    expert_memory_efficiency=1.0,
)


def toy_system(memory_bytes: float = 100e9) -> System:
    """A made-up GPU with round numbers: 1 TB/s, 100 TFLOP/s bf16, 100 GB."""
    return config.system(
        {
            "name": "toy",
            "accelerators_per_system": 8,
            "scale_up_domain_size": 8,
            "system_power_kw": 8.0,
            "system_capex_usd": 1.0e6,
            "accelerator": {
                "name": "toy",
                "kind": "gpu",
                "family": "nvidia_gpu",
                "memory_bytes": memory_bytes,
                "memory_bandwidth_bytes_per_s": 1.0e12,
                "peak_flops_per_s": {"bf16": 100.0e12},
                "idle_power_w": 100.0,
                "max_power_w": 1000.0,
                "scale_up_bandwidth_bytes_per_s": 100.0e9,
                "scale_up_latency_s": 1.0e-6,
                "unit_price_usd": 10000.0,
            },
        }
    )


def toy_model(moe: bool = False) -> Model:
    """A 2-layer toy transformer, small enough to count by hand."""
    data = {
        "name": "toy",
        "n_layers": 2,
        "hidden_size": 64,
        "vocab_size": 100,
        "tie_word_embeddings": False,
        "n_heads": 4,
        "n_kv_heads": 2,
        "head_dim": 16,
        "n_full_attention_layers": 2,
        "n_sliding_window_layers": 0,
        "sliding_window_tokens": 0,
        "n_linear_attention_layers": 0,
        "n_dense_ffn_layers": 2,
        "dense_ffn_size": 128,
    }
    if moe:
        data.update(
            {
                "n_dense_ffn_layers": 0,
                "dense_ffn_size": 0,
                "moe": {
                    "n_routed_experts": 8,
                    "n_active_experts": 2,
                    "n_shared_experts": 0,
                    "expert_ffn_size": 32,
                    "shared_expert_ffn_size": 0,
                },
            }
        )
    return config.model(data)


def test_dense_step_is_the_hand_computed_sum_of_rooflines() -> None:
    model = toy_model()
    replica = GpuReplica(model, toy_system(), "bf16", "bf16", Parallelism(1, 1), UNIT)
    batch, context = 4, 10
    parts = replica.step_components_s(batch, batch * context)
    # Always-read weights: everything but the input embedding table, at 2 bytes each.
    weight_bytes = (model.total_params - model.embedding_params) * 2
    dense_flops = model.linear_flops_per_token * batch
    assert parts["dense_gemm"] == pytest.approx(max(dense_flops / 100e12, weight_bytes / 1e12))
    kv_bytes = model.kv_bytes_per_token(2.0) * batch * context
    attention_flops = 4 * 4 * 16 * context * 2 * batch  # 4 * heads * head_dim * ctx, 2 layers
    assert parts["attention"] == pytest.approx(max(attention_flops / 100e12, kv_bytes / 1e12))
    assert parts["activations"] == pytest.approx(activation_bytes_per_token(model) * batch / 1e12)
    assert parts["expert_gemm"] == 0.0
    assert parts["comm"] == 0.0
    assert replica.step_time_s(batch, batch * context) == pytest.approx(sum(parts.values()))


def test_expert_coverage_follows_the_balls_in_bins_law() -> None:
    replica = GpuReplica(toy_model(moe=True), toy_system(), "bf16", "bf16", Parallelism(1, 1), UNIT)
    experts, active = 8, 2
    assert replica.experts_touched_per_layer(1) == pytest.approx(active)
    for tokens in (2, 5, 40):
        expected = experts * (1 - (1 - active / experts) ** tokens)
        assert replica.experts_touched_per_layer(tokens) == pytest.approx(expected)
    assert replica.experts_touched_per_layer(10_000) == pytest.approx(experts)


def test_small_moe_batches_read_fewer_expert_bytes_than_large_ones() -> None:
    replica = GpuReplica(toy_model(moe=True), toy_system(), "bf16", "bf16", Parallelism(1, 1), UNIT)
    one = replica.step_components_s(1, 10)["expert_gemm"]
    many = replica.step_components_s(64, 640)["expert_gemm"]
    assert one < many <= one * 8 / 2 + 1e-12  # at most all 8 experts vs the 2 a token needs


def test_tensor_parallel_all_reduce_cost() -> None:
    model = toy_model()
    replica = GpuReplica(model, toy_system(), "bf16", "bf16", Parallelism(2, 1), UNIT)
    tokens = 8
    message = tokens * 64 * 2.0
    ring = 2 * (2 - 1) / 2 * message / 100e9
    assert replica.step_components_s(tokens, tokens * 5)["comm"] == pytest.approx(
        2 * model.n_layers * (1e-6 + ring)
    )


@pytest.mark.parametrize("model_name", model_names())
@pytest.mark.parametrize("hardware_name", hardware_names())
def test_batch_one_decode_never_beats_the_bandwidth_bound(
    model_name: str, hardware_name: str
) -> None:
    """Batch-1 tokens/s <= memory bandwidth / bytes read per token, on every pairing that fits."""
    model, system = load_model(model_name), load_system(hardware_name)
    accel = system.accelerator
    efficiency = load_efficiency(accel.family)
    precision = "fp8" if accel.supports("fp8") else accel.precisions[0]
    mappings = (
        [(1, 1, False)]
        if accel.kind == "lpu"
        else [
            (8, 1, False),
            (8, 8, True),
            (8, 8, False),
            (4, 1, False),
            (2, 1, False),
            (1, 1, False),
        ]
    )
    checked = 0
    for tp, ep, dpa in mappings:
        try:
            replica = build_replica(
                model, system, efficiency, precision=precision, tp=tp, ep=ep, dp_attention=dpa
            )
            replica.require_fit(4096)
        except ConfigError:
            continue
        context = 2048.0
        bytes_per_token = replica.bytes_read_per_token_at_batch_1(context)
        if accel.kind == "gpu":
            bound = accel.memory_bandwidth_bytes_per_s * replica.accelerators / bytes_per_token
        else:  # the chain streams one chip at a time
            bound = accel.memory_bandwidth_bytes_per_s / bytes_per_token
        assert replica.decode_tokens_per_s_per_user(context) <= bound
        checked += 1
    if accel.kind == "gpu" and system.scale_up_domain_size >= 8 and model.total_params < 600e9:
        assert checked > 0, "no mapping fits: the sanity check would be vacuous"


def test_seventy_b_at_int8_needs_at_least_305_lpu_v1_chips() -> None:
    replica = build_replica(
        load_model("llama3_70b"),
        load_system("groq_lpu_v1"),
        load_efficiency("groq_lpu"),
        precision="int8",
    )
    assert isinstance(replica, LpuReplica)
    assert replica.min_chips_for_weights >= 305
    assert replica.accelerators >= replica.min_chips_for_weights
    assert replica.accelerators % 72 == 0  # deployed in whole 72-chip racks


def test_fp4_is_refused_on_hardware_without_it() -> None:
    with pytest.raises(ConfigError) as error:
        build_replica(
            load_model("llama3_70b"),
            load_system("h100"),
            load_efficiency("nvidia_gpu"),
            precision="fp4",
            tp=8,
        )
    assert error.value.field == "precision"
    assert "bf16" in error.value.problem and "fp8" in error.value.problem


def test_fp4_is_accepted_on_blackwell() -> None:
    replica = build_replica(
        load_model("llama3_70b"),
        load_system("b200"),
        load_efficiency("nvidia_gpu"),
        precision="fp4",
        tp=1,
    )
    assert replica.weight_bytes == pytest.approx(load_model("llama3_70b").total_params * 0.5625)


def test_a_model_too_large_for_the_replica_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        build_replica(
            load_model("llama3_70b"),
            load_system("h100"),
            load_efficiency("nvidia_gpu"),
            precision="bf16",
            tp=1,
        )
    assert error.value.field == "model"


def test_mapping_larger_than_the_scale_up_domain_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        build_replica(
            load_model("qwen3_235b_a22b"),
            load_system("h200"),
            load_efficiency("nvidia_gpu"),
            precision="fp8",
            tp=16,
            ep=8,
        )
    assert error.value.field == "tp"


def test_the_old_tp1_ep8_form_is_refused_with_the_new_spelling() -> None:
    with pytest.raises(ConfigError) as error:
        build_replica(
            load_model("qwen3_235b_a22b"),
            load_system("h200"),
            load_efficiency("nvidia_gpu"),
            precision="fp8",
            tp=1,
            ep=8,
        )
    assert error.value.field == "ep"
    assert "tp=8 ep=8 dp_attention=true" in error.value.problem
    assert "\n" not in str(error.value)


def test_ep_must_divide_tp() -> None:
    with pytest.raises(ConfigError) as error:
        Parallelism(8, 3)
    assert error.value.field == "ep"


def test_expert_parallelism_on_a_dense_model_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        build_replica(
            load_model("llama3_70b"),
            load_system("h200"),
            load_efficiency("nvidia_gpu"),
            precision="fp8",
            ep=2,
        )
    assert error.value.field == "ep"


def test_max_batch_falls_and_step_time_rises_with_context_and_batch() -> None:
    replica = build_replica(
        load_model("qwen35_397b_a17b"),
        load_system("gb200_nvl72"),
        load_efficiency("nvidia_gpu"),
        precision="fp8",
        tp=8,
        ep=8,
        dp_attention=True,
    )
    batches = [replica.max_batch(c) for c in (1_000, 8_000, 32_000, 128_000)]
    assert batches == sorted(batches, reverse=True) and batches[-1] >= 1
    steps = [replica.step_time_s(b, b * 4096.0) for b in (1, 8, 64, 512)]
    assert steps == sorted(steps)


def test_hybrid_attention_grows_step_time_less_with_context_than_full_attention() -> None:
    """Gated DeltaNet layers hold fixed state, so long context costs Qwen3.5 less than Qwen3."""
    efficiency = load_efficiency("nvidia_gpu")
    system = load_system("b200")
    hybrid = build_replica(
        load_model("qwen35_397b_a17b"),
        system,
        efficiency,
        precision="fp8",
        tp=8,
        ep=8,
        dp_attention=True,
    )
    full = build_replica(
        load_model("qwen3_235b_a22b"),
        system,
        efficiency,
        precision="fp8",
        tp=8,
        ep=8,
        dp_attention=True,
    )

    def growth(replica: GpuReplica | LpuReplica) -> float:
        return replica.step_time_s(16, 16 * 256_000.0) / replica.step_time_s(16, 16 * 8_000.0)

    assert growth(hybrid) < growth(full)


def test_tpot_limit_never_raises_throughput() -> None:
    replica = build_replica(
        load_model("llama3_70b"),
        load_system("h200"),
        load_efficiency("nvidia_gpu"),
        precision="fp8",
        tp=2,
    )
    free = serving_point(replica, 1024, 1024)
    limited = serving_point(replica, 1024, 1024, tpot_limit_s=0.03)
    assert limited.output_tokens_per_s <= free.output_tokens_per_s
    assert limited.step_s <= 0.03


def test_roofline_summary_has_the_public_keys() -> None:
    replica = build_replica(
        load_model("gpt_oss_120b"),
        load_system("b200"),
        load_efficiency("nvidia_gpu"),
        precision="fp8",
    )
    summary = roofline_summary(replica, isl=1024, osl=1024, tpot_limit_s=0.05)
    for key in (
        "accelerators_per_replica",
        "weight_bytes",
        "kv_bytes_per_token",
        "max_batch",
        "decode_tokens_per_s_per_user",
        "max_output_tokens_per_s_per_accelerator",
        "max_output_tokens_per_s_per_accelerator_at_tpot",
    ):
        assert key in summary
        assert math.isfinite(summary[key]) and summary[key] > 0


@pytest.mark.parametrize("model_name", model_names())
def test_fast_prefill_closure_equals_the_general_method(model_name: str) -> None:
    """The simulator's prefill-attention closure is the model's formula, not an approximation.

    (The step function is one function for both; tests/test_perf_step_function.py.)
    """
    import numpy as np

    model = load_model(model_name)
    prefill = model.prefill_attention_flops_fn()
    rng = np.random.default_rng(0)
    for _ in range(200):
        p, c = float(rng.integers(1, 40_000)), float(rng.integers(0, 200_000))
        assert prefill(p, c) == pytest.approx(float(model.prefill_attention_flops(p, c)), rel=1e-12)


# ------------------------------------------------------------------ MoE physics (issue 10 item 4)
@pytest.mark.parametrize(("balls", "bins"), [(8, 8), (32, 8), (512, 8), (2048, 4), (100, 2)])
def test_busiest_rank_matches_a_simulated_multinomial_maximum(balls: int, bins: int) -> None:
    """The Gaussian max-load law against 20,000 sampled routings (uniform balls in bins)."""
    import numpy as np

    rng = np.random.default_rng(1)
    simulated = rng.multinomial(balls, [1.0 / bins] * bins, size=20_000).max(axis=1).mean()
    assert busiest_share(balls, bins) == pytest.approx(simulated, rel=0.12)
    assert busiest_share(balls, 1) == balls


def test_expert_parallel_imbalance_makes_small_batches_slower_than_tensor_parallel_experts() -> (
    None
):
    """At 4 sequences EP8's busiest rank reads ~2x its share of experts; TP8 experts read 1/8 each.

    This is why TensorRT-LLM DEP8 (13.8 ms) is slower than SGLang TP8 (11.6 ms) at concurrency 4
    on H200 in calibration.md sec. 7, and why the gap closes at concurrency 64.
    """
    model, system = load_model("deepseek_r1"), load_system("h200")
    ep8 = GpuReplica(model, system, "fp8", "bf16", Parallelism(8, 8), UNIT)
    tp8 = GpuReplica(model, system, "fp8", "bf16", Parallelism(8, 1), UNIT)
    small_ep, small_tp = (r.step_components_s(4, 4 * 1000)["expert_gemm"] for r in (ep8, tp8))
    large_ep, large_tp = (r.step_components_s(256, 256 * 1000)["expert_gemm"] for r in (ep8, tp8))
    assert small_ep > 1.5 * small_tp
    assert large_ep < 1.2 * large_tp


def test_grouped_gemm_efficiency_follows_rows_per_expert() -> None:
    """Compute-bound expert time scales by (m + m_half) / m with m tokens per expert."""
    model = toy_model(moe=True)
    half = UNIT.replace(expert_gemm_half_tokens=512.0)
    plain = GpuReplica(model, toy_system(), "bf16", "bf16", Parallelism(1, 1), UNIT)
    slow = GpuReplica(model, toy_system(), "bf16", "bf16", Parallelism(1, 1), half)
    tokens = 4096  # 8,192 assignments over the 8 experts: m = 1,024 rows each, compute-bound
    expert_flops = 2 * model.n_moe_layers * 2 * model.params_per_routed_expert * tokens
    plain_s = plain.step_components_s(tokens, tokens)["expert_gemm"]
    assert plain_s == pytest.approx(expert_flops / 100e12)
    slow_s = slow.step_components_s(tokens, tokens)["expert_gemm"]
    assert slow_s / plain_s == pytest.approx((1024 + 512) / 1024)


def test_mla_latent_is_replicated_under_tensor_parallel_attention() -> None:
    """MLA's KV latent is shared by all heads.

    TP8 attention keeps a whole copy per GPU, DP attention keeps each sequence on one GPU, so DP
    attention holds 8x the sequences.
    """
    model, system = load_model("deepseek_r1"), load_system("h200")
    tp8 = GpuReplica(model, system, "fp8", "fp8", Parallelism(8, 8), UNIT)
    dep8 = GpuReplica(model, system, "fp8", "fp8", Parallelism(8, 8, True), UNIT)
    assert tp8.sequence_bytes_per_accelerator(1000) == pytest.approx(
        model.kv_bytes_per_token(1.0) * 1000
    )
    per_gpu_ratio = tp8.kv_capacity_bytes_per_accelerator / dep8.kv_capacity_bytes_per_accelerator
    assert dep8.max_batch(2000) == pytest.approx(8 * tp8.max_batch(2000) / per_gpu_ratio, rel=0.01)


def test_overhead_scales_with_layers() -> None:
    eff = UNIT.replace(layer_overhead_s=1e-4)
    shallow = GpuReplica(toy_model(), toy_system(), "bf16", "bf16", Parallelism(1, 1), eff)
    assert shallow.step_components_s(1, 10)["overhead"] == pytest.approx(2 * 1e-4)


# ------------------------------------------------------- closed-loop concurrency (item 1, static)
def test_at_concurrency_obeys_littles_law_and_the_tradeoff() -> None:
    replica = build_replica(
        load_model("deepseek_r1"),
        load_system("h200"),
        load_efficiency("nvidia_gpu", "sglang"),
        precision="fp8",
        tp=8,
    )
    points = [at_concurrency(replica, c, 922, 922, 0.07) for c in (1, 4, 16, 64, 256)]
    for p in points:
        cycle_s = p.ttft_s + (922 - 1) * p.tpot_s
        # Little's law: C users, each finishing osl tokens per cycle.
        assert p.output_tokens_per_s_per_accelerator * 8 == pytest.approx(
            p.concurrency * 922 / cycle_s
        )
        assert p.tokens_per_s_per_user == pytest.approx(1.0 / p.tpot_s)
        assert 0 < p.batch <= p.concurrency
    per_gpu = [p.output_tokens_per_s_per_accelerator for p in points]
    per_user = [p.tokens_per_s_per_user for p in points]
    assert per_gpu == sorted(per_gpu) and per_user == sorted(per_user, reverse=True)


def test_dp_attention_prefill_runs_on_one_rank() -> None:
    """With attention data-parallel one prompt's attention and dense work sit on one GPU."""
    model, system = load_model("deepseek_r1"), load_system("h200")
    eff = load_efficiency("nvidia_gpu")
    dep8 = build_replica(model, system, eff, precision="fp8", tp=8, ep=8, dp_attention=True)
    tep8 = build_replica(model, system, eff, precision="fp8", tp=8, ep=8, dp_attention=False)
    assert dep8.prefill_time_s(8000) > 2 * tep8.prefill_time_s(8000)


def test_stack_profiles_load_and_borrow() -> None:
    from planner.config import efficiency as load

    assert load("nvidia_gpu").stack == "trtllm"
    assert load("nvidia_gpu", "sglang").stack == "sglang"
    assert load("nvidia_gpu", "vllm").stack == "vllm"
    assert load("amd_gpu").stack == "sglang" and load("amd_gpu").calibrated
    borrowed = load("amd_gpu", "vllm")
    assert borrowed.stack == "sglang" and not borrowed.calibrated
    with pytest.raises(ConfigError) as error:
        load("amd_gpu", "trtllm")
    assert error.value.field == "stack"
    with pytest.raises(ConfigError) as error:
        load("nvidia_gpu", "tgi")
    assert error.value.field == "stack"


def test_a_stack_that_keeps_windowed_kv_for_the_whole_context_fits_fewer_sequences() -> None:
    """``windowed_kv_full_context`` changes what a sequence holds, not what a step reads.

    gpt-oss-120b has 18 sliding-window layers (128 tokens) of 8 KV heads x 64 dims: at FP8 they
    add 2 x 8 x 64 = 1,024 bytes per layer per token beyond the window when the stack keeps them
    for the whole context (TensorRT-LLM's default), and nothing when it frees them.
    """
    model, system = load_model("gpt_oss_120b"), load_system("h200")
    freed = UNIT.replace(windowed_kv_full_context=False)
    kept = UNIT.replace(windowed_kv_full_context=True)
    one = Parallelism(1, 1)
    freeing = GpuReplica(model, system, "fp8", "fp8", one, freed)
    keeping = GpuReplica(model, system, "fp8", "fp8", one, kept)
    context = 4096.0
    extra = 18 * 2 * 8 * 64 * 1.0 * (context - 128)
    assert keeping.kv_bytes_for_context(context) - freeing.kv_bytes_for_context(context) == (
        pytest.approx(extra)
    )
    assert keeping.kv_bytes_for_context(100.0) == pytest.approx(
        freeing.kv_bytes_for_context(100.0)
    )  # inside the window nothing differs
    assert keeping.max_batch(context) < freeing.max_batch(context)
    # The step reads the window either way: same time for the same batch and contexts.
    assert keeping.step_time_s(64, 64 * context) == freeing.step_time_s(64, 64 * context)
    # The KV a prefilled sequence ships (disaggregated serving) is what it holds.
    assert keeping.kv_bytes_per_token * context + keeping.state_bytes_per_sequence == (
        pytest.approx(keeping.sequence_bytes(context))
    )
    assert freeing.kv_bytes_per_token * context + freeing.state_bytes_per_sequence == (
        pytest.approx(freeing.sequence_bytes(context))
    )


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_windowed_kv_full_context_must_be_a_boolean(value: object) -> None:
    base = yaml.safe_load((ROOT / "conf" / "efficiency" / "nvidia_gpu.yaml").read_text())
    assert base["windowed_kv_full_context"] is True
    with pytest.raises(ConfigError) as error:
        EfficiencyFactors.from_dict({**base, "windowed_kv_full_context": value})
    assert error.value.field == "efficiency.windowed_kv_full_context"
    assert "true or false" in str(error.value)
