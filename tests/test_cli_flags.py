"""Hydra's own flags work as Hydra documents them, for all four console scripts.

Issue 9 item 4: ``--cfg job``, ``-c job``, ``--info``, ``--shell-completion install=bash``,
``--help`` and ``--hydra-help``; nothing runs and no run directory is created. In-process
(tests/cli_runner.py); the console scripts' own start-up is covered by the subprocess tests of
test_startup.py and test_packaging.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.cli_runner import run_cli

SCRIPTS = ("planner", "planner-size", "planner-roi", "planner-roofline")


@pytest.mark.parametrize("script", SCRIPTS)
def test_hydra_flags(script: str, tmp_path: Path) -> None:
    for flag in ("--cfg", "-c"):
        shown = run_cli(script, [flag, "job"], cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        job = yaml.safe_load(shown.stdout)  # the job's config, without Hydra's own node
        assert isinstance(job, dict) and job and "hydra" not in job
    info = run_cli(script, ["--info"], cwd=tmp_path)
    assert info.returncode == 0 and "Installed Hydra Plugins" in info.stdout, info.stderr
    install = run_cli(script, ["--shell-completion", "install=bash"], cwd=tmp_path)
    assert install.returncode == 0, install.stderr
    assert "complete -o nospace -o default -F hydra_bash_completion " + script in install.stdout
    helped = run_cli(script, ["--help"], cwd=tmp_path)
    assert helped.returncode == 0 and "== Configuration groups ==" in helped.stdout, helped.stderr
    hydra_help = run_cli(script, ["--hydra-help"], cwd=tmp_path)
    assert hydra_help.returncode == 0 and "--shell-completion" in hydra_help.stdout
    assert list(tmp_path.iterdir()) == []  # no run directory, no outputs


@pytest.mark.parametrize(
    "args",
    [
        ["--shell-completion", "install=tcsh"],
        ["--shell-completion", "install=bash", "seed=1"],
        ["--shell-completion"],
    ],
)
def test_shell_completion_outside_hydras_forms_is_one_line_exit_2(
    args: list[str], tmp_path: Path
) -> None:
    proc = run_cli("planner", args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --shell-completion: takes one of")


def test_completion_query_completes_a_group(tmp_path: Path) -> None:
    """The installed bash function calls ``-sc query=bash`` with COMP_LINE: it must answer."""
    proc = run_cli(
        "planner",
        ["--shell-completion", "query=bash"],
        cwd=tmp_path,
        env={**os.environ, "COMP_LINE": "planner fleet="},
    )
    assert proc.returncode == 0, proc.stderr
    assert "fleet=gb200_llama70b" in proc.stdout.split()


def test_multirun_flag_after_the_overrides_sweeps(tmp_path: Path) -> None:
    """Issue 10's interface: ``... concurrency=... -m concurrency=4,16,64`` style calls.

    Hydra's parser refuses overrides after ``-m`` ("unrecognized arguments"); the flag is
    hoisted to the front, so both orders run the same sweep.
    """
    base = [
        "model=deepseek_r1",
        "hardware=h200",
        "precision=fp8",
        "stack=trtllm",
        "tp=8",
        "ep=8",
        "dp_attention=false",
        "isl=1024",
        "osl=1024",
    ]
    orders = (["-m", *base, "concurrency=4,16"], [*base, "-m", "concurrency=4,16"])
    for index, order in enumerate(orders):
        sweep_dir = tmp_path / str(index)
        proc = run_cli("planner-roofline", [*order, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        summaries = sorted(sweep_dir.glob("*/summary.json"))
        assert len(summaries) == 2
        batches = [yaml.safe_load(p.read_text())["at_concurrency"]["batch"] for p in summaries]
        assert sorted(batches) == pytest.approx([4, 16], rel=0.1)  # mean decode batch


def test_only_a_refused_multirun_flag_is_moved() -> None:
    from planner.cli.common import hoist_multirun_flag

    accepted = ["--config-name", "optuna_fleet_mix", "-m"]
    assert hoist_multirun_flag(accepted) == accepted
    assert hoist_multirun_flag(["a=1", "-m", "b=2"]) == ["-m", "a=1", "b=2"]
    assert hoist_multirun_flag(["a=1", "--multirun", "b=2"]) == ["-m", "a=1", "b=2"]
    assert hoist_multirun_flag(["a=1", "b=2"]) == ["a=1", "b=2"]
