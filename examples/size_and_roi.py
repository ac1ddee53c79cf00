"""Size two fleets and run a small ROI study through the Python API alone (no Hydra).

What a notebook does: read the shipped configs as plain mappings, turn them into validated specs
with :mod:`planner.config` (the one converter), size each fleet option for a demand
(:func:`planner.econ.sizing.size_option`), measure both options' capacity curves, sample
uncertain futures (:mod:`planner.econ.montecarlo`) and plot the NPV of the candidate against the
baseline. Small on purpose (a few hundred trees per simulation, a three-point curve, 400 sampled
futures): about a minute on a laptop core; the figures are an illustration, not a study.

Usage::

    python examples/size_and_roi.py [OUTPUT_DIR]      # writes OUTPUT_DIR/npv.png (default: .)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from planner import config
from planner.config import CONF_DIR, load_named, load_yaml
from planner.econ.capacity import measure_curve
from planner.econ.montecarlo import latin_hypercube, summarize_samples
from planner.econ.roi import RoiModel, check_inputs
from planner.econ.sizing import SizingSlo, size_option
from planner.report.plots import histogram_png
from planner.sim.engine import WorkloadSpec

N_TREES = 300
"""Trees per simulation: enough for a p99 on a small example, far below a real study's 3,000."""
DEMAND_TREES_PER_S = 20.0
"""The demand the fleets are sized for (agent trees per second)."""


def main(out_dir: Path) -> dict[str, object]:
    """Size the options, run the ROI study, write ``npv.png``; return the figures printed."""
    roi_cfg = load_yaml(CONF_DIR / "roi.yaml", "roi")  # the defaults planner-roi starts from
    chat = config.workload(load_named("workload", "chat", "workload"))
    workload = WorkloadSpec(chat.arrivals, chat.tree, n_trees=N_TREES)
    targets = config.sizing_slo(roi_cfg["slo"])
    slo = SizingSlo(targets.tree_e2e_p99_s, targets.ttft_p99_s, targets.tpot_p99_s)
    max_racks, options = config.sizing_options(load_named("sizing", "llama70b_options", "sizing"))
    by_name = {o.name: o for o in options}
    economics = config.economics(load_named("economics", "default", "economics"))
    baseline, candidate = by_name["gpu_only"], by_name["gpu_prefill_lpu_decode"]

    sized = {}
    for option in (baseline, candidate):
        result = size_option(option, workload, DEMAND_TREES_PER_S, slo, seed=0, max_racks=max_racks)
        sized[option.name] = dict(result.racks)
        print(
            f"{option.name}: {dict(result.racks)} racks at {DEMAND_TREES_PER_S} trees/s "
            f"(feasible: {result.feasible})"
        )

    demands = [5.0, 20.0, 80.0]  # trees/s: the loads the sampled futures reach, roughly
    curves = [
        measure_curve(o, workload, slo, demands, seed=0, max_racks=max_racks)
        for o in (baseline, candidate)
    ]
    model = RoiModel(curves[0], curves[1], economics, horizon_years=3)
    mc_inputs = dict(roi_cfg["mc"]["inputs"])
    mc_inputs["base_demand_trees_per_s"] = {"dist": "uniform", "loc": 10.0, "scale": 10.0}
    inputs = config.uncertain_inputs(mc_inputs, "mc.inputs")
    draws = latin_hypercube(inputs, 400, seed=1)
    check_inputs(draws)
    npv_usd = model.npv_usd(draws)
    stats = summarize_samples(npv_usd)
    print(
        f"{candidate.name} against {baseline.name} over 3 years: median NPV "
        f"${stats['p50'] / 1e6:,.1f} M, positive in {stats['prob_positive']:.0%} of 400 futures"
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    png = histogram_png(
        np.asarray(npv_usd) / 1e6,
        title=f"NPV of {candidate.name} against {baseline.name} (3 years)",
        xlabel="NPV ($M)",
        markers={"median": stats["p50"] / 1e6, "break-even": 0.0},
    )
    (out_dir / "npv.png").write_bytes(png)
    print(f"plot written to {out_dir / 'npv.png'}")
    return {"racks": sized, "npv_usd": stats}


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
