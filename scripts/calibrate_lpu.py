"""Fit the Groq LPU pipeline factors (per-layer floor, per-hop latency) and show every row.

Usage:
    python scripts/calibrate_lpu.py            # fit and print the table (writes nothing)
    python scripts/calibrate_lpu.py --write    # also write conf/efficiency/groq_lpu.yaml

Reads conf/calibration/groq_lpu.yaml (measured rows with sources), conf/model/ and conf/hardware/.
The fit is planner.perf.lpu_fit.fit_lpu_factors; the model is planner.perf.lpu.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.config import named_model, named_system  # noqa: E402
from planner.perf.efficiency import EfficiencyFactors  # noqa: E402
from planner.perf.lpu_fit import (  # noqa: E402
    LpuFit,
    fit_lpu_factors,
    load_lpu_rows,
    predict_lpu_row,
)

CONF = ROOT / "conf"

# The factors the fit does not touch, with their reasons.
START = EfficiencyFactors(
    family="groq_lpu",
    compute_efficiency=0.5,  # [A] no LPU row constrains compute (it only sets prefill time)
    memory_efficiency=0.9,  # [A] compiler-scheduled SRAM streams; the rows only bound it below
    comm_efficiency=1.0,  # unused by the LPU model (hops are a latency plus serialization)
    step_overhead_s=0.0,  # unused by the LPU model: the per-layer floor replaces it
    kv_memory_fraction=1.0,  # unused by the LPU model (SRAM budget in planner.perf.lpu_placement)
    sram_usable_fraction=1.0,  # unused: derived per deployment, reported by planner-roofline
    layer_floor_s=10e-6,  # start only
    hop_latency_s=0.3e-6,  # start only
    sram_reserve_fraction=0.05,  # [A] instruction stream and compiler staging buffers
    kv_sizing_context_tokens=4096.0,  # [A] the context of the published 576-chip deployment
)
KEYS = (
    "compute_efficiency",
    "memory_efficiency",
    "comm_efficiency",
    "step_overhead_s",
    "expert_memory_efficiency",
    "kv_memory_fraction",
    "sram_usable_fraction",
    "layer_floor_s",
    "hop_latency_s",
    "sram_reserve_fraction",
    "kv_sizing_context_tokens",
)

TAGS = {
    "compute_efficiency": "[A] not fitted: no LPU row constrains compute (prefill only)",
    "memory_efficiency": "[A] not fitted: the rows only bound it below (see above)",
    "layer_floor_s": "[D] fitted to the two speed rows",
    "hop_latency_s": "[D] fitted; bounded by the C2C figure (hardware.md A3)",
    "sram_reserve_fraction": "[A] instruction stream and compiler staging buffers",
    "kv_sizing_context_tokens": "[A] context of the published 576-chip deployment",
}


@cache
def run_fit() -> LpuFit:
    """Load the rows and fit (the test suite calls this too)."""
    data = yaml.safe_load((CONF / "calibration" / "groq_lpu.yaml").read_text())
    speed, chips = load_lpu_rows(data)
    return fit_lpu_factors(speed, chips, named_model, named_system, START)


def print_table(fit: LpuFit) -> None:
    """Print the LPU rows with their predicted and measured figures."""
    print(
        f"{'row':20} {'use':6} {'measured':>9} {'predicted':>10} {'error':>7} "
        f"{'chips':>6} {'layers':>6} {'hops':>5} {'unfloored us/layer':>18}"
    )
    for r in fit.results:
        print(
            f"{r.row.id:20} {'fit' if r.fitted else 'check':6} {r.row.measured:9,.0f} "
            f"{r.predicted:10,.1f} {r.error_pct:+6.1f}% {r.chips:6d} {r.layers:6d} {r.hops:5d} "
            f"{r.stream_s_per_layer * 1e6:18.2f}"
        )


def notes(fit: LpuFit) -> list[str]:
    """What pins each fitted LPU factor, one line each."""
    eff = fit.efficiency
    speed = [r for r in fit.results if r.fitted]
    checks = [r for r in fit.results if not r.fitted]
    bound = ", ".join(fit.at_bound) if fit.at_bound else "none"
    lines = [
        "Fitted by scripts/calibrate_lpu.py (planner.perf.lpu_fit.fit_lpu_factors): bounded least",
        "squares on log errors of the per-layer pipeline model (planner/perf/lpu.py) against the",
        "speed rows of conf/calibration/groq_lpu.yaml (calibration.md sec. 5 and 5b).",
        f"{fit.n_rows} rows, {fit.n_free} free parameters (layer_floor_s >= 0; hop_latency_s in",
        f"[0, {fit.bounds['hop_latency_s'][1] * 1e6:.1f} us], the C2C figure of hardware.md A3);"
        f" on a bound: {bound},",
        f"so {fit.n_free - len(fit.at_bound)} effective free parameter(s) for {fit.n_rows} rows.",
        "Errors: "
        + "; ".join(
            f"{r.row.id} {r.error_pct:+.2f}% ({r.layers} layers, {r.hops} hops)" for r in speed
        )
        + ".",
        f"Per-layer time is the floor ({eff.layer_floor_s * 1e6:.2f} us): without it a layer",
        "streams/computes in "
        + ", ".join(f"{r.stream_s_per_layer * 1e6:.2f} us ({r.row.model})" for r in speed)
        + ",",
        "so per-user speed scales with layers, not bytes. memory_efficiency (0.9) and",
        "compute_efficiency (0.5) are assumptions [A], not fits: the rows only need",
        f"memory_efficiency >= {fit.memory_efficiency_floor:.3f}.",
        "sram_reserve_fraction (0.05) [A]: instructions and staging; kv_sizing_context_tokens",
        "(4096) [A]: chips are sized for weights + activations + KV of a full pipeline at it.",
        "Chip check (not fitted): "
        + "; ".join(
            f"{r.row.id} {r.predicted:.0f} vs {r.row.measured:.0f} ({r.error_pct:+.1f}%)"
            for r in checks
        )
        + ".",
        "sram_usable_fraction is unused (derived per deployment, see planner-roofline).",
    ]
    for r in checks:  # how much the check leans on the [A] KV precision
        alt = "bf16" if r.row.kv_precision != "bf16" else "fp8"
        other = replace(r.row, kv_precision=alt)
        chips = predict_lpu_row(other, named_model, named_system, eff)
        lines.append(
            f"With {alt} KV instead of {r.row.kv_precision} the check gives {chips:.0f} chips."
        )
    return lines


def write_factors(fit: LpuFit) -> Path:
    """Write the fitted factors to their profile file in conf/efficiency/."""
    lines = [f"# {line}" for line in notes(fit)]
    lines.append("# Regenerate with: python scripts/calibrate_lpu.py --write (make calibrate)")
    lines.append("family: groq_lpu")
    for key in KEYS:
        value = f"{key}: {getattr(fit.efficiency, key):.6g}"
        lines.append(f"{value:40} # {TAGS[key]}" if key in TAGS else value)
    path = CONF / "efficiency" / "groq_lpu.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="write conf/efficiency/groq_lpu.yaml")
    args = parser.parse_args()
    fit = run_fit()
    print_table(fit)
    print()
    for line in notes(fit):
        print(line)
    if args.write:
        print(f"wrote {write_factors(fit)}")


if __name__ == "__main__":
    main()
