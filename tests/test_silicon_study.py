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


def test_long_documents_cost_and_fit_follow_the_kv_footprint() -> None:
    from planner import config
    from planner.app.silicon import document_costs

    shape = {
        "hardware": "gb200_nvl72",
        "precision": "fp8",
        "kv_precision": "fp8",
        "tp": 8,
        "ep": 8,
        "dp_attention": True,
    }
    cases = {
        "hybrid": {"model": "qwen35_397b_a17b", **shape},
        "full": {"model": "qwen3_235b_a22b", **shape},
    }
    docs = {
        "short": {"input_tokens": 200_000, "output_tokens": 4096},
        "long": {"input_tokens": 1_000_000, "output_tokens": 4096},
        "huge": {"input_tokens": 20_000_000, "output_tokens": 4096},
    }
    out = document_costs(cases, docs, config.economics({}), claimed_ratio=20)
    table = out["documents"]
    for doc in ("short", "long"):
        hybrid, full = table[doc]["hybrid"], table[doc]["full"]
        assert hybrid["fits"] and full["fits"]
        # Gated DeltaNet layers hold a fixed state: less KV per sequence, more sequences, cheaper
        assert hybrid["gib_per_sequence"] < full["gib_per_sequence"]
        assert hybrid["max_batch"] > full["max_batch"]
        assert 0 < hybrid["usd_per_document"] < full["usd_per_document"]
    assert table["long"]["full"]["usd_per_document"] > table["short"]["full"]["usd_per_document"]
    # 20 M tokens of full-attention KV exceed the replica: refused as "does not fit", no cost
    assert table["huge"]["full"]["fits"] is False
    assert table["huge"]["full"]["usd_per_document"] is None
    assert "full does not fit" in out["answer"] and "(the claim is 20x)" in out["answer"]
