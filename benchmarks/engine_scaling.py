"""Engine scaling: calls per wall-second at 1x, 10x, 100x and 1000x the reference fleet and load.

The reference (``benchmarks/engine_reference.py``): 16 replicas of Llama-3-70B FP8 TP2 (one H200
rack) serving agent trees of mean fan-out 25 at 0.5 trees/s (~62% busy). Scale ``k`` runs
``16 k`` replicas on ``k`` racks at ``0.5 k`` trees/s for the same simulated window (``k`` times
the trees), so a linear engine keeps its calls per wall-second; the 1000x entry simulates a
window ten times shorter (``--short-from`` sets where that starts). Each scale runs in a fresh
process so its peak RSS is its own, ``--repeats`` times (5) in rounds over the scales, and each
figure is the median of its runs (peak RSS: the largest).

Besides wall time each entry records the process's CPU time (``time.process_time``): on a
shared machine the wall clock includes waiting for a core, so ``ratio_cpu`` (calls per
CPU-second against 1x) is the figure to compare across scales; ``ratio`` is the same on wall
time. ``events_per_call`` (SimPy events per call) shows how much of a change is the simulated
dynamics (a tree's burst spread over more idle replicas wakes more of them) rather than the
engine: ``ratio_events_cpu`` compares events per CPU-second.

Usage::

    python benchmarks/engine_scaling.py                       # 1x, 10x, 100x, 1000x
    python benchmarks/engine_scaling.py --scales 1 10         # a quick look
    python benchmarks/engine_scaling.py --trees 2000          # trees at 1x (default 1,000)
    python benchmarks/engine_scaling.py --fixed-trees 40000 --repeats 1   # same calls at every
                                                              # scale (the window shrinks as 1/k)
    python benchmarks/engine_scaling.py --router round_robin  # another fleet.router

``--fixed-trees`` separates the fleet's size from the run's length: every scale simulates the
same trees (so the same calls, per-call arrays of the same size), and only the number of
replicas they share grows.

Prints one JSON object: ``{"<k>x": {calls, subcalls, trees, replicas, wall_s, cpu_s,
calls_per_s, calls_per_cpu_s, events_per_call, events_per_cpu_s, subcalls_per_s, peak_rss_mb,
utilization, sim_time_s, ratio, ratio_cpu, ratio_events_cpu}}``. Not part of the test suite
(no timed assertions); ``benchmarks/run.py`` records it under ``engine.scaling``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TREES_1X = 1000
TREES_PER_S_1X = 0.5
REPLICAS_1X = 16
MEDIAN_KEYS = (
    "wall_s",
    "cpu_s",
    "calls_per_s",
    "calls_per_cpu_s",
    "subcalls_per_s",
    "events_per_cpu_s",
)


def reference_pool_and_shape() -> tuple[Any, Any]:
    """The pool and tree shape of ``benchmarks/engine_reference.py``, at 1x (16 replicas)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from engine_reference import reference_pool_and_shape as reference

    return reference(replicas=REPLICAS_1X)


def measure(scale: int, trees: int, router: str = "least_outstanding") -> dict[str, float]:
    """One scale in this process: build the scaled fleet and workload, simulate, time it."""
    from dataclasses import replace

    import numpy as np

    from planner.sim.config import FleetSpec
    from planner.sim.engine import WorkloadSpec, simulate
    from planner.workload import PoissonArrivals
    from planner.workload.trees import SUBCALL

    pool, shape = reference_pool_and_shape()
    pool = replace(pool, racks=scale, replicas=REPLICAS_1X * scale)
    workload = WorkloadSpec(PoissonArrivals(rate_per_s=TREES_PER_S_1X * scale), shape, trees)
    cpu_start = time.process_time()
    start = time.perf_counter()
    result = simulate(FleetSpec(pools=(pool,), router=router), workload, seed=0)
    wall_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    calls = int(result.trees.n_calls)
    subcalls = int((result.trees.kind == SUBCALL).sum())
    busy = float(result.pools[0].busy_s.sum())
    return {
        "scale": float(scale),
        "replicas": float(pool.replicas or 0),
        "trees": float(trees),
        "calls": float(calls),
        "subcalls": float(subcalls),
        "sim_time_s": result.sim_time_s,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "calls_per_s": calls / wall_s,
        "calls_per_cpu_s": calls / cpu_s,
        "events_per_call": result.events / calls,
        "events_per_cpu_s": result.events / cpu_s,
        "subcalls_per_s": subcalls / wall_s,
        "utilization": busy / (REPLICAS_1X * scale * result.sim_time_s),
        "complete": float(result.complete),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "tree_e2e_p99_s": float(np.percentile(result.tree_finish_s - result.tree_arrival_s, 99)),
    }


def run_one(scale: int, trees: int, router: str) -> dict[str, float]:
    """One scale in a fresh process (so its peak RSS is its own)."""
    out = subprocess.run(
        [sys.executable, __file__, "--router", router, "--one", str(scale), str(trees)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return report


def main() -> None:
    """Measure every scale, print the JSON report (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--trees", type=int, default=TREES_1X, help="trees at 1x")
    parser.add_argument(
        "--short-from",
        type=int,
        default=1000,
        help="scales from this one on simulate a 10x shorter window",
    )
    parser.add_argument(
        "--fixed-trees",
        type=int,
        default=None,
        help="simulate this many trees at every scale (the window shrinks as 1/k)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="processes per scale (median)")
    parser.add_argument("--router", default="least_outstanding", help="fleet.router to run")
    parser.add_argument(
        "--one", type=int, nargs=2, metavar=("SCALE", "TREES"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, router=args.router)))
        return
    # Every scale runs --repeats times, in rounds (1x, 10x, ..., then again), so that a busy
    # spell on a shared host falls on all scales alike; each figure is the median of its runs.
    trees_at: dict[int, int] = {}
    for scale in args.scales:
        trees = args.trees * scale // (10 if scale >= args.short_from else 1)
        trees_at[scale] = args.fixed_trees if args.fixed_trees is not None else trees
    runs: dict[int, list[dict[str, float]]] = {scale: [] for scale in args.scales}
    for _ in range(args.repeats):
        for scale in args.scales:
            runs[scale].append(run_one(scale, trees_at[scale], args.router))
    report: dict[str, dict[str, float]] = {}
    for scale in args.scales:
        entry = dict(runs[scale][0])
        for key in MEDIAN_KEYS:
            entry[key] = statistics.median(run[key] for run in runs[scale])
        entry["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs[scale])
        entry["runs"] = float(len(runs[scale]))
        report[f"{scale}x"] = entry
        print(f"{scale}x: {entry}", file=sys.stderr)
    base = report.get("1x")
    if base is not None:
        for entry in report.values():
            entry["ratio"] = entry["calls_per_s"] / base["calls_per_s"]
            entry["ratio_cpu"] = entry["calls_per_cpu_s"] / base["calls_per_cpu_s"]
            entry["ratio_events_cpu"] = entry["events_per_cpu_s"] / base["events_per_cpu_s"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
