"""Fit the efficiency factors, one set per accelerator family, and show every row's error.

Usage:
    python scripts/calibrate.py            # fit and print the table (writes nothing)
    python scripts/calibrate.py --write    # also write conf/efficiency/<family>.yaml
    python scripts/calibrate.py --markdown # print the table as Markdown for the README

Reads conf/calibration/measurements.yaml (measured rows with sources), conf/model/ and
conf/hardware/. The fitted factors are never tuned per (model, hardware) pair: one set per family.
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

from planner.perf.calibration import (  # noqa: E402
    CalibrationRow,
    fit_gpu_family,
    percentage_error,
    predict,
)
from planner.perf.efficiency import EfficiencyFactors  # noqa: E402
from planner.specs.hardware import System  # noqa: E402
from planner.specs.model import Model  # noqa: E402

CONF = ROOT / "conf"

# Starting points, and the factors the fit does not touch (with their sources).
START = {
    "nvidia_gpu": EfficiencyFactors(
        family="nvidia_gpu",
        # Starting point only: Azure ND GB200 v6 FP8 GEMM ran at ~55% of peak (hardware.md A1).
        compute_efficiency=0.55,
        memory_efficiency=0.8,  # start only: same source, 92% of HBM bandwidth
        comm_efficiency=0.7,
        step_overhead_s=0.002,
        expert_memory_efficiency=0.6,
        # Fixed: TRT-LLM gives 90-95% of free memory to KV (calibration.md sec. 3).
        kv_memory_fraction=0.9,
    ),
}


@cache
def resolve_model(name: str) -> Model:
    return Model.from_dict(yaml.safe_load((CONF / "model" / f"{name}.yaml").read_text()))


@cache
def resolve_system(name: str) -> System:
    return System.from_dict(yaml.safe_load((CONF / "hardware" / f"{name}.yaml").read_text()))


def load_rows() -> list[CalibrationRow]:
    data = yaml.safe_load((CONF / "calibration" / "measurements.yaml").read_text())
    return [CalibrationRow.from_dict(row) for row in data["rows"]]


def fit_all(rows: list[CalibrationRow]) -> dict[str, EfficiencyFactors]:
    """One fitted set per family (groq_lpu: scripts/calibrate_lpu.py)."""
    return {
        "nvidia_gpu": fit_gpu_family(rows, resolve_model, resolve_system, START["nvidia_gpu"]),
    }


def evaluate(
    rows: list[CalibrationRow], fitted: dict[str, EfficiencyFactors]
) -> list[dict[str, object]]:
    """Prediction and error of every row under the fitted factors."""
    table = []
    for row in rows:
        predicted = predict(row, resolve_model, resolve_system, fitted[row.family])
        entry: dict[str, object] = {"row": row, "predicted": predicted}
        if len(predicted) == 1:
            entry["error_pct"] = percentage_error(predicted[0], row.measured)
        else:
            low, high = min(predicted), max(predicted)
            entry["inside_band"] = low <= row.measured <= high
        table.append(entry)
    return table


def gpu_fit_mdape(table: list[dict[str, object]]) -> float:
    """Median absolute percentage error over the fitted GPU (Hopper) rows."""
    errors = [
        abs(float(e["error_pct"]))  # type: ignore[arg-type]
        for e in table
        if e["row"].use == "fit" and e["row"].family == "nvidia_gpu"  # type: ignore[attr-defined]
    ]
    return statistics.median(errors)


def _fmt_predicted(entry: dict[str, object]) -> str:
    predicted = entry["predicted"]
    assert isinstance(predicted, tuple)
    if len(predicted) == 1:
        return f"{predicted[0]:,.0f}" if predicted[0] >= 100 else f"{predicted[0]:,.1f}"
    return f"{min(predicted):,.0f}-{max(predicted):,.0f}"


def print_table(table: list[dict[str, object]], markdown: bool) -> None:
    header = ("row", "use", "measured", "predicted", "error")
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    else:
        print(f"{'row':34} {'use':9} {'measured':>10} {'predicted':>13} {'error':>8}")
    for entry in table:
        row = entry["row"]
        assert isinstance(row, CalibrationRow)
        if "error_pct" in entry:
            error = f"{float(entry['error_pct']):+.1f}%"  # type: ignore[arg-type]
        else:
            error = "inside band" if entry["inside_band"] else "outside band"
        measured = f"{row.measured:,.0f}" if row.measured >= 100 else f"{row.measured:,.1f}"
        cells = (row.id, row.use, measured, _fmt_predicted(entry), error)
        if markdown:
            print("| " + " | ".join(cells) + " |")
        else:
            print(f"{cells[0]:34} {cells[1]:9} {cells[2]:>10} {cells[3]:>13} {cells[4]:>8}")


def write_factors(fitted: dict[str, EfficiencyFactors], mdape: float) -> None:
    notes = {
        "nvidia_gpu": [
            "Fitted by scripts/calibrate.py (Cauchy-loss least squares on log errors) to the",
            "'fit' rows of conf/calibration/measurements.yaml: TensorRT-LLM H100/H200 table and",
            "MLPerf v5.0 H200 Llama3.1-405B (shared/reference/calibration.md sec. 2-3).",
            f"Median abs. error {mdape:.1f}%.",
            "kv_memory_fraction is fixed, not fitted: TRT-LLM gives 90-95% of free memory to KV.",
            "memory_efficiency sits at its bound, the 92% of HBM bandwidth measured on GB200 (A1).",
            "One set for all NVIDIA GPUs: Blackwell predictions use these Hopper-fitted factors.",
        ],
    }
    for family, factors in fitted.items():
        lines = [f"# {line}" for line in notes[family]]
        lines.append("# Regenerate with: make calibrate")
        lines.append(f"family: {family}")
        for key in ("compute_efficiency", "memory_efficiency", "comm_efficiency",
                    "step_overhead_s", "expert_memory_efficiency",
                    "kv_memory_fraction", "sram_usable_fraction"):  # fmt: skip
            value = getattr(factors, key)
            lines.append(f"{key}: {value:.6g}")
        (CONF / "efficiency" / f"{family}.yaml").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="write conf/efficiency/<family>.yaml")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    rows = load_rows()
    fitted = fit_all(rows)
    table = evaluate(rows, fitted)
    print_table(table, args.markdown)
    mdape = gpu_fit_mdape(table)
    print()
    for family, factors in fitted.items():
        print(f"{family}: {factors}")
    print(f"median |error| over fitted Hopper rows: {mdape:.1f}%")
    if args.write:
        write_factors(fitted, mdape)
        print(f"wrote {CONF / 'efficiency'}")


if __name__ == "__main__":
    main()
