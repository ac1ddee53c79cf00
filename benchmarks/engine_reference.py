"""One run of the engine's reference benchmark; prints a JSON line (run by ``benchmarks/run.py``).

The reference (issue "discrete-event engine"): agent trees with mean fan-out 25 (planner ->
10..40 sub-calls in one wave -> aggregate), Poisson arrivals at 0.5 trees/s (62% replica
utilization as measured with the current cost model; the issue aimed at ~70%), 16 replicas
(Llama-3-70B FP8, TP2, one H200 rack of 32 GPUs), 1,000,000 sub-calls (40,000 trees).
Run in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from planner import config, native  # noqa: E402
from planner.sim.config import BatchingSpec, FleetSpec, PoolSpec  # noqa: E402
from planner.sim.engine import WorkloadSpec, simulate  # noqa: E402
from planner.workload import (  # noqa: E402
    CallLengths,
    DelayLaw,
    FanoutShape,
    LengthLaw,
    PoissonArrivals,
    SharedPrefix,
)
from planner.workload.trees import SUBCALL  # noqa: E402

TREES = 40_000
TREES_PER_S = 0.5  # 62% busy on 16 replicas with these call sizes (measured)


def reference_pool_and_shape(replicas: int = 16) -> tuple[PoolSpec, FanoutShape]:
    """The reference pool (``replicas`` x Llama-3-70B TP2 on H200) and its fan-out tree shape.

    ``benchmarks/engine_scaling.py`` scales the same pool and load, so both benchmarks measure
    one workload.
    """

    def load(kind: str, name: str) -> dict[str, object]:
        return config.load_named(kind, name, kind)

    pool = PoolSpec(
        name="gpu",
        role="unified",
        system=config.system(load("hardware", "h200")),
        model=config.model(load("model", "llama3_70b")),
        efficiency=config.efficiency("nvidia_gpu"),
        racks=1,
        precision="fp8",
        tp=2,
        replicas=replicas,
        batching=BatchingSpec(max_batch=256, token_budget=4096, prefix_cache_fraction=0.0),
    )
    calls = CallLengths(
        LengthLaw.lognormal(1000, sigma=0.5, max_value=8000),
        LengthLaw.lognormal(100, sigma=0.8, max_value=2000),
    )
    shape = FanoutShape(
        n_subcalls=LengthLaw.uniform(10, 40),
        waves=1,
        planner=calls,
        subcall=calls,
        aggregate=calls,
        tool_delay=DelayLaw.fixed(0.0),
        append_parent_outputs=False,
        shared_prefix=SharedPrefix(),
    )
    return pool, shape


def main() -> None:
    """Run the reference (``argv[1]`` trees, default 40,000) and print its JSON figures."""
    trees = int(sys.argv[1]) if len(sys.argv) > 1 else TREES
    pool, shape = reference_pool_and_shape()
    workload = WorkloadSpec(PoissonArrivals(rate_per_s=TREES_PER_S), shape, n_trees=trees)
    cpu_start = time.process_time()
    start = time.perf_counter()
    result = simulate(FleetSpec(pools=(pool,)), workload, seed=0)
    wall_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    subcalls = int((result.trees.kind == SUBCALL).sum())
    print(
        json.dumps(
            {
                "subcalls": subcalls,
                "calls": int(result.trees.n_calls),
                "wall_s": wall_s,
                "cpu_s": cpu_s,
                "subcalls_per_s": subcalls / wall_s,
                "subcalls_per_cpu_s": subcalls / cpu_s,
                "events_per_call": result.events / result.trees.n_calls,
                "utilization": float(result.pools[0].busy_s.sum() / (16 * result.sim_time_s)),
                "tree_e2e_p99_s": float(
                    np.percentile(result.tree_finish_s - result.tree_arrival_s, 99)
                ),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                "native": native.status(),
                "compiled": native.running_compiled(),
            }
        )
    )


if __name__ == "__main__":
    main()
