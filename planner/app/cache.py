"""On-disk caches that survive ordinary use: concurrent studies, kills, damaged files, new code.

Two kinds of entry live under one cache directory (by default the user's cache directory,
``$XDG_CACHE_HOME/planner`` on Linux, or ``$PLANNER_CACHE_DIR``):

* **JSON entries** (capacity curves): one file per key, written through a uniquely named
  temporary file and a rename under a per-entry lock, wrapped in an envelope carrying the
  SHA-256 of the payload. A truncated, empty, foreign or edited file fails the check, is reported
  in one line and recomputed; it is never fatal.
* **Checkpoint chunks** (Monte Carlo): ``chunk_<index>.<sha256-prefix>.npy`` files. The name
  carries the checksum of the bytes, so a chunk that does not match its name is damaged; it is
  reported, removed and evaluated again.

Every key includes :func:`code_fingerprint`, a hash of the source of the packages that produce
cached results, so a changed cost model or simulator never reuses stale capacity curves.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from numpy.typing import NDArray
from platformdirs import user_cache_dir

from planner.specs.errors import ConfigError

CACHE_ENV = "PLANNER_CACHE_DIR"
"""Environment variable that overrides the default cache directory."""

FINGERPRINT_PACKAGES = ("specs", "config", "perf", "workload", "sim", "econ")
"""Subpackages whose source decides cached results (not cli/, report/: they only present)."""

ENVELOPE_FORMAT = 1

Warn = Callable[[str], None]


def _ignore(_message: str) -> None:
    """Default warning sink: say nothing."""


def default_cache_dir() -> Path:
    """``$PLANNER_CACHE_DIR`` if set, else the platform's user cache directory for planner."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return Path(user_cache_dir("planner", appauthor=False))


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 prefix over the source files of :data:`FINGERPRINT_PACKAGES` (sorted by path).

    Read through ``importlib.resources`` so it works for an installed package as well as a
    checkout. Any edit to the physics, workload, simulator or economics changes it.
    """
    digest = hashlib.sha256()
    root = resources.files("planner")
    for package in FINGERPRINT_PACKAGES:
        node = root / package
        if not node.is_dir():
            continue
        for path in sorted(_python_files(Path(str(node))), key=lambda p: p.as_posix()):
            digest.update(path.relative_to(Path(str(root))).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _python_files(directory: Path) -> Iterator[Path]:
    return (p for p in directory.rglob("*.py") if "__pycache__" not in p.parts)


def stable_key(payload: Mapping[str, Any]) -> str:
    """A 20-hex-digit key of ``payload`` (JSON, keys sorted) and :func:`code_fingerprint`."""
    text = json.dumps({"code": code_fingerprint(), **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@contextlib.contextmanager
def _atomic_file(path: Path, mode: str) -> Iterator[Any]:
    """Open a uniquely named temporary file beside ``path``; rename it over ``path`` on success.

    An exception (a full disk, a kill) leaves no temporary file behind and ``path`` untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _lock(path: Path) -> FileLock:
    """An inter-process lock for one cache entry (a ``.lock`` file beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.with_name(path.name + ".lock")))


@dataclass(frozen=True)
class JsonStore:
    """JSON cache entries under ``directory``, each checksummed and written atomically.

    Attributes:
        directory: Where the entries live (created on first write).
        warn: Receives a one-line message about each damaged entry found.
    """

    directory: Path
    warn: Warn = _ignore

    def path(self, name: str) -> Path:
        """The file of entry ``name`` (a file-name-safe string)."""
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) or name.startswith("."):
            raise ValueError(f"cache entry name {name!r} is not a plain file name")
        return self.directory / f"{name}.json"

    def read(self, name: str) -> dict[str, Any] | None:
        """The payload of entry ``name``, or None if it is absent or damaged (then reported)."""
        path = self.path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        payload = _open_envelope(raw)
        if payload is None:
            self.warn(f"cache entry {path} is damaged (checksum or format); recomputing it")
            with contextlib.suppress(OSError):
                path.unlink()
        return payload

    def write(self, name: str, payload: Mapping[str, Any]) -> None:
        """Store ``payload`` (JSON-serialisable) as entry ``name``, atomically."""
        body = json.dumps(payload, sort_keys=True, allow_nan=False)
        envelope = {
            "format": ENVELOPE_FORMAT,
            "sha256": hashlib.sha256(body.encode()).hexdigest(),
            "payload": json.loads(body),
        }
        with _atomic_file(self.path(name), "w") as handle:
            json.dump(envelope, handle, sort_keys=True)

    def get_or_compute(
        self, name: str, compute: Callable[[], Mapping[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """Entry ``name``, computed and stored under the entry's lock if absent or damaged.

        Two processes asking for the same entry compute it once: the second waits on the lock
        and then reads what the first wrote.

        Returns:
            ``(payload, from_cache)``.
        """
        cached = self.read(name)
        if cached is not None:
            return cached, True
        with _lock(self.path(name)):
            cached = self.read(name)
            if cached is not None:
                return cached, True
            payload = dict(compute())
            self.write(name, payload)
        return payload, False


def _open_envelope(raw: bytes) -> dict[str, Any] | None:
    """The payload of a checksummed envelope, or None when anything about it is off."""
    try:
        envelope = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(envelope, dict) or envelope.get("format") != ENVELOPE_FORMAT:
        return None
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        return None
    body = json.dumps(payload, sort_keys=True, allow_nan=False)
    if hashlib.sha256(body.encode()).hexdigest() != envelope.get("sha256"):
        return None
    return payload


_CHUNK = re.compile(r"chunk_(\d{6})\.([0-9a-f]{16})\.npy")


@dataclass(frozen=True)
class ChunkCheckpoint:
    """Finished Monte Carlo chunks as checksummed ``.npy`` files (a ``Checkpoint``).

    Attributes:
        directory: One study's folder (its key names it).
        warn: Receives a one-line message about each damaged chunk found (then removed).
    """

    directory: Path
    warn: Warn = _ignore

    def load(self) -> dict[int, NDArray[Any]]:
        """Every intact chunk: index -> values. Damaged or foreign files are reported, removed."""
        chunks: dict[int, NDArray[Any]] = {}
        if not self.directory.is_dir():
            return chunks
        for path in sorted(self.directory.glob("chunk_*")):
            match = _CHUNK.fullmatch(path.name)
            values = _read_chunk(path, match.group(2)) if match else None
            if match is None or values is None:
                self.warn(f"checkpoint chunk {path} is damaged or foreign; evaluating it again")
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            chunks[int(match.group(1))] = values
        return chunks

    def save(self, index: int, values: NDArray[Any]) -> None:
        """Write chunk ``index`` atomically, its checksum in its name."""
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(values), allow_pickle=False)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()[:16]
        with _atomic_file(self.directory / f"chunk_{index:06d}.{digest}.npy", "wb") as handle:
            handle.write(data)

    def discard(self, index: int) -> None:
        """Remove chunk ``index`` (it did not fit the study); it is evaluated again."""
        for path in self.directory.glob(f"chunk_{index:06d}.*.npy"):
            self.warn(f"checkpoint chunk {path} does not fit this study; evaluating it again")
            with contextlib.suppress(OSError):
                path.unlink()


def _read_chunk(path: Path, digest: str) -> NDArray[Any] | None:
    """The array in ``path`` if its bytes hash to ``digest``, else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest()[:16] != digest:
        return None
    try:
        return np.asarray(np.load(io.BytesIO(data), allow_pickle=False))
    except (ValueError, OSError, EOFError):
        return None


def writable_cache_dir(path: Path, field: str = "cache_dir") -> Path:
    """Create ``path`` if needed and check that files can be created in it.

    Raises:
        ConfigError: Naming ``field``, the path and the operating system's reason.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(field, f"cannot write the cache directory {path}: {reason}") from None
    return path
