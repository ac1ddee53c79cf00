"""``make bench``: speed of the planner's hot paths, as medians of several runs.

Writes ``benchmarks/results.json`` (one section per subsystem; sections are merged, so each
benchmark keeps the others' last figures) and prints a table. Timings are wall-clock on a shared
machine: compare ratios measured in one run, not figures from different days.

Sections:
    engine.subcalls_per_s: simulated sub-calls per wall-second on the reference run (see
        benchmarks/engine_reference.py: 1,000,000 sub-calls, mean fan-out 25, 16 replicas, ~62%
        utilization), median of 3 fresh processes; engine.subcalls_per_cpu_s the same per
        CPU-second of the process (what to compare on a loaded machine).
    engine.peak_rss_mb: peak resident memory of those processes, MB (median), i.e. per
        ~1M sub-calls.
    engine.utilization: replica utilization of the reference run (a check on the setup).
    engine.load_average: the machine's 1-minute load average when the engine runs started.
    engine.native: whether the engine ran compiled (``compiled``: make built the mypyc
        extensions, planner/native.py) or as Python (``python``, ``stale``, ``disabled``).
    engine.scaling.<k>x: calls, wall_s, cpu_s, calls_per_s, calls_per_cpu_s, peak_rss_mb,
        events_per_call, events_per_cpu_s (SimPy events), ratio (calls_per_s against 1x),
        ratio_cpu and ratio_events_cpu at k = 1, 10, 100, 1000 times the
        reference fleet and load (benchmarks/engine_scaling.py; each scale the median of 5
        fresh processes run in rounds over the scales, 1000x over a 10x shorter window).
    montecarlo.seconds_for_10000_samples: wall time of ``planner-roi`` with 10,000 samples on
        2 joblib workers once its capacity curves are cached (no Monte Carlo checkpoint reused),
        median of 3 runs; the whole command, Python start-up included.
    perf.step_time_calls_per_s: GpuReplica.step_time_s calls per second (the simulator calls it
        once per batch change), Qwen3.5-397B DEP8 on GB200 NVL72.
    perf.lpu_step_time_calls_per_s: the same for an LPU replica (Llama-3-70B on LPU v1).
    perf.calibration_fit_s: wall time of the full calibration fit (scripts/calibrate.py).
    startup.help_s, startup.tiny_run_s, startup.peer_setting_s: wall time of whole ``planner``
        processes (``--help``; ``workload.n_trees=5``; the 10,000-request Vidur/SplitwiseSim
        peer setting ``fleet=h100_llama2_70b_tp4 workload=peer_poisson``), median of 5 fresh
        processes each (benchmarks/startup.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from planner import config  # noqa: E402
from planner.perf.replica import build_replica  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results.json"
REPEATS = 5


def _load(kind: str, name: str) -> dict:
    return config.load_named(kind, name, kind)


def median_seconds(fn: Callable[[], None], repeats: int = REPEATS) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, s."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_perf() -> dict[str, float]:
    """Step-time calls per second (GPU and LPU replicas) and the calibration fit's wall time."""
    gpu = build_replica(
        config.model(_load("model", "qwen35_397b_a17b")),
        config.system(_load("hardware", "gb200_nvl72")),
        config.efficiency("nvidia_gpu"),
        precision="fp8",
        tp=8,
        ep=8,
        dp_attention=True,
    )
    lpu = build_replica(
        config.model(_load("model", "llama3_70b")),
        config.system(_load("hardware", "groq_lpu_v1")),
        config.efficiency("groq_lpu"),
        precision="int8",
    )
    calls = 20_000

    def gpu_loop() -> None:
        for batch in range(1, calls + 1):
            gpu.step_time_s(batch % 256 + 1, (batch % 256 + 1) * 3000.0, 512.0, 1e12)

    def lpu_loop() -> None:
        for batch in range(1, calls + 1):
            lpu.step_time_s(batch % 64 + 1, (batch % 64 + 1) * 3000.0)

    spec = importlib.util.spec_from_file_location("calibrate", ROOT / "scripts" / "calibrate.py")
    assert spec is not None and spec.loader is not None
    calibrate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(calibrate)
    rows, points = calibrate.load_rows(), calibrate.load_points()

    return {
        "step_time_calls_per_s": calls / median_seconds(gpu_loop),
        "lpu_step_time_calls_per_s": calls / median_seconds(lpu_loop),
        "calibration_fit_s": median_seconds(lambda: calibrate.fit_all(rows, points), repeats=3),
    }


def bench_engine(runs: int = 3) -> dict[str, Any]:
    """The engine reference run, each in a fresh process (so peak RSS is per run), and scaling."""
    load_average = os.getloadavg()[0]
    script = ROOT / "benchmarks" / "engine_reference.py"
    reports = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, check=True
        ).stdout
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "subcalls_per_s": statistics.median(r["subcalls_per_s"] for r in reports),
        "subcalls_per_cpu_s": statistics.median(r["subcalls_per_cpu_s"] for r in reports),
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in reports),
        "utilization": statistics.median(r["utilization"] for r in reports),
        "subcalls": float(reports[0]["subcalls"]),
        "wall_s": statistics.median(r["wall_s"] for r in reports),
        "load_average": load_average,
        "native": reports[0]["native"],
        "scaling": bench_engine_scaling(),
    }


def bench_engine_scaling() -> dict[str, dict[str, float]]:
    """benchmarks/engine_scaling.py: per scale (``1x`` ... ``1000x``) its figures."""
    script = ROOT / "benchmarks" / "engine_scaling.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    report: dict[str, dict[str, float]] = json.loads(out.stdout.strip().splitlines()[-1])
    keys = (
        "calls subcalls wall_s cpu_s calls_per_s calls_per_cpu_s events_per_call events_per_cpu_s"
        " peak_rss_mb ratio ratio_cpu ratio_events_cpu"
    )
    return {scale: {key: figures[key] for key in keys.split()} for scale, figures in report.items()}


def bench_montecarlo(runs: int = 3) -> dict[str, float]:
    """planner-roi at 10,000 samples with warm capacity curves and a cold Monte Carlo cache."""
    import shutil
    import tempfile

    script = Path(sys.executable).parent / "planner-roi"
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        args = [
            str(script),
            f"cache_dir={cache}",
            "mc.samples=10000",
            "mc.n_jobs=2",
            "mc.backend=joblib",
            f"hydra.run.dir={tmp}/run",
        ]
        subprocess.run(args, capture_output=True, check=True)  # measures and caches the curves
        times = []
        for _ in range(runs):
            shutil.rmtree(cache / "montecarlo", ignore_errors=True)
            start = time.perf_counter()
            subprocess.run(args, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
    return {"seconds_for_10000_samples": statistics.median(times)}


def bench_startup(runs: int = 5) -> dict[str, float]:
    """benchmarks/startup.py: medians of ``runs`` fresh ``planner`` processes per command."""
    script = ROOT / "benchmarks" / "startup.py"
    out = subprocess.run(
        [sys.executable, str(script), "--runs", str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return {key: report[key] for key in ("help_s", "tiny_run_s", "peer_setting_s")}


BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "startup": lambda: bench_startup(),
    "perf": lambda: bench_perf(),
    "engine": lambda: bench_engine(),
    "montecarlo": lambda: bench_montecarlo(),
}


def _rows(prefix: str, figures: dict[str, Any]) -> list[tuple[str, float | str]]:
    rows: list[tuple[str, float | str]] = []
    for name, value in sorted(figures.items()):
        if isinstance(value, dict):
            rows += _rows(f"{prefix}.{name}", value)
        else:
            rows.append((f"{prefix}.{name}", value))
    return rows


def main() -> None:
    """Run the benchmarks (all, or ``--only`` some sections) and merge them into results.json."""
    parser = argparse.ArgumentParser(description="make bench: the planner's hot paths")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(BENCHMARKS),
        help="run only these sections (the others keep their figures)",
    )
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.pop("engine_scaling", None)  # now engine.scaling
    for section in args.only or list(BENCHMARKS):
        results[section] = BENCHMARKS[section]()
        RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"{'benchmark':48} {'median':>16}")
    for section, figures in sorted(results.items()):
        for name, value in _rows(section, figures):
            shown = value if isinstance(value, str) else f"{value:,.3f}"
            print(f"{name:48} {shown:>16}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
