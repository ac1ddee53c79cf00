"""The package installs as a wheel and runs from any directory, conf/ and scenarios/ included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "planner").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found <= listed, f"missing from [tool.setuptools] packages: {sorted(found - listed)}"
    assert {"planner.conf", "planner.scenarios"} <= listed


@pytest.mark.slow
def test_wheel_install_runs_the_four_console_scripts_from_an_unrelated_directory(
    tmp_path: Path,
) -> None:
    """A fresh virtualenv, a non-editable ``pip install .``, each console script run elsewhere.

    The fresh environment borrows this environment's third-party packages through a ``.pth``
    line instead of downloading them again (the dependency list itself is pip's business); the
    planner package, its configs and scenarios come from the wheel alone: the editable finder of
    the development install is not loaded there (a ``.pth`` line adds a path, not its hooks).
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    site = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
    )
    borrowed = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "borrowed-dependencies.pth").write_text("\n".join(borrowed) + "\n")
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PLANNER_CACHE_DIR"] = str(tmp_path / "cache")
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import planner.cli.common as c; print(c.CONF_DIR)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout

    commands = {
        "planner": ["workload.n_trees=5"],
        "planner-roofline": ["model=llama3_70b", "hardware=h100", "tp=4", "ep=1"],
        "planner-size": ["demand.n_trees=300", "demand.trees_per_s=40"],
        "planner-roi": [
            "roi.n_trees=600",
            "roi.curve_points=4",
            "mc.samples=200",
            "mc.chunk_size=100",
        ],
    }
    for script, args in commands.items():
        run_dir = elsewhere / script
        result = subprocess.run(
            [str(venv / "bin" / script), f"hydra.run.dir={run_dir}", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, (script, result.stderr[-2000:])
        assert json.loads((run_dir / "summary.json").read_text()), script
    scenario = subprocess.run(
        [
            str(venv / "bin" / "planner"),
            "scenario=hybrid_lpu_decode",
            "workload.n_trees=5",
            f"hydra.run.dir={elsewhere / 'scenario'}",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert scenario.returncode == 0, scenario.stderr[-2000:]
    assert list((tmp_path / "cache").rglob("*.json")), "planner-roi did not use the user cache"
