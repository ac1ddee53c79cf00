"""One step-time function per replica kind (issue 9 item 4) and prefill under dp_attention.

Each replica kind has one step function built from a frozen record of precomputed
coefficients; the simulator's ``make_step_time_fn()`` and the static figures evaluate the same
function. The golden values below were produced by the implementation this one replaced (the
general ``step_time_s`` and its hand-inlined closure, commit d5e7bae) with the explicit factors
``FACTORS``: the refactor must reproduce them.
"""

from __future__ import annotations

from functools import partial

import pytest

from planner.perf.efficiency import EfficiencyFactors
from planner.perf.fixed import FixedStepReplica, fixed_step_time_s
from planner.perf.gpu import GpuReplica
from planner.perf.gpu_step import gpu_step_components_s, gpu_step_time_s, prefill_ranks_used
from planner.perf.lpu import LpuReplica, lpu_step_time_s
from planner.perf.replica import build_replica
from tests.conftest import load_efficiency, load_model, load_system

FACTORS = EfficiencyFactors(
    family="nvidia_gpu",
    compute_efficiency=0.65,
    memory_efficiency=0.88,
    comm_efficiency=0.5,
    step_overhead_s=0.0,
    kv_memory_fraction=0.9,
    expert_memory_efficiency=0.92,
    stack="trtllm",
    layer_overhead_s=2e-5,
    moe_layer_overhead_s=1.5e-4,
    attention_compute_efficiency=0.6,
    expert_gemm_half_tokens=60.0,
    request_overhead_s=0.07,
)

Case = tuple[str, str, str, str, int, int, bool]

GOLDEN: list[tuple[Case, tuple[int, float, float, float], float]] = [
    (("deepseek_r1", "h200", "fp8", "fp8", 8, 8, True), (1, 1000.0, 0.0, 0.0), 0.01550469398287079),
    (
        ("deepseek_r1", "h200", "fp8", "fp8", 8, 8, True),
        (64, 192000.0, 0.0, 0.0),
        0.03256444808953782,
    ),
    (
        ("deepseek_r1", "h200", "fp8", "fp8", 8, 8, True),
        (700, 1050000.0, 0.0, 0.0),
        0.039175399165642846,
    ),
    (
        ("deepseek_r1", "h200", "fp8", "bf16", 8, 1, False),
        (1, 1000.0, 0.0, 0.0),
        0.011375402963469478,
    ),
    (
        ("deepseek_r1", "h200", "fp8", "bf16", 8, 1, False),
        (64, 192000.0, 0.0, 0.0),
        0.031015700768427162,
    ),
    (
        ("deepseek_r1", "h200", "fp8", "bf16", 8, 1, False),
        (700, 1050000.0, 0.0, 0.0),
        0.059109308319422155,
    ),
    (
        ("deepseek_r1", "h200", "fp8", "bf16", 8, 1, False),
        (1, 1000.0, 512.0, 5773312655360.0),
        0.0394292766833242,
    ),
    (
        ("deepseek_r1", "h200", "fp8", "bf16", 8, 1, False),
        (64, 192000.0, 4096.0, 82865521950720.0),
        0.12891404316928964,
    ),
    (
        ("deepseek_r1", "h200", "fp8", "bf16", 8, 1, False),
        (0, 0.0, 8192.0, 249568805519360.0),
        0.25334581979702286,
    ),
    (
        ("gpt_oss_120b", "h200", "fp8", "fp8", 1, 1, False),
        (1, 1000.0, 0.0, 0.0),
        0.007305939480237154,
    ),
    (
        ("gpt_oss_120b", "h200", "fp8", "fp8", 1, 1, False),
        (64, 192000.0, 0.0, 0.0),
        0.030105389624765316,
    ),
    (
        ("gpt_oss_120b", "h200", "fp8", "fp8", 1, 1, False),
        (700, 1050000.0, 0.0, 0.0),
        0.040676486537902436,
    ),
    (
        ("gpt_oss_120b", "h200", "fp8", "fp8", 1, 1, False),
        (1, 1000.0, 512.0, 360047443968.0),
        0.035042911002756465,
    ),
    (
        ("gpt_oss_120b", "h200", "fp8", "fp8", 1, 1, False),
        (64, 192000.0, 4096.0, 5045043068928.0),
        0.06575377072957579,
    ),
    (
        ("gpt_oss_120b", "h200", "fp8", "fp8", 1, 1, False),
        (0, 0.0, 8192.0, 15037888462848.0),
        0.11738144239991237,
    ),
    (
        ("llama3_70b", "h100", "fp8", "bf16", 2, 1, False),
        (1, 1000.0, 0.0, 0.0),
        0.013943619973345395,
    ),
    (
        ("llama3_70b", "h100", "fp8", "bf16", 2, 1, False),
        (64, 192000.0, 0.0, 0.0),
        0.02581096244064526,
    ),
    (
        ("llama3_70b", "h100", "fp8", "bf16", 2, 1, False),
        (700, 1050000.0, 0.0, 0.0),
        0.11217066813794906,
    ),
    (
        ("llama3_70b", "h100", "fp8", "bf16", 2, 1, False),
        (1, 1000.0, 512.0, 3028623032320.0),
        0.042548623505101156,
    ),
    (
        ("llama3_70b", "h100", "fp8", "bf16", 2, 1, False),
        (64, 192000.0, 4096.0, 43470437744640.0),
        0.34658711299923256,
    ),
    (
        ("llama3_70b", "h100", "fp8", "bf16", 2, 1, False),
        (0, 0.0, 8192.0, 130921340600320.0),
        0.7178439150764241,
    ),
    (
        ("qwen3_235b_a22b", "h200", "fp8", "bf16", 4, 4, True),
        (1, 1000.0, 0.0, 0.0),
        0.01968673743696304,
    ),
    (
        ("qwen3_235b_a22b", "h200", "fp8", "bf16", 4, 4, True),
        (64, 192000.0, 0.0, 0.0),
        0.03405821913165397,
    ),
    (
        ("qwen3_235b_a22b", "h200", "fp8", "bf16", 4, 4, True),
        (700, 1050000.0, 0.0, 0.0),
        0.05099507482951089,
    ),
]


def gpu(case: Case, factors: EfficiencyFactors = FACTORS) -> GpuReplica:
    """The GPU replica of one golden case."""
    model, hardware, precision, kv_precision, tp, ep, dp_attention = case
    replica = build_replica(
        load_model(model),
        load_system(hardware),
        factors,
        precision=precision,
        kv_precision=kv_precision,
        tp=tp,
        ep=ep,
        dp_attention=dp_attention,
    )
    assert isinstance(replica, GpuReplica)
    return replica


@pytest.mark.parametrize(("case", "inputs", "expected"), GOLDEN)
def test_gpu_step_time_reproduces_the_replaced_implementation(
    case: Case, inputs: tuple[int, float, float, float], expected: float
) -> None:
    """The step function, its bound form and its components give the replaced figures."""
    replica = gpu(case)
    assert replica.step_time_s(*inputs) == pytest.approx(expected, rel=1e-12)
    assert replica.make_step_time_fn()(*inputs) == pytest.approx(expected, rel=1e-12)
    assert sum(replica.step_components_s(*inputs).values()) == pytest.approx(expected, rel=1e-12)


def test_the_simulator_and_the_static_figures_share_one_function() -> None:
    """``make_step_time_fn()`` is the module's step function bound to the frozen record."""
    replica = gpu(GOLDEN[0][0])
    fn = replica.make_step_time_fn()
    assert isinstance(fn, partial)
    assert fn.func is gpu_step_time_s and fn.args == (replica.coefficients,)
    with pytest.raises(AttributeError):
        # the point of the test: mypy rightly refuses assigning a frozen field, which must raise
        replica.coefficients.overhead_s = 0.0  # type: ignore[misc]
    lpu = build_replica(
        load_model("llama2_70b"),
        load_system("groq_lpu_v1"),
        load_efficiency("groq_lpu"),
        precision="int8",
        kv_precision="fp8",
    )
    assert isinstance(lpu, LpuReplica)
    fn = lpu.make_step_time_fn()
    assert isinstance(fn, partial) and fn.func is lpu_step_time_s
    assert fn.args == (lpu.coefficients,)
    assert lpu.layer_time_s(3000.0) * lpu.model.n_layers + lpu.hops_s == lpu.step_time_s(1, 3000.0)
    fixed = FixedStepReplica(load_model("llama2_70b"), load_system("h100"), 0.02)
    fn = fixed.make_step_time_fn()
    assert isinstance(fn, partial) and fn.func is fixed_step_time_s and fn(3, 9.0, 0.0, 0.0) == 0.02


# ------------------------------------------------------------- prefill under dp_attention
DEP8 = ("deepseek_r1", "h200", "fp8", "fp8", 8, 8, True)


@pytest.mark.parametrize("prompts", [1.0, 3.0, 5.5, 8.0, 20.0])
@pytest.mark.parametrize("model", ["deepseek_r1", "gpt_oss_120b", "llama4_maverick"])
def test_prefill_ranks_count_the_prompts_of_a_step(model: str, prompts: float) -> None:
    """``n`` equal whole prompts use ``min(n, 8)`` ranks of an idle DEP8 replica.

    Lengths within and beyond any sliding window; a chunk of one prompt after its prefix uses one.
    """
    replica = gpu((model, "h200", "fp8", "fp8", 8, 8, True))
    m, c = replica.model, replica.coefficients
    for length in (100.0, 1000.0, 9000.0, 60_000.0):
        flops = prompts * float(m.prefill_attention_flops(length, 0.0))
        used = prefill_ranks_used(c, 0, prompts * length, flops)
        assert used == pytest.approx(min(prompts, 8.0), rel=1e-6)
    chunk = float(m.prefill_attention_flops(8192.0, 16_384.0))
    assert prefill_ranks_used(c, 0, 8192.0, chunk) == 1.0


def test_a_lone_prompt_runs_on_one_rank_and_a_loaded_replica_spreads_prefill() -> None:
    """DP attention: a lone 60k-token prompt's attention runs on one GPU.

    Its FLOPs at one GPU's rate, in the simulator's chunked steps as in ``prefill_time_s``; with
    sequences decoding (one or 512), every rank prefills its own prompts and the same tokens
    spread over eight.
    """
    replica = gpu(DEP8)
    m, c = replica.model, replica.coefficients
    prompt = 60_000.0
    flops = float(m.prefill_attention_flops(prompt, 0.0))
    alone = gpu_step_components_s(c, 0, 0.0, prompt, flops)
    assert alone[2] == pytest.approx(flops * c.attention_per_flop_s, rel=1e-12)
    assert replica.prefill_time_s(prompt) == pytest.approx(sum(alone), rel=1e-12)
    step = replica.make_step_time_fn()
    chunked, done = 0.0, 0.0
    while done < prompt:
        size = min(8192.0, prompt - done)
        chunked += step(0, 0.0, size, float(m.prefill_attention_flops(size, done)))
        done += size
    # Chunks pay the per-step costs (MoE-layer overhead, expert reads) once each: 8 chunks.
    assert chunked == pytest.approx(replica.prefill_time_s(prompt), rel=0.1)
    assert chunked >= replica.prefill_time_s(prompt)
    for decoding in (1, 512):
        loaded = gpu_step_components_s(c, decoding, decoding * 2000.0, prompt, flops)
        decode_only = gpu_step_components_s(c, decoding, decoding * 2000.0)
        spread = flops / 8 * c.attention_per_flop_s
        assert loaded[2] - decode_only[2] == pytest.approx(spread, rel=1e-9)
    # Without dp_attention the heads are split over the tp GPUs: no rank choice to make.
    tp8 = gpu(("deepseek_r1", "h200", "fp8", "fp8", 8, 8, False))
    assert tp8.coefficients.ranks == 1.0
    assert tp8.prefill_time_s(prompt) < replica.prefill_time_s(prompt) / 3


def test_a_prompt_step_without_cuda_graphs_waits_on_the_host_launches() -> None:
    """A prompt step takes at least ``n_layers * eager_layer_launch_s``.

    A decode-only step (CUDA graphs) does not pay it; a longer GPU step is unchanged.
    """
    case = ("llama2_70b", "h100", "bf16", "bf16", 4, 1, False)
    eager = FACTORS.replace(eager_layer_launch_s=6e-4)
    graphs, launched = gpu(case), gpu(case, eager)
    floor_s = 80 * 6e-4
    m = launched.model
    small = float(m.prefill_attention_flops(128.0, 0.0))
    assert graphs.step_time_s(0, 0.0, 128.0, small) < floor_s
    assert launched.step_time_s(0, 0.0, 128.0, small) == pytest.approx(floor_s, rel=1e-12)
    assert launched.step_time_s(8, 8 * 900.0, 16.0, 1e9) == pytest.approx(floor_s, rel=1e-12)
    assert launched.step_time_s(8, 8 * 900.0) == graphs.step_time_s(8, 8 * 900.0)
    large = float(m.prefill_attention_flops(4096.0, 0.0))
    assert graphs.step_time_s(0, 0.0, 4096.0, large) > floor_s
    assert launched.step_time_s(0, 0.0, 4096.0, large) == graphs.step_time_s(0, 0.0, 4096.0, large)
    parts = launched.step_components_s(0, 0.0, 128.0, small)
    assert sum(parts.values()) == pytest.approx(floor_s, rel=1e-12)
