"""Hypothesis fuzzing: every spec built from config either builds or raises ConfigError.

Any other exception (KeyError, TypeError, ZeroDivisionError, ...) would reach the user as a
traceback instead of a one-line error, so it is a bug.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner import config
from planner.specs.errors import ConfigError
from planner.workload import parse_azure_trace

CONF = Path(__file__).resolve().parents[1] / "conf"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(-3, 3), max_size=2),
)


def mutate(base: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """A copy of ``base`` with a few keys replaced, deleted or added (nested dicts too)."""
    out = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        target = out
        keys = list(target)
        if not keys:
            break
        key = data.draw(st.sampled_from(keys))
        if isinstance(target[key], dict) and target[key] and data.draw(st.booleans()):
            target = target[key]
            key = data.draw(st.sampled_from(list(target)))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            target[key] = data.draw(values)
        elif action == "delete":
            del target[key]
        else:
            target[data.draw(st.text(min_size=1, max_size=6))] = data.draw(values)
    return out


def builds_or_config_error(build: Any, data: Any) -> None:
    try:
        build(data)
    except ConfigError as error:
        assert "\n" not in str(error)


def _conf(group: str, name: str) -> dict[str, Any]:
    return yaml.safe_load((CONF / group / f"{name}.yaml").read_text())


@SETTINGS
@given(st.data())
def test_model_configs(data: st.DataObject) -> None:
    name = data.draw(
        st.sampled_from(["qwen35_397b_a17b", "deepseek_v3", "gpt_oss_120b", "llama3_70b"])
    )
    builds_or_config_error(config.model, mutate(_conf("model", name), data))


@SETTINGS
@given(st.data())
def test_hardware_configs(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["gb200_nvl72", "h100", "groq_lpu_v1"]))
    builds_or_config_error(config.system, mutate(_conf("hardware", name), data))


LAWS = [
    {"kind": "lognormal", "median": 1020, "p90": 2734},
    {"kind": "uniform", "low": 10, "high": 50},
    {"kind": "fixed", "value": 7},
    {"kind": "geometric", "mean_value": 20},
    {"kind": "empirical", "values": [1, 2, 3]},
]
ARRIVALS = [
    {"kind": "poisson", "rate_per_s": 2.0},
    {"kind": "gamma", "rate_per_s": 2.0, "cv": 3.0},
    {"kind": "diurnal", "rate_per_s": 1.0, "peak_to_trough": 3.0, "peak_hour": 14},
    {"kind": "offline", "n_requests": 10},
]
TREES = [
    {"kind": "fanout", "n_subcalls": {"kind": "uniform", "low": 10, "high": 50}, "waves": 2},
    {"kind": "chain"},
    {"kind": "debate", "n_agents": 4, "n_rounds": 2},
    {"kind": "mixture", "components": [{"weight": 0.5, "shape": {"kind": "chat"}},
                                       {"weight": 0.5, "shape": {"kind": "chain"}}]},
]  # fmt: skip
DISTRIBUTIONS = [
    {"dist": "triang", "c": 0.5, "loc": 0.2, "scale": 0.25},
    {"dist": "uniform", "loc": 1.2, "scale": 0.38},
    {"dist": "lognorm", "s": 0.5, "scale": 1.2},
    {"dist": "loguniform", "a": 0.1, "b": 2.0},
    {"dist": "truncnorm", "a": -1.0, "b": 1.0, "loc": 0.0, "scale": 1.0},
]


@SETTINGS
@given(st.data())
def test_workload_specs(data: st.DataObject) -> None:
    builds_or_config_error(
        lambda d: config.length_law(d, "law"), mutate(data.draw(st.sampled_from(LAWS)), data)
    )
    builds_or_config_error(config.arrivals, mutate(data.draw(st.sampled_from(ARRIVALS)), data))
    builds_or_config_error(config.tree_shape, mutate(data.draw(st.sampled_from(TREES)), data))


@SETTINGS
@given(st.data())
def test_economics_failures_batching_slo_distributions(data: st.DataObject) -> None:
    builds_or_config_error(config.economics, mutate(_conf("economics", "default"), data))
    failures = {"enabled": True, "rate_multiplier": 100.0, "blast_radius": "host", "max_retries": 3,
                "repair_time": {"kind": "lognormal", "median_s": 1800.0, "sigma": 1.0}}  # fmt: skip
    builds_or_config_error(config.failures, mutate(failures, data))
    batching = {"max_batch": 256, "token_budget": 8192, "prefix_cache_fraction": 0.2}
    builds_or_config_error(lambda d: config.batching(d, "batching"), mutate(batching, data))
    builds_or_config_error(config.slo, mutate({"tree_e2e_s": 60, "ttft_s": 2, "tpot_s": 0.1}, data))
    builds_or_config_error(
        lambda d: config.distribution(d, "mc.inputs.x"),
        mutate(data.draw(st.sampled_from(DISTRIBUTIONS)), data),
    )


HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
cells = st.one_of(
    st.integers(-10, 10**6).map(str),
    st.floats(allow_nan=True).map(str),
    st.sampled_from(["2023-11-16 18:15:46.6805900", "2023-11-16T18:15:47Z", "", "x", "1e3", "-"]),
    st.text(alphabet='0123456789:.- ,"', max_size=12),
)


@SETTINGS
@given(st.lists(st.lists(cells, min_size=0, max_size=4), min_size=0, max_size=12), st.booleans())
def test_trace_files(rows: list[list[str]], with_header: bool) -> None:
    lines = ([HEADER] if with_header else []) + [",".join(row) for row in rows]
    try:
        parse_azure_trace(lines, "fuzz.csv")
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message and message.startswith("trace:")
