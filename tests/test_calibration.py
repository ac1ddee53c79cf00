"""The calibration the README reports: refit from the measured rows and check its claims.

README, "Calibration": one profile per (accelerator family, serving stack), each fitted on its own
stack's rows. The medians below are the README's figures; a regression in the cost model moves
them and fails here. The fitted factors in conf/efficiency/ must be what the script produces.
(The Groq rows are fitted by scripts/calibrate_lpu.py and checked in tests/test_perf_lpu.py.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from planner import config
from planner.perf.efficiency import EfficiencyFactors

ROOT = Path(__file__).resolve().parents[1]

# The calibration script, its fitted profiles, and its per-row and per-curve-point tables.
Calibration = tuple[
    ModuleType,
    dict[tuple[str, str], EfficiencyFactors],
    list[dict[str, Any]],
    list[dict[str, Any]],
]

# README calibration table (scripts/calibrate.py): median |error| in percent.
PINNED = {
    # (family, stack): (scalar rows, curve tok/s/GPU, curve tok/s/user)
    ("nvidia_gpu", "trtllm"): (12.3, 4.5, 5.4),
    ("nvidia_gpu", "sglang"): (None, 5.8, 3.7),
    ("amd_gpu", "sglang"): (None, 2.8, 4.1),
    ("nvidia_gpu", "vllm"): (2.5, None, None),
}


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("calibrate", ROOT / "scripts" / "calibrate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    script = _load_script()
    rows, points = script.load_rows(), script.load_points()
    fitted = script.fit_all(rows, points)
    return script, fitted, script.evaluate(rows, fitted), script.evaluate_points(points, fitted)


@pytest.mark.parametrize("profile", sorted(PINNED))
def test_medians_are_what_the_readme_states(
    calibration: Calibration, profile: tuple[str, str]
) -> None:
    script, _, table, curve_table = calibration
    rows_pin, gpu_pin, user_pin = PINNED[profile]
    if rows_pin is not None:
        assert script.row_mdape(table, *profile) == pytest.approx(rows_pin, abs=0.5)
    if gpu_pin is not None:
        gpu, user = script.curve_mdape(curve_table, *profile)
        assert gpu == pytest.approx(gpu_pin, abs=0.5)
        assert user == pytest.approx(user_pin, abs=0.5)
        assert gpu <= 25.0 and user <= 25.0  # the bar on the section-7 curves


def test_every_curve_point_is_answered_and_counted(calibration: Calibration) -> None:
    _, _, _, curve_table = calibration
    assert len(curve_table) == 50  # 35 H200 + 15 MI300X (configuration, concurrency) medians
    assert sum(e["point"].runs for e in curve_table) == 206 + 106


def test_every_held_out_band_contains_its_measurement(calibration: Calibration) -> None:
    _, _, table, _ = calibration
    bands = [e for e in table if "inside_band" in e]
    assert len(bands) == 9
    assert all(e["inside_band"] for e in bands)
    server = next(e for e in table if e["row"].id == "mlperf-405b-h200-server")
    assert server["row"].use == "held_out"


def test_conf_efficiency_files_are_the_scripts_output(calibration: Calibration) -> None:
    script, fitted, _, _ = calibration
    for (family, stack), factors in fitted.items():
        stored = yaml.safe_load(script.profile_path(family, stack).read_text())
        for key, value in stored.items():
            if key in ("family", "stack"):
                assert value == getattr(factors, key), key
            else:
                assert value == pytest.approx(getattr(factors, key), rel=1e-3, abs=1e-9), key


def test_one_profile_per_family_and_stack(calibration: Calibration) -> None:
    script, fitted, _, _ = calibration
    assert set(fitted) == {
        ("nvidia_gpu", "trtllm"),
        ("nvidia_gpu", "sglang"),
        ("nvidia_gpu", "vllm"),
        ("amd_gpu", "sglang"),
    }
    families = {config.named_system(r.hardware).accelerator.family for r in script.load_rows()}
    assert families | {"amd_gpu"} == {family for family, _ in fitted}


def test_no_model_or_hardware_name_keys_an_efficiency_profile() -> None:
    """Factors are per (family, stack), never per (model, hardware).

    No file name, key or value under conf/efficiency/ may name a model or a hardware system.
    """
    models = {p.stem for p in (ROOT / "conf" / "model").glob("*.yaml")}
    hardware = {p.stem for p in (ROOT / "conf" / "hardware").glob("*.yaml")}
    names = models | hardware
    files = sorted((ROOT / "conf" / "efficiency").glob("*.yaml"))
    assert files
    for path in files:
        assert not any(n in path.stem.split("__") for n in names), path.name
        data = yaml.safe_load(path.read_text())

        def walk(node: object, where: str, path: Path = path) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    assert str(key) not in names, f"{path.name}: key {where}{key}"
                    walk(value, f"{where}{key}.")
            elif isinstance(node, list):
                for item in node:
                    walk(item, where)
            else:
                assert str(node) not in names, f"{path.name}: value at {where}"

        walk(data, "")


def test_profiles_only_see_their_own_stacks_rows(calibration: Calibration) -> None:
    """Refitting sglang after removing every trtllm row changes nothing but the borrowed factors."""
    script, fitted, _, _ = calibration
    rows, points = script.load_rows(), script.load_points()
    only_sglang = [p for p in points if p.stack == "sglang" and p.family == "nvidia_gpu"]
    start = fitted[("nvidia_gpu", "trtllm")].replace(stack="sglang")
    from planner.perf.calibration import fit_profile

    again = fit_profile(
        [],
        only_sglang,
        config.named_model,
        config.named_system,
        start,
        script.FREE[("nvidia_gpu", "sglang")],
    )
    for key in script.FREE[("nvidia_gpu", "sglang")]:
        assert getattr(again, key) == pytest.approx(
            getattr(fitted[("nvidia_gpu", "sglang")], key), rel=1e-6, abs=1e-9
        )
    del rows


def test_no_trtllm_row_pins_the_dense_layer_overhead(calibration: Calibration) -> None:
    """Why GPU_START holds TensorRT-LLM's dense-layer overhead at 0 (README, "Calibration").

    Refitted with it held anywhere in 0-50 us the profile's loss moves by under 1%, 0 is as good
    as any, and yet the batch-1 dense figure it decides moves by more than 2x. When a row comes
    to pin the overhead this fails, and the overhead should be fitted again.
    """
    script = calibration[0]
    scan = script.scan_layer_overhead(script.load_rows(), script.load_points())
    losses = [entry["loss"] for entry in scan]
    assert scan[0]["layer_overhead_s"] == 0.0
    assert max(losses) / min(losses) < 1.01
    assert losses[0] <= min(losses) * 1.001
    speeds = [entry["gb200_batch1_tokens_per_s"] for entry in scan]
    assert speeds == sorted(speeds, reverse=True)
    assert speeds[0] > 2.0 * speeds[-1]
