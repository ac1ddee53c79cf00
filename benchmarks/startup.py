"""Start-up benchmark: wall time of whole ``planner`` processes, Python start-up included.

Three commands, each run ``--runs`` times as a fresh process (the median is reported), after
one untimed run of each (bytecode caches written, as an installed planner has them):

* ``help_s``: ``planner --help``.
* ``tiny_run_s``: ``planner workload.n_trees=5`` (the default fleet and workload, five trees,
  report and per-call table written).
* ``peer_setting_s``: the Vidur / SplitwiseSim peer setting, ``planner
  fleet=h100_llama2_70b_tp4 workload=peer_poisson`` (10,000 requests of 512 prompt and 256
  output tokens, Poisson 20/s, Llama-2-70B on four H100 TP4 replicas, round robin).

Usage::

    python benchmarks/startup.py                     # this checkout's planner (see --planner)
    python benchmarks/startup.py --runs 7
    python benchmarks/startup.py --planner /work/main/.venv/bin/planner --pythonpath ''

``--pythonpath`` sets PYTHONPATH for the measured processes (default: this checkout, so its
``planner`` package is the one imported; ``''`` unsets it, e.g. to time another checkout's
editable install). Prints one JSON object ``{help_s, tiny_run_s, peer_setting_s, runs}``.
Not part of the test suite (no timed assertions); ``benchmarks/run.py`` records it under
``startup``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS: dict[str, list[str]] = {
    "help_s": ["--help"],
    "tiny_run_s": ["workload.n_trees=5"],
    "peer_setting_s": ["fleet=h100_llama2_70b_tp4", "workload=peer_poisson"],
}


def time_command(planner: str, args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one fresh ``planner`` process, s (it must exit 0)."""
    start = time.perf_counter()
    subprocess.run([planner, *args], env=env, cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - start


def measure(planner: str, pythonpath: str | None, runs: int) -> dict[str, float]:
    """Median wall time of each command over ``runs`` fresh processes, s.

    The commands are interleaved (help, tiny, peer, help, ...) so that a burst of load on a
    shared machine spreads over all three rather than landing on one.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    # An installed planner imports cached bytecode (pip compiles it; an editable install writes
    # __pycache__ on first import). A shell that sets PYTHONDONTWRITEBYTECODE would make every
    # timed process compile its imports again (~0.2 s on `--help`), which no user pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in COMMANDS.items():  # warm-up, not timed: writes the bytecode caches
            extra = [] if name == "help_s" else [f"hydra.run.dir={Path(tmp) / f'{name}-warm'}"]
            time_command(planner, [*args, *extra], env, Path(tmp))
        for i in range(runs):
            for name, args in COMMANDS.items():
                run_dir = Path(tmp) / f"{name}-{i}"
                extra = [] if name == "help_s" else [f"hydra.run.dir={run_dir}"]
                times[name].append(time_command(planner, [*args, *extra], env, Path(tmp)))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    """Time the start-up commands (``--runs`` fresh processes each) and print their medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command")
    parser.add_argument(
        "--planner",
        default=str(Path(sys.executable).parent / "planner"),
        help="the planner console script to time",
    )
    parser.add_argument(
        "--pythonpath", default=str(ROOT), help="PYTHONPATH of the timed processes ('' unsets)"
    )
    args = parser.parse_args()
    figures = measure(args.planner, args.pythonpath or None, args.runs)
    print(json.dumps({**figures, "runs": float(args.runs)}))


if __name__ == "__main__":
    main()
