"""The simulator's compiled hot path: the modules ``make`` compiles, and a guard for stale builds.

``make test`` and ``make bench`` compile :data:`NATIVE_MODULES` with mypyc
(``scripts/build_native.py``): the same typed Python, turned into C extensions that sit beside
the sources (``replica.cpython-311-x86_64-linux-gnu.so`` next to ``replica.py``) and that
Python's import system then prefers. They run the engine about 2.5x faster with bit-equal
results (the suite runs on them; ``benchmarks/results.json`` records ``engine.native``). A
plain ``pip install`` builds nothing and runs the same modules as Python.

A compiled module would keep running after its source is edited, so the build records a
digest of the sources it compiled (:data:`MANIFEST`), and :func:`install_guard` (run when
``planner`` is imported) compares it: when any source differs, every compiled module is
imported from its ``.py`` instead (all of them, because the compiled ones call each other
natively) until ``make`` rebuilds. ``PLANNER_NATIVE=0`` in the environment does the same on
purpose (to step through the engine in a debugger, or to compare: ``tests/test_native.py``
checks that both give the same results). The check costs well under a millisecond.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

NATIVE_MODULES = (
    "planner.perf.gpu_step",
    "planner.sim.clock",
    "planner.sim.decode_heap",
    "planner.sim.paged_kv",
    "planner.sim.routing",
    "planner.sim.replica",
    "planner.sim.pool",
    "planner.sim.engine",
)
"""Modules compiled by ``make`` (the per-iteration and per-call code of the engine)."""

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = PACKAGE_DIR / "_native_build.json"
"""Written by ``scripts/build_native.py``: the digest of the sources it compiled."""

NATIVE_GROUP = "planner._native"
"""mypyc's group name: the compiled modules share ``planner/_native__mypyc*.so``."""


def source_path(module: str) -> Path:
    """The ``.py`` file of one of :data:`NATIVE_MODULES`."""
    return PACKAGE_DIR.joinpath(*module.split(".")[1:]).with_suffix(".py")


def extension_paths(module: str) -> list[Path]:
    """Compiled extension files of ``module`` present beside its source."""
    source = source_path(module)
    stem = source.with_suffix("")
    return [
        stem.with_name(stem.name + suffix)
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if stem.with_name(stem.name + suffix).exists()
    ]


def sources_digest() -> str:
    """SHA-256 over the sources of :data:`NATIVE_MODULES`, in order."""
    digest = hashlib.sha256()
    for module in NATIVE_MODULES:
        digest.update(module.encode())
        digest.update(source_path(module).read_bytes())
    return digest.hexdigest()


def status() -> str:
    """Which engine runs: ``compiled``, ``stale``, ``python`` or ``disabled``.

    ``stale``: sources edited since the build; ``python``: nothing built; ``disabled``:
    ``PLANNER_NATIVE=0`` in the environment. In the last three the sources are used.
    """
    if os.environ.get("PLANNER_NATIVE") == "0":
        return "disabled"
    if not any(extension_paths(m) for m in NATIVE_MODULES):
        return "python"
    try:
        built = json.loads(MANIFEST.read_text())["sources_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return "stale"
    return "compiled" if built == sources_digest() else "stale"


def running_compiled() -> bool:
    """Whether every one of :data:`NATIVE_MODULES` was imported, and from its extension."""
    files = [getattr(sys.modules.get(m), "__file__", None) for m in NATIVE_MODULES]
    return all(f is not None and not f.endswith(".py") for f in files)


class _SourceFirst:
    """A ``sys.meta_path`` finder: the listed modules from their ``.py`` files, not extensions."""

    def __init__(self, modules: frozenset[str]) -> None:
        self.modules = modules

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """The source spec of a listed module; ``None`` (the usual search) for any other."""
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname))


def install_guard() -> str:
    """Import the compiled modules from source when stale or disabled; returns :func:`status`."""
    state = status()
    if state in ("stale", "disabled") and not any(
        isinstance(f, _SourceFirst) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _SourceFirst(frozenset(NATIVE_MODULES)))
    return state
