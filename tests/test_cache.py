"""Caches that survive: damaged entries recomputed, concurrent users, keys that follow the code."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from planner.app import cache as cache_module
from planner.app.cache import ChunkCheckpoint, JsonStore, stable_key, writable_cache_dir
from planner.specs.errors import ConfigError


def test_json_entry_round_trips_and_is_computed_once(tmp_path: Path) -> None:
    calls: list[int] = []
    store = JsonStore(tmp_path)

    def compute() -> dict[str, object]:
        calls.append(1)
        return {"racks": [1.0, 2.5], "name": "gpu"}

    first, cached_first = store.get_or_compute("curve-abc", compute)
    second, cached_second = store.get_or_compute("curve-abc", compute)
    assert first == second == {"racks": [1.0, 2.5], "name": "gpu"}
    assert (cached_first, cached_second) == (False, True)
    assert len(calls) == 1
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"


@pytest.mark.parametrize(
    "damage",
    [
        b"",  # empty (a kill before the first byte reached the disk)
        b'{"format": 1, "sha256": "00", "payl',  # truncated
        b'{"racks": [1, 2]}',  # foreign: a bare JSON file from elsewhere
        b"\x00\xff\x10garbage",  # not text at all
    ],
    ids=["empty", "truncated", "foreign", "binary"],
)
def test_damaged_json_entry_is_reported_and_recomputed(tmp_path: Path, damage: bytes) -> None:
    messages: list[str] = []
    store = JsonStore(tmp_path, warn=messages.append)
    store.path("entry").write_bytes(damage)
    payload, cached = store.get_or_compute("entry", lambda: {"value": 7})
    assert (payload, cached) == ({"value": 7}, False)
    assert len(messages) == 1 and "damaged" in messages[0] and "\n" not in messages[0]
    assert store.read("entry") == {"value": 7}


def test_edited_json_entry_fails_its_checksum(tmp_path: Path) -> None:
    messages: list[str] = []
    store = JsonStore(tmp_path, warn=messages.append)
    store.write("entry", {"racks": 4})
    envelope = json.loads(store.path("entry").read_text())
    envelope["payload"]["racks"] = 3  # a hand edit, checksum not updated
    store.path("entry").write_text(json.dumps(envelope))
    assert store.read("entry") is None
    assert len(messages) == 1


def test_entry_names_cannot_leave_the_cache(tmp_path: Path) -> None:
    store = JsonStore(tmp_path)
    for name in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="plain file name"):
            store.path(name)


def test_checkpoint_chunks_round_trip_with_checksums(tmp_path: Path) -> None:
    checkpoint = ChunkCheckpoint(tmp_path / "study")
    values = {0: np.arange(5.0), 3: np.linspace(-1e6, 1e6, 7)}
    for index, array in values.items():
        checkpoint.save(index, array)
    loaded = checkpoint.load()
    assert sorted(loaded) == [0, 3]
    for index, array in values.items():
        assert loaded[index].tobytes() == array.tobytes()
    assert not list((tmp_path / "study").glob(".*"))


def test_damaged_chunks_are_reported_removed_and_the_rest_kept(tmp_path: Path) -> None:
    messages: list[str] = []
    checkpoint = ChunkCheckpoint(tmp_path, warn=messages.append)
    checkpoint.save(0, np.ones(4))
    checkpoint.save(1, np.zeros(4))
    checkpoint.save(2, np.full(4, 2.0))
    files = sorted(tmp_path.glob("chunk_*"))
    files[1].write_bytes(files[1].read_bytes()[:20])  # truncated
    files[2].write_bytes(b"")  # empty
    (tmp_path / "chunk_000007.npy").write_bytes(files[0].read_bytes())  # foreign name
    loaded = checkpoint.load()
    assert sorted(loaded) == [0]
    assert len(messages) == 3
    assert sorted(p.name for p in tmp_path.glob("chunk_*")) == [files[0].name]


def test_discard_removes_a_chunk_that_does_not_fit(tmp_path: Path) -> None:
    messages: list[str] = []
    checkpoint = ChunkCheckpoint(tmp_path, warn=messages.append)
    checkpoint.save(4, np.ones(3))
    checkpoint.discard(4)
    assert checkpoint.load() == {}
    assert len(messages) == 1


def test_keys_follow_the_code_version(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = {"curve": "same inputs"}
    before = stable_key(payload)
    monkeypatch.setattr(cache_module, "code_fingerprint", lambda: "another-cost-model")
    assert stable_key(payload) != before


def test_code_fingerprint_covers_the_physics_sources() -> None:
    cache_module.code_fingerprint.cache_clear()
    fingerprint = cache_module.code_fingerprint()
    assert len(fingerprint) == 16 and fingerprint == cache_module.code_fingerprint()
    perf_dir = Path(cache_module.__file__).parents[1] / "perf"
    assert any(perf_dir.glob("*.py")), "the fingerprint must read planner/perf"


def test_unwritable_cache_dir_is_one_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError) as info:
        writable_cache_dir(blocker / "cache")
    assert info.value.field == "cache_dir"
    assert str(blocker) in info.value.problem


def _slow_compute_in_process(directory: str, log: str) -> None:
    def compute() -> dict[str, int]:
        with open(log, "a") as handle:
            handle.write("computed\n")
        time.sleep(0.5)
        return {"value": 42}

    payload, _ = JsonStore(Path(directory)).get_or_compute("shared", compute)
    assert payload == {"value": 42}


def test_concurrent_users_compute_a_shared_entry_once(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_slow_compute_in_process, args=(str(tmp_path / "c"), str(log)))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert log.read_text().count("computed") == 1
    assert JsonStore(tmp_path / "c").read("shared") == {"value": 42}


ROI = Path(sys.executable).parent / "planner-roi"
QUICK = [
    "roi.n_trees=600",
    "roi.curve_points=4",
    "mc.samples=400",
    "mc.chunk_size=100",
    "mc.backend=serial",
    "mc.n_jobs=1",
]


def _roi(run_dir: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROI), f"hydra.run.dir={run_dir}", f"cache_dir={cache}", *QUICK],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_roi_study_survives_damaged_and_concurrent_caches(tmp_path: Path) -> None:
    """Two studies share a cold cache at once; then a damaged chunk and curve are recomputed."""
    cache = tmp_path / "cache"
    command = [str(ROI), f"cache_dir={cache}", *QUICK]
    runs = [
        subprocess.Popen(
            [*command, f"hydra.run.dir={tmp_path / f'run{i}'}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for process in runs:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    first, second = (
        json.loads((tmp_path / f"run{i}" / "summary.json").read_text()) for i in range(2)
    )
    assert first["roi"]["npv_usd"] == second["roi"]["npv_usd"]

    chunk = sorted(cache.glob("montecarlo/*/chunk_*.npy"))[0]
    chunk.write_bytes(chunk.read_bytes()[:10])
    curve = sorted(cache.glob("capacity/*.json"))[0]
    curve.write_text("")
    again = _roi(tmp_path / "again", cache)
    assert again.returncode == 0, again.stderr
    warnings = [line for line in again.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, again.stderr
    third = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert third["roi"]["npv_usd"] == first["roi"]["npv_usd"]
    assert third["mc"]["chunks_resumed"] == third["mc"]["chunks_total"] - 1
    assert not list(cache.rglob("*.tmp")), "a temporary file was left behind"
