"""The ``silicon_cases`` study (planner/app/silicon.py): figures per case and the answer."""

from __future__ import annotations

import pytest

from planner.app.silicon import compare_cases
from planner.specs.errors import ConfigError

CASES = {
    "small_moe_h200": {"model": "mistral_small_4", "hardware": "h200", "tp": 2, "ep": 2},
    "dense_b200": {"model": "llama3_70b", "hardware": "b200", "tp": 8},
    "dense_ironwood": {"model": "llama3_70b", "hardware": "tpu_v7_ironwood", "tp": 8},
}


def test_rows_and_answer_follow_the_figures() -> None:
    out = compare_cases(CASES, isl=2048, osl=512, tpot_limit_s=0.05)
    rows = out["cases"]
    for row in rows.values():
        assert row["user_tokens_per_s"] > 0 and row["tokens_per_s_per_accelerator_at_tpot"] > 0
    # 6.5B active parameters against 70B dense: far more batch tokens per dollar of hardware
    assert (
        rows["small_moe_h200"]["tokens_per_s_per_musd_capex"]
        > 2 * rows["dense_b200"]["tokens_per_s_per_musd_capex"]
    )
    fastest = max(rows, key=lambda n: rows[n]["user_tokens_per_s"])
    assert f"{fastest} is fastest" in out["answer"]
    assert rows["dense_ironwood"]["calibrated"] is False
    assert "uncalibrated or unconfirmed: dense_ironwood" in out["answer"]


@pytest.mark.parametrize(
    ("cases", "field"),
    [
        ({}, "study.cases"),
        ({"x": {"model": "nope", "hardware": "h200"}}, "study.cases.x.model"),
        ({"x": {"model": "grok_420_class", "hardware": "h100", "tp": 8}}, "study.cases.x"),
    ],
)
def test_bad_cases_name_the_field(cases: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        compare_cases(cases, isl=1024, osl=256, tpot_limit_s=0.05)
    assert str(raised.value).startswith(field) and "\n" not in str(raised.value)
