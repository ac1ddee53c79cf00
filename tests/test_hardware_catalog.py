"""The 2026 inference-silicon catalog (issue 13).

Sourced figures, loadable systems, borrowed efficiency for uncalibrated families, and
``planner-roofline`` on every new part.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.config import resolved_efficiency as cli_resolved_efficiency
from planner.perf.borrowed import parse_borrowing, resolve_efficiency
from planner.specs.errors import ConfigError
from tests.cli_runner import run_cli
from tests.conftest import CONF, hardware_names, load_resolved_efficiency, load_system

SCRIPT = Path(sys.executable).parent / "planner-roofline"

EVIDENCE_TAG = re.compile(r"\[(?:V|M|VM|E|U|D|A)\]")
NUMERIC_LINE = re.compile(
    r"^\s*(?P<key>[A-Za-z_]\w*)\s*:\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"\s*(?:#(?P<comment>.*))?$"
)

# New part -> (family, donor family if borrowed else None).
NEW_PARTS: dict[str, tuple[str, str | None]] = {
    "vera_rubin_nvl144": ("nvidia_gpu", None),
    "rubin_cpx": ("nvidia_gpu", None),
    "groq_lpu_v2": ("groq_lpu", None),
    "maia_200": ("microsoft_maia", "nvidia_gpu"),
    "mtia_400": ("meta_mtia", "nvidia_gpu"),
    "mtia_450": ("meta_mtia", "nvidia_gpu"),
    "mtia_500": ("meta_mtia", "nvidia_gpu"),
    "trainium2": ("aws_trainium", "nvidia_gpu"),
    "trainium3": ("aws_trainium", "nvidia_gpu"),
    "tpu_v7_ironwood": ("google_tpu", "nvidia_gpu"),
}
SMALL_MODEL, LARGE_MODEL = "qwen35_35b_a3b", "deepseek_v3"


def untagged_numeric_lines(text: str) -> tuple[int, list[str]]:
    """Numeric ``key: value`` lines in ``text`` and those whose comment has no evidence tag."""
    numeric, untagged = 0, []
    for line in text.splitlines():
        match = NUMERIC_LINE.match(line)
        if match is None:
            continue
        numeric += 1
        if not EVIDENCE_TAG.search(match.group("comment") or ""):
            untagged.append(line.strip())
    return numeric, untagged


def numeric_leaves(node: Any) -> int:
    """Count int/float leaves (not bools) of a loaded YAML document."""
    if isinstance(node, dict):
        return sum(numeric_leaves(v) for v in node.values())
    if isinstance(node, list):
        return sum(numeric_leaves(v) for v in node)
    return int(isinstance(node, (int, float)) and not isinstance(node, bool))


def test_the_tag_checker_flags_a_figure_without_a_tag() -> None:
    text = "name: x\na: 1.0e+9   # 1 GB [V] A1\nb: 2   # from a blog\nc: 3\nflag: false\n"
    assert untagged_numeric_lines(text) == (3, ["b: 2   # from a blog", "c: 3"])


@pytest.mark.parametrize("name", hardware_names())
def test_every_numeric_field_carries_an_evidence_tag(name: str) -> None:
    text = (CONF / "hardware" / f"{name}.yaml").read_text()
    numeric, untagged = untagged_numeric_lines(text)
    # The line scan must see every number the YAML loader sees (no flow style slips past it).
    assert numeric == numeric_leaves(yaml.safe_load(text)) > 0
    assert not untagged, f"{name}: figures without an evidence tag: {untagged}"


@pytest.mark.parametrize("name", hardware_names())
def test_every_file_loads_as_a_system(name: str) -> None:
    system = load_system(name)
    assert system.name == name
    assert system.accelerators_per_system >= system.accelerators_per_host >= 1


@pytest.mark.parametrize("name", sorted(NEW_PARTS))
def test_each_new_part_is_in_the_readme_and_unconfirmed_parts_say_so(name: str) -> None:
    text = (CONF / "hardware" / f"{name}.yaml").read_text()
    sections = set(re.findall(r"\bB[1-9]\b", text))
    readme = (CONF / "hardware" / "README.md").read_text()
    assert sections, f"{name} cites no README section"
    for section in sections:
        assert f"### {section}." in readme, f"{name} cites {section}, missing from README.md"
    memory_lines = [
        line
        for line in text.splitlines()
        if line.strip().startswith(("memory_bytes:", "memory_bandwidth"))
    ]
    assert len(memory_lines) == 2
    if any("[U]" in line for line in memory_lines):  # press-only memory figures
        assert not load_system(name).accelerator.confirmed


@pytest.mark.parametrize("name", sorted(NEW_PARTS))
def test_new_parts_resolve_through_the_borrowing_rule(name: str) -> None:
    family, donor = NEW_PARTS[name]
    accel = load_system(name).accelerator
    assert accel.family == family
    for resolved in (load_resolved_efficiency(family), cli_resolved_efficiency(family)):
        assert resolved.factors.family == family  # passes build_replica's family check
        assert resolved.calibrated is (donor is None)
        assert resolved.borrowed_from == donor
        if donor is not None:
            own = load_resolved_efficiency(donor)
            assert own.calibrated and own.borrowed_from is None
            assert resolved.factors.compute_efficiency == own.factors.compute_efficiency
            assert resolved.factors.memory_efficiency == own.factors.memory_efficiency


def test_every_rule_names_a_calibrated_donor_and_no_fitted_family() -> None:
    rules = parse_borrowing(yaml.safe_load((CONF / "efficiency" / "borrowed.yaml").read_text()))
    assert set(rules) == {"google_tpu", "aws_trainium", "microsoft_maia", "meta_mtia"}
    for family, rule in rules.items():
        assert not (CONF / "efficiency" / f"{family}.yaml").exists()
        assert (CONF / "efficiency" / f"{rule.borrow_from}.yaml").exists()
        assert len(rule.reason) > 40


def test_borrowing_refuses_unknown_families_and_uncalibrated_donors() -> None:
    fitted = {"nvidia_gpu": yaml.safe_load((CONF / "efficiency" / "nvidia_gpu.yaml").read_text())}
    rules = parse_borrowing(
        {"chain": {"borrow_from": "google_tpu", "reason": "a donor that is itself borrowed"}}
    )
    with pytest.raises(
        ConfigError, match=re.escape("hardware.accelerator.family: no fitted factors")
    ):
        resolve_efficiency("cerebras_wse", fitted.get, rules)
    with pytest.raises(ConfigError, match=re.escape("efficiency.borrowed.chain.borrow_from")):
        resolve_efficiency("chain", fitted.get, rules)
    with pytest.raises(ConfigError, match=re.escape("efficiency.borrowed.x.borrow_from")):
        parse_borrowing({"x": {"borrow_from": "x", "reason": "self"}})
    with pytest.raises(ConfigError, match=re.escape("efficiency.borrowed.x.reason")):
        parse_borrowing({"x": {"borrow_from": "nvidia_gpu"}})
    with pytest.raises(ConfigError, match=re.escape("efficiency.borrowed.x")):
        parse_borrowing({"x": {"borrow_from": "nvidia_gpu", "reason": "r", "factor": 2}})


@pytest.mark.parametrize("model", [SMALL_MODEL, LARGE_MODEL])
@pytest.mark.parametrize("name", sorted(NEW_PARTS))
def test_roofline_runs_or_refuses_in_one_line(name: str, model: str, tmp_path: Path) -> None:
    lpu = load_system(name).accelerator.kind == "lpu"
    mapping = ["tp=1", "ep=1"] if lpu else ["tp=8", "ep=8", "dp_attention=true"]
    run_dir = tmp_path / "run"
    result = run_cli(
        SCRIPT, [f"hydra.run.dir={run_dir}", f"model={model}", f"hardware={name}", *mapping]
    )
    if result.returncode == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr
        assert not (run_dir / "summary.json").exists()
        assert model == LARGE_MODEL, f"the small model must run on {name}: {result.stderr}"
        return
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["hardware"] == name and summary["model"] == model
    # Every output built on a borrowed family says so, and names the donor.
    resolved = load_resolved_efficiency(load_system(name).accelerator.family)
    assert summary["calibrated"] is resolved.calibrated
    assert summary["borrowed_from"] == resolved.borrowed_from
    assert summary["hardware_confirmed"] is load_system(name).accelerator.confirmed
    assert summary["max_output_tokens_per_s_per_accelerator"] > 0
