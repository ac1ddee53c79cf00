"""``examples/size_and_roi.py``: the Python API alone, without Hydra or OmegaConf.

The Python API alone sizes fleets, runs a small ROI study and writes a plot, without Hydra or
OmegaConf ever being imported (issue 9 item 6).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "size_and_roi.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Runs the script as `python examples/size_and_roi.py OUT` would (runpy, __main__), then reports
# which modules the process holds, so the test can check Hydra/OmegaConf were never imported.
RUNNER = """
import json, runpy, sys
sys.argv = [{script!r}, {out!r}]
runpy.run_path({script!r}, run_name="__main__")
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


def test_example_sizes_runs_roi_and_plots_without_hydra(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER.format(script=str(EXAMPLE), out=str(out))],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    modules = set(json.loads(lines[-1]))
    assert "planner" in modules and "numpy" in modules
    assert not modules & {"hydra", "omegaconf"}, modules & {"hydra", "omegaconf"}
    text = "\n".join(lines[:-1])
    assert "gpu_only: {'gpu': " in text and "racks at 20.0 trees/s (feasible: True)" in text
    assert "median NPV " in text and "of 400 sampled futures" in text
    assert (out / "npv.png").read_bytes().startswith(PNG_SIGNATURE)
