"""The per-layer LPU pipeline model (planner/perf/lpu.py, lpu_placement.py) and its fit.

Claims checked: the two Groq speed rows reproduced within 2% and the published 576-chip deployment
reproduced by the chip sizing (not fitted); per-user speed scales with layers, not bytes; the fit
recovers known parameters and is not exact by construction; chips >= 305 for a 70B INT8 model;
longer context is never faster, more chips never slower; the simulator's step function equals
the static one, prefill included; LPU v2 (press figures) flows through.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from planner import config
from planner.perf.efficiency import EfficiencyFactors
from planner.perf.lpu import LpuReplica
from planner.perf.lpu_fit import LpuRow, fit_lpu_factors, load_lpu_rows, predict_lpu_row
from planner.perf.lpu_placement import PINNED_BY
from planner.perf.replica import build_replica, roofline_summary, serving_point
from planner.specs.errors import ConfigError
from planner.specs.model import Model
from tests.conftest import CONF, load_efficiency, load_model, load_system

ROOT = Path(__file__).resolve().parents[1]
SPEED_TOLERANCE = 0.02  # the fitted rows must come back within 2%


def _load_script() -> ModuleType:
    path = ROOT / "scripts" / "calibrate_lpu.py"
    spec = importlib.util.spec_from_file_location("calibrate_lpu", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _load_script()


@pytest.fixture(scope="module")
def fit(script: ModuleType) -> Any:
    return script.run_fit()


def lpu(model: str | Model, hardware: str = "groq_lpu_v1", **kwargs: Any) -> LpuReplica:
    spec = load_model(model) if isinstance(model, str) else model
    kwargs.setdefault("kv_precision", "fp8")
    return LpuReplica(
        spec,
        load_system(hardware),
        "int8",
        kwargs.pop("kv_precision"),
        load_efficiency("groq_lpu"),
        **kwargs,
    )


def variant(name: str, **changes: Any) -> Model:
    data = yaml.safe_load((CONF / "model" / f"{name}.yaml").read_text())
    data.update(changes, name=f"{name}_variant")
    return config.model(data)


# ------------------------------------------------------------------------- calibration
def test_speed_rows_are_reproduced_within_tolerance(fit: Any) -> None:
    speed = [r for r in fit.results if r.fitted]
    assert {r.row.model for r in speed} == {"llama2_70b", "llama2_7b"}
    for result in speed:
        assert abs(result.error_pct) <= 100 * SPEED_TOLERANCE, result.row.id


def test_published_chip_count_comes_from_the_sizing_not_the_fit(fit: Any) -> None:
    check = next(r for r in fit.results if r.row.metric == "chips_per_replica")
    assert not check.fitted
    assert check.predicted == 576
    # The sizing is physical: a full pipeline of 4K sequences with bf16 KV needs more racks.
    assert lpu("llama2_70b", kv_precision="bf16").accelerators > 576


def test_fit_states_rows_and_free_parameters_and_is_not_exact(fit: Any) -> None:
    assert fit.n_rows == 2 and fit.n_free == 2
    eff = fit.efficiency
    assert eff.layer_floor_s > 0
    assert 0.0 <= eff.hop_latency_s <= fit.bounds["hop_latency_s"][1]
    assert (
        fit.bounds["hop_latency_s"][1] == load_system("groq_lpu_v1").accelerator.scale_up_latency_s
    )
    # The rows' per-layer times are equal (41.7 us), so the hop latency lands on its lower bound
    # and one free parameter is left for two rows: a residual, not an exact fit.
    assert fit.n_free - len(fit.at_bound) < fit.n_rows
    assert any(abs(r.error_pct) > 0.01 for r in fit.results if r.fitted)


def test_stored_factors_are_the_scripts_output(fit: Any, script: ModuleType) -> None:
    stored = yaml.safe_load((CONF / "efficiency" / "groq_lpu.yaml").read_text())
    for key in script.KEYS:
        assert stored[key] == pytest.approx(getattr(fit.efficiency, key), rel=1e-4, abs=1e-12), key


def test_fit_recovers_known_floor_and_hop_latency(script: ModuleType) -> None:
    """Rows made by the model itself with a known floor and hop latency give them back."""
    truth = script.START.replace(layer_floor_s=30e-6, hop_latency_s=0.4e-6)
    data = yaml.safe_load((CONF / "calibration" / "groq_lpu.yaml").read_text())
    speed, _ = load_lpu_rows(data)
    synthetic = [
        LpuRow(
            **{
                **r.__dict__,
                "measured": predict_lpu_row(r, config.named_model, config.named_system, truth),
            }
        )
        for r in speed
    ]
    fitted = fit_lpu_factors(synthetic, [], config.named_model, config.named_system, script.START)
    assert fitted.efficiency.layer_floor_s == pytest.approx(30e-6, rel=1e-3)
    assert fitted.efficiency.hop_latency_s == pytest.approx(0.4e-6, rel=1e-2)
    assert fitted.at_bound == ()


# ------------------------------------------------------------------------- the model
def test_latency_is_layers_times_layer_time_plus_hops() -> None:
    replica = lpu("llama2_70b", chips=576)
    eff, accel = replica.efficiency, replica.system.accelerator
    context = 4096.0
    model = replica.model
    per_layer_chips = 576 / 80
    read = replica.bytes_read_per_token_at_batch_1(context) / 80
    flops = (model.linear_flops_per_token + model.decode_attention_flops(context)) / 80
    layer_s = max(
        read / (per_layer_chips * 80e12 * eff.memory_efficiency),
        flops / (per_layer_chips * 750e12 * eff.compute_efficiency),
        eff.layer_floor_s,
    )
    # 80 layers split over 4 chips each (one hop per exchange inside a node): 79 hand-offs +
    # 2 exchanges per layer.
    assert replica.placement.hops_per_token == 79 + 2 * 80
    hop_s = eff.hop_latency_s + 8192 * 2 / accel.scale_up_bandwidth_bytes_per_s
    expected = 80 * layer_s + 239 * hop_s
    assert replica.token_latency_s(context) == pytest.approx(expected)
    assert layer_s == eff.layer_floor_s  # batch-1 decode on LPU v1 is floor-bound


def test_speed_scales_with_layers_not_bytes() -> None:
    base = lpu("llama2_70b")
    # Half the layers, about the same bytes (wider FFN): faster.
    half_layers = variant(
        "llama2_70b",
        n_layers=40,
        n_full_attention_layers=40,
        n_dense_ffn_layers=40,
        dense_ffn_size=2 * 28672 + 8192,
    )
    assert half_layers.total_params == pytest.approx(base.model.total_params, rel=0.1)
    fewer = lpu(half_layers)
    assert fewer.decode_tokens_per_s_per_user(4096) > 1.8 * base.decode_tokens_per_s_per_user(4096)
    # Same layers, about half the bytes: less than 2x faster (here: about as fast).
    half_bytes = variant("llama2_70b", dense_ffn_size=28672 // 2 - 4096)
    assert half_bytes.total_params == pytest.approx(base.model.total_params / 2, rel=0.15)
    lighter = lpu(half_bytes)
    ratio = lighter.decode_tokens_per_s_per_user(4096) / base.decode_tokens_per_s_per_user(4096)
    assert 1.0 <= ratio < 2.0


def test_seventy_b_int8_needs_at_least_305_chips() -> None:
    for name in ("llama2_70b", "llama3_70b"):
        for kv in ("bf16", "fp8"):
            replica = lpu(name, kv_precision=kv)
            assert replica.min_chips_for_weights >= 305
            assert replica.accelerators >= replica.min_chips_for_weights
            assert replica.accelerators % 72 == 0


def test_longer_context_is_never_faster() -> None:
    for name in ("llama2_70b", "llama2_7b", "qwen35_35b_a3b", "gpt_oss_120b"):
        replica = lpu(name)
        speeds = [replica.decode_tokens_per_s_per_user(c) for c in (0, 1e3, 4e3, 16e3, 64e3, 256e3)]
        assert all(a >= b for a, b in itertools.pairwise(speeds)), name
        steps = [replica.step_time_s(8, 8 * c) for c in (0, 1e3, 4e3, 16e3, 64e3)]
        assert all(a <= b for a, b in itertools.pairwise(steps)), name


def test_more_chips_are_never_slower_per_token() -> None:
    for name, chip_counts in (
        ("llama2_70b", (324, 360, 576, 720, 1152, 2304)),
        ("llama2_7b", (34, 40, 72, 144, 576)),
    ):
        speeds = [lpu(name, chips=n).decode_tokens_per_s_per_user(4096) for n in chip_counts]
        assert all(a <= b for a, b in itertools.pairwise(speeds)), name


def test_pipeline_holds_one_sequence_per_stage_bounded_by_sram() -> None:
    replica = lpu("llama2_70b")
    assert replica.stages == 80
    assert replica.max_batch(4096) == 80  # sized for a full pipeline at 4K
    assert replica.max_batch(32_768) < 80  # longer contexts: the SRAM left for KV binds
    traversal = replica.token_latency_s(4096)
    assert replica.step_time_s(1, 4096) == pytest.approx(traversal)
    assert replica.step_time_s(80, 80 * 4096) == pytest.approx(traversal)
    assert replica.step_time_s(160, 160 * 4096) == pytest.approx(2 * traversal)
    point = serving_point(replica, 2048, 256)
    assert point.batch == 80


def test_prefill_includes_one_pipeline_traversal() -> None:
    replica = lpu("llama2_70b")
    prompt = 2048.0
    attention = replica.model.prefill_attention_flops(prompt, 0.0)
    compute_s = (replica.model.linear_flops_per_token * prompt + attention) / (
        replica.accelerators * 750e12 * replica.efficiency.compute_efficiency
    )
    assert replica.prefill_time_s(prompt) == pytest.approx(compute_s + replica.token_latency_s(0))
    assert replica.prefill_time_s(prompt) == replica.step_time_s(0, 0.0, prompt, attention)
    assert replica.prefill_time_s(prompt, cached_prefix_tokens=prompt) == 0.0


# ------------------------------------------------------------------------- SRAM budget
def test_sram_fraction_is_derived_and_reported_with_what_pins_it() -> None:
    replica = build_replica(
        load_model("llama2_70b"),
        load_system("groq_lpu_v1"),
        load_efficiency("groq_lpu"),
        precision="int8",
        kv_precision="bf16",
    )
    summary = roofline_summary(replica, isl=2048, osl=2048, tpot_limit_s=0.05)
    reserve = load_efficiency("groq_lpu").sram_reserve_fraction
    assert 0.0 < summary["sram_usable_fraction"] <= 1.0 - reserve + 1e-9
    assert summary["sram_pinned_by"] == "kv"  # a full pipeline of 4K bf16 KV sets the racks
    parts = ("sram_weight_fraction", "sram_kv_fraction", "sram_activation_fraction")
    assert sum(summary[k] for k in parts) == pytest.approx(summary["sram_usable_fraction"])
    assert summary["pipeline_stages"] == 80
    # A huge MoE is pinned by its weights: its KV is small beside them.
    big = lpu("deepseek_v3")
    assert big.static_figures(4096)["sram_pinned_by"] == "weights"
    assert lpu("llama2_70b", chips=1152).static_figures(4096)["sram_pinned_by"] == "chips"
    assert set(PINNED_BY) >= {"weights", "kv", "chips", "chain"}


def test_too_few_chips_are_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError) as error:
        lpu("llama2_70b", chips=300)
    assert error.value.field == "chips"
    with pytest.raises(ConfigError) as error:
        lpu("llama2_70b", chips=20_000)
    assert error.value.field == "chips"


def test_bad_lpu_factors_are_refused_naming_the_field() -> None:
    base = yaml.safe_load((CONF / "efficiency" / "groq_lpu.yaml").read_text())
    bad = (
        ("layer_floor_s", -1e-6),
        ("hop_latency_s", -1.0),
        ("sram_reserve_fraction", 1.5),
        ("kv_sizing_context_tokens", 0),
    )
    for key, value in bad:
        with pytest.raises(ConfigError) as error:
            EfficiencyFactors.from_dict({**base, key: value})
        assert error.value.field == f"efficiency.{key}"
    full_reserve = load_efficiency("groq_lpu").replace(sram_reserve_fraction=1.0)
    with pytest.raises(ConfigError) as error:
        LpuReplica(load_model("llama2_7b"), load_system("groq_lpu_v1"), "int8", "fp8", full_reserve)
    assert error.value.field == "efficiency.sram_reserve_fraction"


# ------------------------------------------------------------------------- LPU v2
def test_v2_press_figures_flow_through() -> None:
    v1, v2 = (
        lpu("llama3_70b", kv_precision="bf16"),
        lpu("llama3_70b", "groq_lpu_v2", kv_precision="bf16"),
    )
    accel = load_system("groq_lpu_v2").accelerator
    assert not accel.confirmed
    assert v2.accelerators % 256 == 0
    usable = v2.accelerators * accel.memory_bytes * (1 - v2.efficiency.sram_reserve_fraction)
    assert v2.kv_capacity_bytes == pytest.approx(
        usable - v2.weight_bytes - v2.placement.activation_bytes
    )
    assert v2.min_chips_for_weights < v1.min_chips_for_weights  # 500 MB vs 230 MB per chip
    assert v2.decode_tokens_per_s_per_user(4096) >= v1.decode_tokens_per_s_per_user(4096)
    # LPX press figure: 1.23 PF FP8 per LPU against v1's 750 TOPS, so a prompt costs fewer
    # chip-seconds (the replica holds fewer chips, so its wall time is about v1's).
    assert accel.peak_flops("int8") == pytest.approx(1.23e15)
    assert v2.prefill_time_s(4096) * v2.accelerators < 0.7 * (
        v1.prefill_time_s(4096) * v1.accelerators
    )
    summary = roofline_summary(v2, isl=2048, osl=512, tpot_limit_s=0.05)
    assert summary["hardware"] == "groq_lpu_v2"
    assert summary["sram_pinned_by"] in PINNED_BY
