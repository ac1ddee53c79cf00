"""Issue 13 bar: ``planner-roofline`` runs, or refuses in one line, for every catalog pair.

The sweep is in-process (the same compute the console script calls, ~400 pairs in seconds);
a few subprocess runs check the console script's exit codes on a fitting and a refused pair.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from planner import config
from planner.app.roofline import catalog_shape, roofline
from planner.specs.errors import ConfigError
from tests.cli_runner import run_cli
from tests.conftest import load_model, load_system

SCRIPT = Path(sys.executable).parent / "planner-roofline"
MODELS = config.group_options("model")
HARDWARE = config.group_options("hardware")


def _run_pair(model_name: str, hardware_name: str) -> dict[str, Any] | ConfigError:
    model, system = load_model(model_name), load_system(hardware_name)
    options = config.roofline_options(catalog_shape(model, system))
    try:
        return roofline(model, system, options)
    except ConfigError as error:
        return error


def test_catalog_is_the_whole_conf_tree() -> None:
    assert len(MODELS) >= 19 and len(HARDWARE) >= 20
    assert {"tpu_v7_ironwood", "maia_200", "rubin_cpx", "groq_lpu_v2"} <= set(HARDWARE)


@pytest.mark.parametrize("model_name", MODELS)
def test_every_hardware_runs_or_refuses_in_one_line(model_name: str) -> None:
    fitted = 0
    for hardware_name in HARDWARE:
        outcome = _run_pair(model_name, hardware_name)
        if isinstance(outcome, ConfigError):
            message = str(outcome)
            assert "\n" not in message and message.strip(), (hardware_name, message)
            # a refusal is about fit (weights or chain length), never a crash in disguise
            assert "more than" in message, (hardware_name, message)
            continue
        fitted += 1
        assert outcome["model"] == model_name, hardware_name
        assert outcome["accelerators_per_replica"] >= 1
        assert outcome["max_batch"] >= 1, hardware_name
        speed = outcome["decode_tokens_per_s_per_user"]
        assert isinstance(speed, float) and 0 < speed < outcome[
            "roofline_tokens_per_s_per_user"
        ] * (1 + 1e-9), hardware_name
        assert 0 < outcome["max_output_tokens_per_s_per_accelerator"] < float("inf")
        assert isinstance(outcome["calibrated"], bool)
        assert isinstance(outcome["hardware_confirmed"], bool)
    # every model fits somewhere in the catalog (the LPU chains and the 72-GPU racks are large)
    assert fitted >= 1, model_name


def test_uncalibrated_parts_say_so_in_the_summary() -> None:
    outcome = _run_pair("llama3_70b", "tpu_v7_ironwood")
    assert not isinstance(outcome, ConfigError)
    assert outcome["calibrated"] is False and outcome["borrowed_from"]
    confirmed = _run_pair("llama3_70b", "h200")
    assert not isinstance(confirmed, ConfigError) and confirmed["calibrated"] is True


@pytest.mark.parametrize(
    ("model_name", "hardware_name", "code"),
    [("mistral_small_4", "maia_200", 0), ("grok_420_class", "h100", 2)],
)
def test_console_script_agrees_with_the_in_process_sweep(
    tmp_path: Path, model_name: str, hardware_name: str, code: int
) -> None:
    shape = catalog_shape(load_model(model_name), load_system(hardware_name))
    args = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in shape.items()]
    run_dir = tmp_path / "run"
    result = run_cli(
        SCRIPT,
        [f"model={model_name}", f"hardware={hardware_name}", *args, f"hydra.run.dir={run_dir}"],
    )
    assert result.returncode == code, result.stderr
    expected = _run_pair(model_name, hardware_name)
    if code == 0:
        assert not isinstance(expected, ConfigError)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["max_output_tokens_per_s_per_accelerator"] == pytest.approx(
            expected["max_output_tokens_per_s_per_accelerator"]
        )
    else:
        assert isinstance(expected, ConfigError)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0] == f"error: {expected}", result.stderr
        assert not run_dir.exists()
