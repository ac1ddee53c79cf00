"""Region cells: one pooled fleet against the same fleet as N cells, serial and on joblib.

The fleet and load are ``benchmarks/engine_reference.py``'s scaled ``k`` times (``k`` H200 racks
of 16 Llama-3-70B TP2 replicas, agent trees of mean fan-out 25 at ``0.5 k`` trees/s). Three runs
of one drawn workload (the same seed): the pooled fleet (``simulate``), N cells one after
another (``run.cells_backend=serial``) and N cells on joblib workers. The serial and joblib
merged summaries must be equal (apart from the wall time); the pooled run shows what cell
isolation costs in tail latency at that load.

Usage::

    python benchmarks/cells.py                           # 8x, 4 cells, 8,000 trees
    python benchmarks/cells.py --scale 16 --cells 8 --trees 16000 --jobs 2

Prints one JSON object and writes it to ``benchmarks/cells.json``: per run ``wall_s``,
``calls_per_s`` and the p99s of call TTFT and tree end-to-end latency, plus ``calls``,
``replicas``, ``cpus``, the 1-minute load average before and after, and
``serial_equals_joblib``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TREES_PER_S_1X = 0.5


def _figures(summary: dict[str, Any], wall_s: float, calls: int) -> dict[str, float]:
    return {
        "wall_s": wall_s,
        "calls_per_s": calls / wall_s,
        "ttft_p99_s": summary["calls"]["ttft_s"]["p99"],
        "tree_e2e_p99_s": summary["trees"]["e2e_s"]["p99"],
        "busy_fraction": summary["pools"]["gpu"]["busy_fraction"],
    }


def measure(scale: int, cells: int, trees: int, jobs: int) -> dict[str, Any]:
    """The three runs (module docstring) and their figures."""
    from engine_reference import reference_pool_and_shape

    from planner.app.cells import simulate_cells
    from planner.sim.config import FleetSpec, SloSpec
    from planner.sim.engine import WorkloadSpec, simulate
    from planner.sim.metrics import summarize
    from planner.workload import PoissonArrivals

    pool, shape = reference_pool_and_shape(replicas=16)
    pool = replace(pool, name="gpu", racks=scale, replicas=None)
    fleet = FleetSpec(pools=(pool,))
    workload = WorkloadSpec(PoissonArrivals(rate_per_s=TREES_PER_S_1X * scale), shape, trees)
    slo = SloSpec()
    out: dict[str, Any] = {"scale": scale, "cells": cells, "trees": trees, "jobs": jobs}
    out["load_average_before"] = os.getloadavg()[0]  # the machine may be shared: say how busy
    summaries = {}
    runs = {
        "pooled": partial(simulate, fleet, workload, seed=0),
        "cells_serial": partial(
            simulate_cells, fleet, workload, seed=0, cells=cells, backend="serial"
        ),
        "cells_joblib": partial(
            simulate_cells, fleet, workload, seed=0, cells=cells, backend="joblib", n_jobs=jobs
        ),
    }
    for name, run in runs.items():
        start = time.perf_counter()
        result = run()
        wall_s = time.perf_counter() - start
        summary = summarize(result, slo, fleet)
        summaries[name] = summary
        out["calls"] = int(result.trees.n_calls)
        out["replicas"] = int(sum(p.replicas for p in result.pools))
        out[name] = _figures(summary, wall_s, result.trees.n_calls)
    for summary in summaries.values():
        summary.pop("wall_time_s")
    out["serial_equals_joblib"] = summaries["cells_serial"] == summaries["cells_joblib"]
    out["cpus"] = os.cpu_count()
    out["load_average_after"] = os.getloadavg()[0]
    return out


def main() -> None:
    """Parse the options, measure, print and write ``benchmarks/cells.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=8, help="racks (x the reference fleet)")
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--trees", type=int, default=8000)
    parser.add_argument("--jobs", type=int, default=2, help="joblib workers")
    args = parser.parse_args()
    figures = measure(args.scale, args.cells, args.trees, args.jobs)
    text = json.dumps(figures, indent=2)
    print(text)
    (ROOT / "benchmarks" / "cells.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
