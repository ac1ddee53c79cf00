"""Compile the simulator's hot modules with mypyc, in place (``make`` runs it; planner.native).

Usage::

    python scripts/build_native.py           # compile planner.native.NATIVE_MODULES
    python scripts/build_native.py --clean   # remove the extensions: run everything as Python

mypyc (shipped with mypy) turns the modules' type-annotated Python into C extensions; the
setuptools ``build_ext --inplace`` step puts each beside its source, with the shared runtime in
``planner/_native__mypyc*.so``. The build records the digest of the sources it compiled in
``planner/_native_build.json``; ``planner.native.install_guard`` ignores the extensions once a
source differs from it. Set ``PLANNER_NATIVE=0`` to skip compiling (``make`` then runs the
engine as Python, about 2.5x slower, with the same results). A build takes about 20 s.

A machine without a C compiler or Python headers cannot compile: the script then says so on
one line, removes any partial build and exits 0, and everything runs as Python.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner import native  # noqa: E402


def _remove_extensions() -> None:
    for module in native.NATIVE_MODULES:
        for path in native.extension_paths(module):
            path.unlink()
    for path in native.PACKAGE_DIR.glob("_native__mypyc*"):
        path.unlink()
    native.MANIFEST.unlink(missing_ok=True)


MYPY_CONFIG = """\
[mypy]
ignore_missing_imports = True
follow_imports = skip

[mypy-planner.*,numpy.*,simpy.*]
follow_imports = silent
"""
"""The type analysis mypyc compiles from: planner and the two libraries the compiled modules use
(numpy, simpy); other third-party packages are not read.

With pyproject's [tool.mypy] (which follows every import into scipy, pandas, pydantic,
matplotlib...) the analysis took 44 s of a 60 s build, with this one 4 s, and the generated C and
IR (``ops.txt``) are byte-identical (measured with ``mypycify(..., target_dir=...)`` under both).
``make lint`` runs the strict check.
"""


def _compile() -> None:
    """Run mypycify on the modules and build the extensions in place (raises on a failed build)."""
    from mypyc.build import mypycify
    from setuptools import setup

    paths = [str(native.source_path(m).relative_to(ROOT)) for m in native.NATIVE_MODULES]
    # mypyc names modules by their path from the working directory.
    with tempfile.TemporaryDirectory(prefix="planner-native-") as build_dir, contextlib.chdir(ROOT):
        config = Path(build_dir) / "mypyc.ini"
        config.write_text(MYPY_CONFIG)
        extensions = mypycify(
            [f"--config-file={config}", *paths],
            opt_level="3",
            group_name=native.NATIVE_GROUP,
            target_dir=build_dir,
        )
        build = ["build_ext", "--inplace", "--build-temp", build_dir]
        build += ["--build-lib", f"{build_dir}/lib"]
        setup(name="planner-native", ext_modules=extensions, script_args=["-q", *build])


def main() -> int:
    """Build (or with ``--clean`` remove) the compiled modules; always exits 0 unless misused."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    args = parser.parse_args()
    _remove_extensions()
    if args.clean or os.environ.get("PLANNER_NATIVE") == "0":
        print("native: engine runs as Python (no compiled modules)")
        return 0
    digest = native.sources_digest()
    start = time.perf_counter()
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            _compile()
    except (Exception, SystemExit) as error:  # setuptools reports a compiler failure by exiting
        _remove_extensions()
        text = str(error).strip()
        reason = text.splitlines()[-1] if text else type(error).__name__
        # Recorded so make does not retry on every run; no extension exists, so none is used.
        native.MANIFEST.write_text(json.dumps({"sources_sha256": None, "failed": reason}) + "\n")
        print(f"native: not compiled ({reason}); the engine runs as Python, ~2.5x slower")
        return 0
    native.MANIFEST.write_text(
        json.dumps({"sources_sha256": digest, "modules": list(native.NATIVE_MODULES)}, indent=1)
        + "\n"
    )
    print(
        f"native: compiled {len(native.NATIVE_MODULES)} modules with mypyc in "
        f"{time.perf_counter() - start:.0f} s ({native.status()})"
    )
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Tearing down mypy's in-memory program graph takes ~30 s at interpreter exit; mypy's own
    # command line skips it the same way (mypy.util.hard_exit).
    os._exit(code)
