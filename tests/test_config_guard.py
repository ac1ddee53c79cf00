"""The config guard: configs are data (issue 14, items 1 and 6).

The corpus in ``tests/data/guard_bypass.yaml`` holds attempts to make a config run code, import a
module or write a file; each is run through :func:`planner.cli.common.run_guarded` in process (the
entry point every console script calls) and must exit 2 with one line on stderr, the entry point
never called and nothing written. A handful also run as real console scripts. The documented
launchers, sweepers, samplers and scenarios must still pass.
"""

from __future__ import annotations

import errno
import importlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra._internal.utils import _locate

from planner.cli import common, guard
from planner.specs.errors import ConfigError

DATA = Path(__file__).parent / "data" / "guard_bypass.yaml"
CORPUS: list[dict[str, Any]] = yaml.safe_load(DATA.read_text(encoding="utf-8"))
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class App:
    module: str
    config_name: str


APPS = {
    "planner": App("planner.cli.simulate", "planner"),
    "planner-size": App("planner.cli.size", "size"),
    "planner-roi": App("planner.cli.roi", "roi"),
    "planner-roofline": App("planner.cli.roofline", "roofline"),
}


def _fill(text: str, tmp: Path, conf_dir: Path) -> str:
    return text.replace("{tmp}", str(tmp)).replace("{cd}", str(conf_dir))


def _prepare(case: dict[str, Any], tmp: Path) -> list[str]:
    """Write the case's config files under ``tmp/conf`` and return its argv."""
    conf_dir = tmp / "conf"
    conf_dir.mkdir()
    for name, text in (case.get("files") or {}).items():
        path = conf_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(text, tmp, conf_dir), encoding="utf-8")
    return [_fill(arg, tmp, conf_dir) for arg in case["argv"]]


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def _run_guarded_in_process(cli: str, argv: list[str]) -> list[list[str]]:
    """Call the CLI's guard as its ``main()`` does; returns the argv the app would have run with."""
    app = APPS[cli]
    module = importlib.import_module(app.module)
    calls: list[list[str]] = []

    def main() -> None:
        calls.append(list(sys.argv))

    main.__module__ = module.__name__  # a relative --config-path resolves as for the real app
    common.run_guarded(main, argv, module.GROUPS, app.config_name)
    return calls


def test_corpus_is_large_and_spans_every_cli() -> None:
    assert len(CORPUS) >= 25
    assert {case["cli"] for case in CORPUS} == set(APPS)
    assert len({case["id"] for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[case["id"] for case in CORPUS])
def test_bypass_attempt_is_refused(
    case: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = _prepare(case, tmp_path)
    before = _files(tmp_path)
    monkeypatch.chdir(tmp_path)  # a default run directory would land here
    monkeypatch.setattr(sys, "argv", [case["cli"]])
    with pytest.raises(SystemExit) as exit_info:
        _run_guarded_in_process(case["cli"], argv)
    assert exit_info.value.code == common.EXIT_BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {case['field']}"), lines[0]
    assert "Traceback" not in lines[0]
    assert _files(tmp_path) == before  # no run directory, no victim, no temporary file
    for victim in case.get("victims") or []:
        assert not (tmp_path / victim).exists()


def test_reexported_targets_are_live_without_the_guard() -> None:
    """The corpus aims at real objects: a string-prefix check would have let them through."""
    import os as os_module
    import shutil

    assert _locate("planner.app.files.shutil.copy") is shutil.copy
    assert _locate("planner.app.files.os.system") is os_module.system
    assert _locate("planner.app.files.shutil.os.system") is os_module.system
    assert callable(_locate("planner.app.files.atomic_write_text"))
    assert callable(_locate("planner.app.files.Path.write_text"))


SUBPROCESS_CASES = [
    "pth-chain-atomic-writer-config-dir-equals",
    "pth-chain-logging-file",
    "config-path-standalone",
    "multirun-group-sweep-second-value",
    "callback-shutil-reexport",
]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_console_script_refuses_bypass(case_id: str, tmp_path: Path) -> None:
    case = next(c for c in CORPUS if c["id"] == case_id)
    argv = _prepare(case, tmp_path)
    before = _files(tmp_path)
    proc = subprocess.run(
        [str(BIN / case["cli"]), *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(common.__file__).parents[2])},
    )
    assert proc.returncode == common.EXIT_BAD_INPUT, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {case['field']}"), proc.stderr
    assert proc.stdout == ""
    assert _files(tmp_path) == before
    for victim in case.get("victims") or []:
        assert not (tmp_path / victim).exists()


DOCUMENTED = [
    ("planner", ["workload.n_trees=5"]),
    ("planner", ["-m", "fleet.pools.gpu.racks=1,2,4,8", "hydra/launcher=joblib"]),
    (
        "planner",
        [
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "fleet.pools.gpu.racks=1,2,3,4",
            "workload.arrivals.rate_per_s=0.5,1.0",
        ],
    ),
    ("planner", ["-m", "hydra/launcher=submitit_local", "fleet.pools.gpu.racks=1,2"]),
    (
        "planner",
        [
            "-m",
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=cpu",
            "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=8",
            "hydra.launcher.timeout_min=60",
            "hydra.launcher.array_parallelism=64",
            'hydra.launcher.setup=["source /shared/planner/.venv/bin/activate"]',
            "hydra.sweep.dir=/shared/sweeps/racks",
            "fleet.pools.gpu.racks=range(1,17)",
            "workload.arrivals.rate_per_s=0.5,1,2,4",
            "+hydra.launcher.additional_parameters.mail_type=FAIL",
        ],
    ),
    (
        "planner",
        [
            "-m",
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
            "fleet.pools.gpu.racks=1,2",
        ],
    ),
    (
        "planner",
        [
            "-m",
            "hydra/launcher=ray",
            "hydra.launcher.ray.init.address=ray://head:10001",
            "+hydra.launcher.ray.remote.num_cpus=1",
            "fleet.pools.gpu.racks=1,2",
        ],
    ),
    ("planner", ["--config-name", "optuna_fleet_mix", "-m"]),
    (
        "planner",
        [
            "--config-name=optuna_fleet_mix",
            "-m",
            "hydra.sweeper.n_trials=40",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "hydra.sweeper.storage=sqlite:///fleet_mix.db",
        ],
    ),
    (
        "planner",
        [
            "-m",
            "workload.arrivals.rate_per_s=0.5,1,2",
            "fleet.pools.gpu.racks=1,2",
            "hydra.callbacks.sweep_summary.metric=calls.ttft_s.p99",
        ],
    ),
    ("planner-size", ["-m", "demand.trees_per_s=1,2"]),
    ("planner-size", ["-m", "seed=range(0,1000)"]),  # plain values: no composition each
    ("planner", ["-m", "fleet=glob(*)", "workload.n_trees=5"]),
    ("planner-roi", ["-m", "seed=0,1"]),
    ("planner-roofline", []),
] + [
    ("planner", ["-m", "hydra/sweeper=optuna", f"hydra/sweeper/sampler={sampler}"])
    for sampler in ("tpe", "random", "cmaes", "grid", "nsgaii", "motpe")
]


@pytest.mark.parametrize("cli,argv", DOCUMENTED, ids=[" ".join(a) or c for c, a in DOCUMENTED])
def test_documented_targets_pass(
    cli: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [cli])
    calls = _run_guarded_in_process(cli, argv)
    assert calls == [[cli, *argv]]


def _scenario_cli(path: Path) -> str:
    first = yaml.safe_load(path.read_text(encoding="utf-8"))["defaults"][0]
    return {"planner": "planner", "size": "planner-size", "roi": "planner-roi"}[first]


SCENARIOS = sorted(common.SCENARIO_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_passes(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    cli = _scenario_cli(path)
    monkeypatch.setattr(sys, "argv", [cli])
    assert len(_run_guarded_in_process(cli, [f"scenario={path.stem}"])) == 1


def _refusal(cli: str, argv: list[str]) -> ConfigError:
    app = APPS[cli]
    module = importlib.import_module(app.module)
    with pytest.raises(ConfigError) as error_info:
        arguments = common.scenario_arguments(argv)
        common.precompose(arguments, app.config_name, module._app)
    return error_info.value


@pytest.mark.parametrize(
    "cli,argv,message",
    [
        ("planner", ["+sead=1"], "sead: unknown key; did you mean seed?"),
        ("planner", ["sead=1"], "sead: unknown key; did you mean seed?"),
        ("planner", ["slo.ttft=1"], "slo.ttft: unknown key; did you mean ttft_s?"),
        ("planner-roi", ["mc.sampels=3"], "mc.sampels: unknown key; did you mean samples?"),
        ("planner-size", ["+deman.trees_per_s=1"], "deman: unknown key; did you mean demand?"),
        ("planner-roofline", ["+chip=8"], "chip: unknown key; did you mean chips?"),
        (
            "planner",
            ["+hydra.callbacks.sweep_summary.metrik=x"],
            "hydra.callbacks.sweep_summary.metrik: unknown key; did you mean metric?",
        ),
        ("planner", ["-m", "+sead=1,2"], "sead: unknown key; did you mean seed?"),
    ],
)
def test_unknown_keys_are_refused_with_a_suggestion(
    cli: str, argv: list[str], message: str
) -> None:
    assert str(_refusal(cli, argv)) == message


def test_top_level_keys_without_close_match_list_the_known_ones() -> None:
    error = _refusal("planner", ["+zzzz=1"])
    assert error.field == "zzzz"
    assert "known keys: " in error.problem and "seed" in error.problem


def test_source_guard_holds_for_hydra_itself() -> None:
    """Installed process-wide, the source guard also stops Hydra's own composition."""
    from hydra._internal.sources_registry import SourcesRegistry

    guard.install_source_guard()
    source_type = SourcesRegistry.instance().resolve("pkg")
    with pytest.raises(ConfigError, match=r"hydra\.searchpath"):
        source_type("test", "pkg://antigravity")
    source_type("test", "pkg://hydra.conf")  # Hydra's own default entry still loads


# Environment errors (issue 14, item 5): one line naming the path, exit 2 for a bad path the user
# gave, exit 1 when the machine failed (disk full); nothing left behind.


@pytest.mark.parametrize(
    "cli,argv,field",
    [
        ("planner", ["hydra.run.dir=/proc/planner_guard_test"], "hydra.run.dir"),
        ("planner-size", ["hydra.run.dir={tmp}/a_file/run"], "hydra.run.dir"),
        ("planner-roofline", ["hydra.run.dir={tmp}/a_file"], "hydra.run.dir"),
        (
            "planner-size",
            ["-m", "seed=1,2", "hydra.sweep.dir={tmp}/a_file/sweep"],
            "hydra.sweep.dir",
        ),
        ("planner-roi", ["cache_dir={tmp}/a_file/cache", "hydra.run.dir={tmp}/run"], "cache_dir"),
    ],
)
def test_bad_output_directory_is_one_line(
    cli: str,
    argv: list[str],
    field: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "a_file").write_text("in the way\n", encoding="utf-8")
    before = _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [cli])
    with pytest.raises(SystemExit) as exit_info:
        _run_guarded_in_process(cli, [arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    assert exit_info.value.code == common.EXIT_BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: cannot write "), lines
    assert "Not a directory" in lines[0] or "No such file or directory" in lines[0]
    assert _files(tmp_path) == before
    assert not Path("/proc/planner_guard_test").exists()


def test_atomic_writer_reports_a_full_disk_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(*_: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("planner.app.files.os.replace", full_disk)
    target = tmp_path / "summary.json"
    with pytest.raises(OSError) as error_info:
        common.atomic_write_json(target, {"a": 1})
    assert error_info.value.errno == errno.ENOSPC
    assert error_info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


INJECT_FULL_DISK = """
import errno, os
_replace = os.replace
def replace(src, dst, *args, **kwargs):
    if str(dst).endswith("summary.json"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _replace(src, dst, *args, **kwargs)
os.replace = replace
"""


def test_full_disk_exits_1_with_one_line_and_no_temporary_files(tmp_path: Path) -> None:
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT_FULL_DISK, encoding="utf-8")
    run_dir = tmp_path / "run"
    worktree = Path(common.__file__).parents[2]
    proc = subprocess.run(
        [str(BIN / "planner-roofline"), f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{inject}{os.pathsep}{worktree}"},
    )
    assert proc.returncode == common.EXIT_MACHINE_FAILED, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: {run_dir / 'summary.json'}: {os.strerror(errno.ENOSPC)}"]
    assert not run_dir.exists()  # Hydra's files and the temporary file removed, then the dir
