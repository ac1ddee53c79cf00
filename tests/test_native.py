"""The compiled engine: make's list of modules, and the guard that ignores a stale build."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from planner import native
from planner.perf.gpu_step import gpu_step_time_s
from planner.sim.engine import _Engine
from planner.workload import ChatShape, TreeFactory
from tests.sim_helpers import gpu_fleet

ROOT = Path(__file__).resolve().parents[1]


def test_makefile_compiles_exactly_the_native_modules() -> None:
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"NATIVE_SOURCES := (.*?)\nNATIVE :=", makefile, re.S)
    assert listed is not None
    sources = listed.group(1).replace("\\", " ").split()
    expected = [str(native.source_path(m).relative_to(ROOT)) for m in native.NATIVE_MODULES]
    assert sources == expected


def test_every_native_module_exists_as_source() -> None:
    for module in native.NATIVE_MODULES:
        assert native.source_path(module).is_file(), module


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Pretend an extension exists for every module; the manifest lives in ``tmp_path``."""
    manifest = tmp_path / "_native_build.json"
    monkeypatch.setattr(native, "MANIFEST", manifest)
    monkeypatch.setattr(native, "extension_paths", lambda module: [Path(f"/x/{module}.so")])
    return manifest


def test_a_build_of_the_current_sources_is_used(built: Path) -> None:
    built.write_text(json.dumps({"sources_sha256": native.sources_digest()}))
    assert native.status() == "compiled"


def test_a_build_of_other_sources_is_stale(built: Path) -> None:
    built.write_text(json.dumps({"sources_sha256": "0" * 64}))
    assert native.status() == "stale"


@pytest.mark.parametrize("text", [None, "not json", '{"failed": "no compiler"}', "[]"])
def test_extensions_without_a_readable_manifest_are_stale(built: Path, text: str | None) -> None:
    if text is not None:
        built.write_text(text)
    assert native.status() == "stale"


def test_without_extensions_everything_is_python(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(native, "extension_paths", lambda module: [])
    monkeypatch.setattr(native, "MANIFEST", tmp_path / "absent.json")
    assert native.status() == "python"


def test_the_digest_changes_with_any_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    copies = {m: tmp_path / f"{m}.py" for m in native.NATIVE_MODULES}
    for module, copy in copies.items():
        copy.write_bytes(native.source_path(module).read_bytes())
    before = native.sources_digest()
    monkeypatch.setattr(native, "source_path", copies.__getitem__)
    assert native.sources_digest() == before
    for copy in copies.values():
        original = copy.read_bytes()
        copy.write_bytes(original + b"\n")
        assert native.sources_digest() != before, copy.name
        copy.write_bytes(original)


def test_the_source_first_finder_returns_the_python_file() -> None:
    finder = native._SourceFirst(frozenset(native.NATIVE_MODULES))
    for module in native.NATIVE_MODULES:
        spec = finder.find_spec(module, None)
        assert spec is not None and spec.origin == str(native.source_path(module))
    assert finder.find_spec("planner.sim.jitter", None) is None


def test_a_stale_build_is_imported_from_source(tmp_path: Path) -> None:
    """In a fresh interpreter with the guard's finder: the engine's modules come from .py files."""
    code = (
        "import sys, planner.native as n\n"
        "sys.meta_path.insert(0, n._SourceFirst(frozenset(n.NATIVE_MODULES)))\n"
        "import planner.sim.engine\n"
        "print(all(sys.modules[m].__file__.endswith('.py') for m in n.NATIVE_MODULES))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "True"


RUN_BOTH_WAYS = """
import hashlib, json, sys
import numpy as np
from planner import native
from planner.sim.engine import simulate
from planner.workload import FanoutShape
from tests.sim_helpers import gpu_fleet, tree_workload

digest = hashlib.sha256()
cases = (("least_outstanding", 0.3), ("central_queue", 0.0), ("prefix_affinity", 0.0))
for router, jitter in cases:
    fleet = gpu_fleet(replicas=4, router=router, jitter_cv=jitter, max_batch=16)
    result = simulate(fleet, tree_workload(1.0, 40, FanoutShape()), seed=7)
    for array in (result.admit_s, result.first_token_s, result.finish_s, result.tree_finish_s):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps([result.events, result.stop_reason, result.census]).encode())
print(json.dumps({"status": native.status(), "compiled": native.running_compiled(),
                  "digest": digest.hexdigest()}))
"""


def _run_engine(native_setting: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PLANNER_NATIVE"}
    if native_setting is not None:
        env["PLANNER_NATIVE"] = native_setting
    command = [sys.executable, "-c", RUN_BOTH_WAYS]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def test_compiled_and_python_engines_give_bit_equal_results() -> None:
    """Every timestamp of three small agent-tree runs (jitter, central queue, prefix affinity)."""
    python = _run_engine("0")
    default = _run_engine(None)
    assert python["status"] == "disabled" and python["compiled"] is False
    # Where make built the extensions (CI, make test) the default run is the compiled engine.
    assert default["compiled"] is (default["status"] == "compiled")
    assert default["digest"] == python["digest"]


def test_a_gpu_pool_hands_the_replica_its_step_functions_own_coefficients() -> None:
    """The replica calls gpu_step_time_s natively with what the pool's step function is bound to.

    So the native call is the pool's step function on the same arguments.
    """
    trees = TreeFactory(ChatShape()).sample_batch(np.random.default_rng(0), 1)
    engine = _Engine(gpu_fleet(replicas=2), trees, np.zeros(1), np.random.SeedSequence(0), False)
    pool = engine.entry
    step_fn = pool.step_time_fn
    assert isinstance(step_fn, partial) and step_fn.func is gpu_step_time_s
    assert pool.gpu_step_coefficients is step_fn.args[0]
    assert all(replica.gpu_coefficients is step_fn.args[0] for replica in pool.replicas)
