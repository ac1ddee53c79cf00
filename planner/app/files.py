"""Files written atomically: a reader never sees half a file, a failed write leaves none.

Every output of the planner (summaries, tables, plots, pages) goes through these writers: the data
goes to a temporary file in the target's directory, then a rename puts it in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _output_mode() -> int:
    """rw-r--r-- less the process umask: what an ordinary open() would have created."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


OUTPUT_MODE = _output_mode()
"""Permissions of output files (mkstemp's temporary files are 0600 until renamed)."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename.

    A reader never sees a half-written file; an interrupted or failed write leaves no file at
    ``path`` and no temporary file.

    Raises:
        OSError: The write failed; ``filename`` is ``path``, ``errno`` the cause (e.g. ENOSPC).
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename.

    Raises:
        OSError: The write failed; ``filename`` is ``path``, ``errno`` the cause (e.g. ENOSPC).
    """
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp_name, OUTPUT_MODE)
        os.replace(tmp_name, path)
    except BaseException as error:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise


def atomic_write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def discard_run_files(out_dir: Path, output_subdir: str | None, log_name: str) -> None:
    """Remove what a failed run wrote into ``out_dir`` before it failed.

    Only the run's own files go: interrupted writers' temporaries, the config snapshot
    (``output_subdir``) and the job log (``log_name``); the directory itself only if that leaves
    it empty, so a run directory pointed at an existing folder is safe.
    """
    for temporary in out_dir.glob(".*.tmp"):  # a writer interrupted by the failure
        temporary.unlink(missing_ok=True)
    if output_subdir:
        shutil.rmtree(out_dir / output_subdir, ignore_errors=True)
    (out_dir / log_name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: the folder holds other things
        out_dir.rmdir()
