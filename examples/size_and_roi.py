"""Size two fleets and run a small ROI study through the Python API alone (no Hydra).

What a notebook does: read the shipped configs as plain mappings
(:func:`planner.config.load_primary` fills in a primary config's groups, as Hydra would), change
what the study needs, turn them into validated specs (:func:`planner.app.sizing.sizing_spec`,
:func:`planner.app.roi_spec.study_spec`) and call the application layer:
:func:`planner.app.sizing.run_sizing` sizes every fleet option for a demand, with its margin;
:func:`planner.app.roi_study.run_roi_study` samples uncertain futures of the ASIC option against
the GPU baseline. Small on purpose (a few hundred trees per simulation, one replication, 400
sampled futures): under a minute on a laptop core; the figures are an illustration, not a study.

Usage::

    python examples/size_and_roi.py [OUTPUT_DIR]      # writes OUTPUT_DIR/npv.png (default: .)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from planner.app.roi_spec import study_spec
from planner.app.roi_study import run_roi_study
from planner.app.sizing import run_sizing, sizing_spec
from planner.config import load_primary
from planner.report.plots import histogram_png

DEMAND_TREES_PER_S = 20.0
"""The demand the fleets are sized for (agent trees per second)."""


def main(out_dir: Path) -> dict[str, object]:
    """Size the options, run the ROI study, write ``npv.png``; return the figures printed."""
    size_cfg = load_primary("size")  # conf/size.yaml with workload=chat, sizing=..., ...
    size_cfg["demand"] = {"trees_per_s": DEMAND_TREES_PER_S, "n_trees": 300}
    size_cfg["replication"] = {"count": 1, "confidence": 0.95}
    sizing = run_sizing(sizing_spec(size_cfg))
    racks = {o.name: dict(o.racks) for o in sizing.options}
    for option in sizing.options:
        print(
            f"{option.name}: {dict(option.racks)} racks at {DEMAND_TREES_PER_S} trees/s "
            f"(feasible: {option.search.feasible})"
        )

    roi_cfg = load_primary("roi")
    roi_cfg["roi"] |= {"horizon_years": 3, "curve_points": 3, "sensitivity_samples": 64}
    roi_cfg["mc"] |= {"samples": 400, "backend": "serial", "chunk_size": 400}
    roi_cfg["cache_dir"] = tempfile.mkdtemp(prefix="planner-example-")  # a fresh cache
    result = run_roi_study(study_spec(roi_cfg), checkpoint=False)
    stats = result.npv_stats
    print(result.answer())

    out_dir.mkdir(parents=True, exist_ok=True)
    png = histogram_png(
        np.asarray(result.npv_usd) / 1e6,
        title=f"NPV of {result.spec.candidate} against {result.spec.baseline} (3 years)",
        xlabel="NPV ($M)",
        markers={"median": stats["p50"] / 1e6, "break-even": 0.0},
    )
    (out_dir / "npv.png").write_bytes(png)
    print(f"plot written to {out_dir / 'npv.png'}")
    return {"racks": racks, "npv_usd": stats}


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
