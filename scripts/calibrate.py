"""Fit the efficiency factors, one profile per accelerator family and serving stack.

It shows every row's error.

Usage:
    python scripts/calibrate.py            # fit and print the table (writes nothing)
    python scripts/calibrate.py --write    # also write conf/efficiency/<family>[__<stack>].yaml
    python scripts/calibrate.py --markdown # print the tables as Markdown for the README
    python scripts/calibrate.py --scan-layer-overhead   # refit trtllm with its dense-layer
                                           # overhead held at 0-50 us: loss, rows, batch-1 speed

Reads conf/calibration/measurements.yaml and the serving curves conf/calibration/inferencex_*.csv
(measured rows with sources), conf/model/ and conf/hardware/. Profiles are fitted in order, each
on its own stack's rows only, never per (model, hardware) pair:

1. nvidia_gpu / trtllm on the TensorRT-LLM rows (calibration.md sec. 2-3, trt curves of sec. 7);
2. nvidia_gpu / sglang on the SGLang H200 curves; the comm efficiency and grouped-GEMM half-tile
   come from trtllm (same GPUs and links, no SGLang row varies them);
3. amd_gpu / sglang on the MI300X curves; the same two factors come from nvidia_gpu / sglang;
4. nvidia_gpu / vllm on the Llama-2-70B H100 step times (sec. 8), the rest from trtllm.

groq_lpu is fitted by scripts/calibrate_lpu.py (the per-layer pipeline model); `make calibrate`
runs both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.config import named_model, named_system  # noqa: E402
from planner.perf.calibration import (  # noqa: E402
    CalibrationRow,
    CurvePoint,
    fit_profile,
    load_curve_points,
    percentage_error,
    predict,
    predict_point,
    profile_loss,
)
from planner.perf.efficiency import DEFAULT_STACK, EfficiencyFactors  # noqa: E402
from planner.perf.replica import build_replica  # noqa: E402

CONF = ROOT / "conf"
CURVES = {
    "nvidia_gpu": "inferencex_h200_deepseek_r1.csv",
    "amd_gpu": "inferencex_mi300x_deepseek_r1.csv",
}

GPU_START = EfficiencyFactors(
    family="nvidia_gpu",
    # Starting point only: Azure ND GB200 v6 FP8 GEMM ran at ~55% of peak (hardware.md A1).
    compute_efficiency=0.55,
    memory_efficiency=0.8,  # start only: same source, 92% of HBM bandwidth
    comm_efficiency=0.7,
    # Fixed [A]: TensorRT-LLM, SGLang and vLLM all overlap the CPU scheduler with GPU work
    # (overlap schedulers, CUDA graphs), so the fixed cost left per step is the per-layer one.
    step_overhead_s=0.0,
    expert_memory_efficiency=0.6,
    # Fixed: TRT-LLM gives 90-95% of free memory to KV (calibration.md sec. 3); SGLang's
    # mem_fraction_static 0.8-0.9 and vLLM's gpu_memory_utilization 0.9 are alike.
    kv_memory_fraction=0.9,
    stack="trtllm",
    # Fixed [V], not fitted: TensorRT-LLM's documented KV layout (sources: the profile header
    # write_factors writes); the SGLang and vLLM starts below set it false.
    windowed_kv_full_context=True,
    # Fixed [A] at 0, not fitted: no TensorRT-LLM row pins the overhead of a dense layer. The
    # saturated rows amortise it and the curves are DeepSeek's (58 of 61 layers MoE, whose own
    # overhead absorbs it): refits with it held at 0, 10, 20, 34 and 50 us end within 0.4% of
    # one another in loss (README, "Calibration"). 0 gives latency-bound dense steps their
    # bandwidth-and-collective bound, an upper bound on batch-1 speed.
    layer_overhead_s=0.0,
    moe_layer_overhead_s=5e-5,
    attention_compute_efficiency=0.4,
    expert_gemm_half_tokens=32.0,
    request_overhead_s=0.05,
)
CURVE_FREE = (
    "compute_efficiency",
    "memory_efficiency",
    "expert_memory_efficiency",
    "attention_compute_efficiency",
    "moe_layer_overhead_s",
    "request_overhead_s",
)
FREE = {
    # The TensorRT-LLM dense-layer overhead is held at 0 (GPU_START); the other stacks keep it.
    ("nvidia_gpu", "trtllm"): (
        *CURVE_FREE,
        "comm_efficiency",
        "expert_gemm_half_tokens",
    ),
    ("nvidia_gpu", "sglang"): CURVE_FREE,
    ("amd_gpu", "sglang"): CURVE_FREE,
    # Dense FP16 step times cannot separate HBM efficiency from a per-layer overhead (both scale
    # a memory-bound decode step): the bandwidth is the hardware's (trtllm's), the stack's own
    # factors are its GEMM efficiency and its per-layer overhead.
    # Prompt iterations run eagerly (CUDA graphs hold decode-only batches): the small prompts'
    # flat ~49-51 ms pins the host launch floor, the large ones the GEMM efficiency.
    ("nvidia_gpu", "vllm"): ("compute_efficiency", "layer_overhead_s", "eager_layer_launch_s"),
}
PROFILE_KEYS = (
    "stack",
    "compute_efficiency",
    "memory_efficiency",
    "comm_efficiency",
    "step_overhead_s",
    "layer_overhead_s",
    "moe_layer_overhead_s",
    "expert_memory_efficiency",
    "attention_compute_efficiency",
    "expert_gemm_half_tokens",
    "request_overhead_s",
    "kv_memory_fraction",
    "eager_layer_launch_s",
    "windowed_kv_full_context",
)


@cache
def load_rows() -> list[CalibrationRow]:
    """The measured rows of conf/calibration/measurements.yaml."""
    data = yaml.safe_load((CONF / "calibration" / "measurements.yaml").read_text())
    return [CalibrationRow.from_dict(row) for row in data["rows"]]


def load_points() -> list[CurvePoint]:
    """The measured serving-curve points of conf/calibration/."""
    points: list[CurvePoint] = []
    for family, name in CURVES.items():
        with (CONF / "calibration" / name).open() as lines:
            points += load_curve_points(lines, family)
    return points


def fit_all(
    rows: list[CalibrationRow], points: list[CurvePoint]
) -> dict[tuple[str, str], EfficiencyFactors]:
    """One fitted profile per GPU (family, stack)."""

    def fit(start: EfficiencyFactors, *extra: EfficiencyFactors) -> EfficiencyFactors:
        free = FREE[(start.family, start.stack)]
        return fit_profile(rows, points, named_model, named_system, start, free, extra)

    trtllm = fit(GPU_START)
    sglang = fit(trtllm.replace(stack="sglang", windowed_kv_full_context=False))
    # MI300X's attention efficiency is barely pinned (its MLA decode is memory-bound at every
    # curve point): a second start from the generic one keeps the fit off a worse local minimum.
    amd_start = sglang.replace(family="amd_gpu")
    generic = {n: getattr(GPU_START, n) for n in CURVE_FREE}
    amd = fit(amd_start, amd_start.replace(**generic))
    # Start the launch floor inside its basin (a floor below the GPU time has no gradient):
    # the 128-token prompt's 49 ms over 80 layers, ~0.6 ms a layer (start only).
    vllm = fit(
        trtllm.replace(stack="vllm", eager_layer_launch_s=6e-4, windowed_kv_full_context=False)
    )
    return {
        ("nvidia_gpu", "trtllm"): trtllm,
        ("nvidia_gpu", "sglang"): sglang,
        ("amd_gpu", "sglang"): amd,
        ("nvidia_gpu", "vllm"): vllm,
    }


def evaluate(
    rows: list[CalibrationRow], fitted: dict[tuple[str, str], EfficiencyFactors]
) -> list[dict[str, object]]:
    """Prediction and error of every scalar row under its profile."""
    table = []
    for row in rows:
        predicted = predict(row, named_model, named_system, fitted[(row.family, row.stack)])
        entry: dict[str, object] = {"row": row, "predicted": predicted}
        if len(predicted) == 1:
            entry["error_pct"] = percentage_error(predicted[0], row.measured)
        else:
            low, high = min(predicted), max(predicted)
            entry["inside_band"] = low <= row.measured <= high
        table.append(entry)
    return table


def evaluate_points(
    points: list[CurvePoint], fitted: dict[tuple[str, str], EfficiencyFactors]
) -> list[dict[str, object]]:
    """Predicted tok/s/GPU, tok/s/user and TTFT of every curve point, with errors in %."""
    table = []
    for p in points:
        gpu, user, ttft = predict_point(p, named_model, named_system, fitted[(p.family, p.stack)])
        table.append(
            {
                "point": p,
                "gpu": gpu,
                "user": user,
                "ttft": ttft,
                "gpu_error_pct": percentage_error(gpu, p.output_tokens_per_s_per_accelerator),
                "user_error_pct": percentage_error(user, p.tokens_per_s_per_user),
            }
        )
    return table


def row_mdape(table: list[dict[str, object]], family: str, stack: str) -> float:
    """Median absolute percentage error over the fitted scalar rows of one profile."""
    errors = [
        abs(float(e["error_pct"]))  # type: ignore[arg-type]
        for e in table
        if e["row"].use == "fit"  # type: ignore[attr-defined]
        and (e["row"].family, e["row"].stack) == (family, stack)  # type: ignore[attr-defined]
    ]
    return statistics.median(errors) if errors else float("nan")


def curve_mdape(table: list[dict[str, object]], family: str, stack: str) -> tuple[float, float]:
    """(tok/s/GPU, tok/s/user) median absolute errors over one profile's curve points, %."""
    mine = [e for e in table if (e["point"].family, e["point"].stack) == (family, stack)]  # type: ignore[attr-defined]
    if not mine:
        return float("nan"), float("nan")
    return (
        statistics.median(abs(float(e["gpu_error_pct"])) for e in mine),  # type: ignore[arg-type]
        statistics.median(abs(float(e["user_error_pct"])) for e in mine),  # type: ignore[arg-type]
    )


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}" if value >= 1 else f"{value:.4f}"


def print_rows(table: list[dict[str, object]], markdown: bool) -> None:
    """Print the per-row errors as a table (Markdown with ``markdown``)."""
    header = ("row", "stack", "use", "measured", "predicted", "error")
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    else:
        print(f"{'row':34} {'stack':7} {'use':9} {'measured':>10} {'predicted':>13} {'error':>8}")
    for entry in table:
        row = entry["row"]
        assert isinstance(row, CalibrationRow)
        predicted = entry["predicted"]
        assert isinstance(predicted, tuple)
        if "error_pct" in entry:
            error = f"{float(entry['error_pct']):+.1f}%"  # type: ignore[arg-type]
            shown = _num(predicted[0])
        else:
            error = "inside band" if entry["inside_band"] else "outside band"
            shown = f"{_num(min(predicted))}-{_num(max(predicted))}"
        cells = (row.id, row.stack or "-", row.use, _num(row.measured), shown, error)
        if markdown:
            print("| " + " | ".join(cells) + " |")
        else:
            left = f"{cells[0]:34} {cells[1]:7} {cells[2]:9}"
            print(f"{left} {cells[3]:>10} {cells[4]:>13} {cells[5]:>8}")


def print_points(table: list[dict[str, object]], markdown: bool) -> None:
    """Print the per-point serving-curve errors as a table (Markdown with ``markdown``)."""
    header = (
        "point (nominal ISL/OSL)",
        "runs",
        "tok/s/GPU meas.",
        "pred.",
        "err",
        "tok/s/user meas.",
        "pred.",
        "err",
    )
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    for e in table:
        p = e["point"]
        assert isinstance(p, CurvePoint)
        cells = (
            p.id,
            str(p.runs),
            _num(p.output_tokens_per_s_per_accelerator),
            _num(float(e["gpu"])),  # type: ignore[arg-type]
            f"{float(e['gpu_error_pct']):+.0f}%",
            _num(p.tokens_per_s_per_user),  # type: ignore[arg-type]
            _num(float(e["user"])),
            f"{float(e['user_error_pct']):+.0f}%",  # type: ignore[arg-type]
        )
        if markdown:
            print("| " + " | ".join(cells) + " |")
        else:
            print(
                f"{cells[0]:40} {cells[1]:>3} {cells[2]:>7} {cells[3]:>7} {cells[4]:>6}  "
                f"{cells[5]:>6} {cells[6]:>6} {cells[7]:>6}"
            )


def profile_path(family: str, stack: str) -> Path:
    """The profile file of an accelerator family and serving stack in conf/efficiency/."""
    if not stack or DEFAULT_STACK.get(family) == stack:
        return CONF / "efficiency" / f"{family}.yaml"
    return CONF / "efficiency" / f"{family}__{stack}.yaml"


def write_factors(
    fitted: dict[tuple[str, str], EfficiencyFactors],
    summary: dict[tuple[str, str], str],
) -> None:
    """Write the fitted factors to their profile file in conf/efficiency/."""
    sources = {
        ("nvidia_gpu", "trtllm"): [
            "TensorRT-LLM profile of NVIDIA GPUs. Fitted by scripts/calibrate.py (Cauchy-loss",
            "least squares on log errors) to the TensorRT-LLM rows only: the perf-overview table",
            "and MLPerf v5.0 H200 Llama3.1-405B (calibration.md sec. 2-3, measurements.yaml) and",
            "the trt serving curves of DeepSeek-R1 on H200 (sec. 7, conf/calibration/*.csv).",
            "windowed_kv_full_context true [V], not fitted: TensorRT-LLM's PyTorch KVCacheManager",
            "sizes every layer for max_seq_len unless kv_cache_config.max_attention_window lists",
            "the windows (tensorrt_llm/_torch/pyexecutor/resource_manager.py), and the",
            "perf-overview's gpt-oss and Llama-4 llm_options.yml set none (docs/source/",
            "developer-guide/perf-overview.md): sliding-window and chunked layers hold the whole",
            "context; their attention still reads only the window.",
        ],
        ("nvidia_gpu", "sglang"): [
            "SGLang profile of NVIDIA GPUs. Fitted by scripts/calibrate.py to the SGLang H200",
            "DeepSeek-R1 serving curves only (calibration.md sec. 7). comm_efficiency and",
            "expert_gemm_half_tokens are the trtllm profile's (no SGLang row varies them).",
            "windowed_kv_full_context false [V]: SGLang's SWAKVPool keeps sliding-window layers",
            "in a pool of their own that holds only the window (sglang/srt/mem_cache/",
            "swa_memory_pool.py).",
        ],
        ("amd_gpu", "sglang"): [
            "SGLang profile of AMD Instinct GPUs (the amd_gpu family's default). Fitted by",
            "scripts/calibrate.py to the MI300X DeepSeek-R1 serving curves only (calibration.md",
            "sec. 7); MI325X and MI355X are predictions. comm_efficiency and",
            "expert_gemm_half_tokens are nvidia_gpu/sglang's [A] (no MI300X row varies them).",
            "vLLM on AMD borrows this profile (planner.perf.efficiency.BORROWED).",
            "windowed_kv_full_context false [V]: SGLang's SWAKVPool (as nvidia_gpu/sglang).",
        ],
        ("nvidia_gpu", "vllm"): [
            "vLLM-era profile of NVIDIA GPUs. Fitted by scripts/calibrate.py to the Llama-2-70B",
            "TP4 H100 FP16 step times (Splitwise, calibration.md sec. 8): GEMM efficiency, the",
            "per-layer overhead and the eager launch floor of prompt steps (no CUDA graphs); the",
            "HBM, MoE, attention and link factors are the trtllm profile's (a dense FP16 model on",
            "8 rows cannot pin them). windowed_kv_full_context false [V]: vLLM's hybrid KV",
            "cache manager frees the blocks that leave a sliding window (vllm/v1/core/",
            "single_type_kv_cache_manager.py, SlidingWindowManager).",
        ],
    }
    common = [
        "step_overhead_s 0 [A]: the stacks overlap their CPU scheduler with GPU work; the fixed",
        "cost per step is layer_overhead_s x layers. kv_memory_fraction 0.9 is fixed, not fitted.",
        "Bounds: efficiencies <= 0.92 of HBM (measured on GB200, hardware.md A1), <= 0.9 of peak.",
    ]
    for (family, stack), factors in fitted.items():
        notes = [*sources[(family, stack)], *common, summary[(family, stack)]]
        lines = [f"# {line}" for line in notes]
        lines.append("# Regenerate with: make calibrate")
        lines.append(f"family: {family}")
        for key in PROFILE_KEYS:
            value = getattr(factors, key)
            if isinstance(value, bool):
                lines.append(f"{key}: {str(value).lower()}")
            elif isinstance(value, str):
                lines.append(f"{key}: {value}")
            else:
                lines.append(f"{key}: {value:.6g}")
        profile_path(family, stack).write_text("\n".join(lines) + "\n")


SCAN_LAYER_OVERHEAD_S = (0.0, 1e-5, 2e-5, 3.4e-5, 5e-5)
"""Dense-layer overheads the scan holds TensorRT-LLM's profile at, s (34 us: where a free fit
stopped)."""


def scan_layer_overhead(
    rows: list[CalibrationRow],
    points: list[CurvePoint],
    values_s: tuple[float, ...] = SCAN_LAYER_OVERHEAD_S,
) -> list[dict[str, float]]:
    """Refit the trtllm profile with its dense-layer overhead held at each value.

    Shows whether the TensorRT-LLM rows pin the overhead (GPU_START holds it at 0): the fit's
    loss, the rows' median error, and the figure it decides, Llama-3-70B FP8 at batch 1 on eight
    GB200s at 4,096 tokens of context (tokens/s per user).
    """
    scan = []
    for value in values_s:
        start = GPU_START.replace(layer_overhead_s=value)
        free = FREE[("nvidia_gpu", "trtllm")]
        profile = fit_profile(rows, points, named_model, named_system, start, free)
        table = evaluate(
            [r for r in rows if r.stack == "trtllm"], {("nvidia_gpu", "trtllm"): profile}
        )
        replica = build_replica(
            named_model("llama3_70b"),
            named_system("gb200_nvl72"),
            profile,
            precision="fp8",
            kv_precision="fp8",
            tp=8,
        )
        scan.append(
            {
                "layer_overhead_s": value,
                "loss": profile_loss(rows, points, named_model, named_system, profile),
                "rows_median_pct": row_mdape(table, "nvidia_gpu", "trtllm"),
                "gb200_batch1_tokens_per_s": 1.0 / replica.step_time_s(1, 4096.0),
            }
        )
    return scan


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="write conf/efficiency/*.yaml")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument(
        "--scan-layer-overhead",
        action="store_true",
        help="refit trtllm with its dense-layer overhead held at 0-50 us and print the loss",
    )
    args = parser.parse_args()
    rows, points = load_rows(), load_points()
    if args.scan_layer_overhead:
        print(f"{'per layer':>9} {'loss':>7} {'rows':>6} {'GB200 batch 1':>14}")
        for entry in scan_layer_overhead(rows, points):
            print(
                f"{entry['layer_overhead_s'] * 1e6:7.1f}us {entry['loss']:7.4f} "
                f"{entry['rows_median_pct']:5.1f}% {entry['gb200_batch1_tokens_per_s']:8.0f} tok/s"
            )
        return
    fitted = fit_all(rows, points)
    table, curve_table = evaluate(rows, fitted), evaluate_points(points, fitted)
    print_rows(table, args.markdown)
    print()
    print_points(curve_table, args.markdown)
    print()
    summary = {}
    for (family, stack), factors in fitted.items():
        rows_err = row_mdape(table, family, stack)
        gpu_err, user_err = curve_mdape(curve_table, family, stack)
        summary[(family, stack)] = (
            f"Median abs. error: {rows_err:.1f}% over the fitted scalar rows; serving curves "
            f"{gpu_err:.1f}% tok/s/GPU, {user_err:.1f}% tok/s/user."
        ).replace("nan%", "n/a")
        print(f"{family}/{stack or '-'}: {factors}")
        print(f"  {summary[(family, stack)]}")
    if args.write:
        write_factors(fitted, summary)
        print(f"wrote {CONF / 'efficiency'}")


if __name__ == "__main__":
    main()
