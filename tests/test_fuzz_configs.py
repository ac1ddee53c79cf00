"""Fuzzing planner.config: every converter either builds its spec or raises ConfigError.

Any other exception (KeyError, TypeError, ZeroDivisionError, ...) would reach the user as a
traceback instead of a one-line error, so it is a bug. Each error must be one line and name a
dotted field under the converter's prefix; a wrong type in a known leaf must name that leaf.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
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


def _conf(group: str, name: str) -> dict[str, Any]:
    data = yaml.safe_load((CONF / group / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


LAWS: list[dict[str, Any]] = [
    {"kind": "lognormal", "median": 1020, "p90": 2734},
    {"kind": "uniform", "low": 10, "high": 50},
    {"kind": "fixed", "value": 7},
    {"kind": "geometric", "mean_value": 20},
    {"kind": "empirical", "values": [1, 2, 3]},
]
ARRIVALS: list[dict[str, Any]] = [
    {"kind": "poisson", "rate_per_s": 2.0},
    {"kind": "gamma", "rate_per_s": 2.0, "cv": 3.0},
    {"kind": "diurnal", "rate_per_s": 1.0, "peak_to_trough": 3.0, "peak_hour": 14},
    {"kind": "offline", "n_requests": 10},
]
TREES: list[dict[str, Any]] = [
    {"kind": "fanout", "n_subcalls": {"kind": "uniform", "low": 10, "high": 50}, "waves": 2},
    {"kind": "chain"},
    {"kind": "debate", "n_agents": 4, "n_rounds": 2},
    {
        "kind": "mixture",
        "components": [
            {"weight": 0.5, "shape": {"kind": "chat"}},
            {"weight": 0.5, "shape": {"kind": "chain"}},
        ],
    },
]
DISTRIBUTIONS: list[dict[str, Any]] = [
    {"dist": "triang", "c": 0.5, "loc": 0.2, "scale": 0.25},
    {"dist": "uniform", "loc": 1.2, "scale": 0.38},
    {"dist": "lognorm", "s": 0.5, "scale": 1.2},
    {"dist": "loguniform", "a": 0.1, "b": 2.0},
    {"dist": "truncnorm", "a": -1.0, "b": 1.0, "loc": 0.0, "scale": 1.0},
]


DELAYS: list[dict[str, Any]] = [
    {"kind": "fixed", "value_s": 1.5},
    {"kind": "lognormal", "median_s": 1.0, "sigma": 1.0},
    {"kind": "exponential", "mean_s": 2.0},
    {"kind": "uniform", "low_s": 0.5, "high_s": 3.0},
]
FAILURES: dict[str, Any] = {
    "enabled": True,
    "rate_multiplier": 100.0,
    "blast_radius": "host",
    "max_retries": 3,
    "repair_time": {"kind": "lognormal", "median_s": 1800.0, "sigma": 1.0},
}


@dataclass(frozen=True)
class Target:
    """One converter of planner.config, the configs it accepts, and the prefix its errors carry.

    ``exact``: an error about a leaf names that leaf's dotted path (else only the prefix:
    a Distribution names the input and says which parameter in the problem).
    """

    name: str
    build: Callable[[Any], object]
    bases: Callable[[], list[dict[str, Any]]]
    prefix: str
    exact: bool = True


TARGETS = [
    Target(
        "model",
        config.model,
        lambda: [
            _conf("model", n)
            for n in (
                "qwen35_397b_a17b",
                "deepseek_v3",
                "gpt_oss_120b",
                "llama3_70b",
                "qwen3_next_80b_a3b",
            )
        ],
        "model",
    ),
    Target(
        "hardware",
        config.system,
        lambda: [_conf("hardware", n) for n in ("gb200_nvl72", "h100", "groq_lpu_v1")],
        "hardware",
    ),
    Target(
        "length_law", lambda d: config.length_law(d, "workload.len"), lambda: LAWS, "workload.len"
    ),
    Target(
        "delay_law",
        lambda d: config.delay_law(d, "workload.delay"),
        lambda: DELAYS,
        "workload.delay",
    ),
    Target("arrivals", config.arrivals, lambda: ARRIVALS, "workload.arrivals"),
    Target("tree", config.tree_shape, lambda: TREES, "workload.tree"),
    Target(
        "workload",
        config.workload,
        lambda: [_conf("workload", n) for n in ("agent_fanout", "chat", "mixed_agents")],
        "workload",
    ),
    Target(
        "fleet",
        config.fleet,
        lambda: [_conf("fleet", n) for n in ("gb200_prefill_lpu_decode", "gb200_unified")],
        "fleet",
    ),
    Target(
        "sizing", config.sizing_options, lambda: [_conf("sizing", "llama70b_options")], "sizing"
    ),
    Target("economics", config.economics, lambda: [_conf("economics", "default")], "economics"),
    Target("failures", config.failures, lambda: [FAILURES], "failures"),
    Target(
        "batching",
        lambda d: config.batching(d, "fleet.pools.gpu.batching"),
        lambda: [{"max_batch": 256, "token_budget": 8192, "prefix_cache_fraction": 0.2}],
        "fleet.pools.gpu.batching",
    ),
    Target("slo", config.slo, lambda: [{"tree_e2e_s": 60, "ttft_s": 2, "tpot_s": 0.1}], "slo"),
    Target(
        "distribution",
        lambda d: config.distribution(d, "mc.inputs.x"),
        lambda: DISTRIBUTIONS,
        "mc.inputs.x",
        exact=False,
    ),
    Target(
        "run",
        config.run_options,
        lambda: [{"max_sim_time_s": 100.0, "max_wall_s": 60.0, "stepwise": False}],
        "run",
    ),
    Target("output", config.output_options, lambda: [{"calls_table": "csv"}], "output"),
    Target(
        "demand", config.demand_options, lambda: [{"trees_per_s": 100.0, "n_trees": 2000}], "demand"
    ),
    Target(
        "sizing_slo",
        config.sizing_slo,
        lambda: [{"tree_e2e_p99_s": 30.0, "ttft_p99_s": 2.0, "tpot_p99_s": 0.05}],
        "slo",
    ),
    Target(
        "roi",
        config.roi_options,
        lambda: [
            {
                "baseline": "gpu_only",
                "candidate": "lpu_only",
                "horizon_years": 4,
                "n_trees": 3000,
                "curve_points": 6,
                "spot_checks": 0,
            }
        ],
        "roi",
    ),
    Target(
        "mc",
        config.mc_options,
        lambda: [
            {
                "samples": 2000,
                "seed": 1,
                "backend": "joblib",
                "n_jobs": 2,
                "chunk_size": 500,
                "ray_address": None,
                "inputs": {},
            }
        ],
        "mc",
    ),
    Target(
        "mc_inputs",
        config.uncertain_inputs,
        lambda: [{"growth": {"dist": "uniform", "loc": 0.0, "scale": 0.5}, "rate": 0.1}],
        "mc.inputs",
        exact=False,
    ),
    Target(
        "roofline",
        config.roofline_options,
        lambda: [
            {
                "precision": "fp8",
                "kv_precision": "bf16",
                "tp": 1,
                "ep": 8,
                "chips": None,
                "isl": 1024,
                "osl": 1024,
                "tpot_limit_s": 0.05,
            }
        ],
        "",
    ),
]
BY_NAME = {t.name: t for t in TARGETS}


def builds_or_config_error(target: Target, data: Any) -> ConfigError | None:
    """Build ``data``; only a one-line ConfigError under the target's prefix may escape."""
    try:
        target.build(data)
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message, message
        assert error.field.startswith(target.prefix), (target.name, message)
        return error
    return None


def _leaves(data: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of every scalar leaf reachable through mappings (lists are left whole)."""
    if isinstance(data, dict):
        return [leaf for k, v in data.items() for leaf in _leaves(v, (*path, str(k)))]
    return [(path, data)]


def _replaced(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _dotted(prefix: str, path: tuple[str, ...]) -> str:
    return ".".join([prefix, *path] if prefix else path)


WRONG_TYPES = ["four", [1], {"a": 1}]


NUMERIC = [t for t in TARGETS if t.name != "output"]  # output has one string choice, no numbers


@pytest.mark.parametrize("target", NUMERIC, ids=[t.name for t in NUMERIC])
def test_every_number_and_flag_refuses_wrong_types(target: Target) -> None:
    """A numeric or boolean leaf given a string, a list or a mapping is refused.

    Every such leaf of every base config is refused with a ConfigError naming that leaf (never
    built, never another exception).
    """
    checked = 0
    for base in target.bases():
        for path, value in _leaves(base):
            if not isinstance(value, (bool, int, float)):
                continue
            for wrong in WRONG_TYPES:
                error = builds_or_config_error(target, _replaced(base, path, wrong))
                assert error is not None, (target.name, path, wrong)
                if target.exact:
                    assert error.field.startswith(_dotted(target.prefix, path)), (path, str(error))
                checked += 1
    assert checked >= 3


KEYED = [t for t in TARGETS if t.name != "mc_inputs"]  # input names are free; planner-roi checks


@pytest.mark.parametrize("target", KEYED, ids=[t.name for t in KEYED])
def test_unknown_keys_are_refused_and_named(target: Target) -> None:
    for base in target.bases():
        error = builds_or_config_error(target, {**base, "bogus_key": 1})
        assert error is not None, target.name
        if target.exact:
            assert error.field == _dotted(target.prefix, ("bogus_key",)), str(error)


def test_near_misses_are_suggested() -> None:
    error = builds_or_config_error(BY_NAME["run"], {"max_sim_tim_s": 5})
    assert error is not None and "did you mean max_sim_time_s?" in error.problem
    error = builds_or_config_error(BY_NAME["economics"], {"pue_": 1.3})
    assert error is not None and "did you mean pue?" in error.problem
    # a misspelt required key is reported as the typo, not as the missing key
    error = builds_or_config_error(BY_NAME["demand"], {"trees_per_sec": 3.0})
    assert error is not None and error.field == "demand.trees_per_sec"
    assert "did you mean trees_per_s?" in error.problem


@pytest.mark.parametrize(
    ("target", "data", "message"),
    [
        (
            "demand",
            {"trees_per_s": "fast"},
            "demand.trees_per_s: must be a finite number > 0, got 'fast'",
        ),
        ("mc", {"samples": 1.5}, "mc.samples: must be an integer in [1, 10,000,000], got 1.5"),
        ("mc", {"backend": "dask"}, "mc.backend: must be one of joblib, ray, serial; got 'dask'"),
        (
            "roi",
            {"baseline": "a", "candidate": "b", "horizon_years": [1]},
            "roi.horizon_years: must be an integer in [1, 50], got [1]",
        ),
        (
            "run",
            {"max_sim_time_s": "x"},
            "run.max_sim_time_s: must be a finite number > 0 or null, got 'x'",
        ),
        ("run", {"stepwise": "yes"}, "run.stepwise: must be true or false, got 'yes'"),
        ("roofline", {"tp": "four"}, "tp: must be an integer >= 1, got 'four'"),
        ("demand", {}, "demand.trees_per_s: is required"),
    ],
)
def test_option_messages(target: str, data: dict[str, Any], message: str) -> None:
    error = builds_or_config_error(BY_NAME[target], data)
    assert error is not None and str(error) == message


@SETTINGS
@given(st.data())
def test_random_mutations_build_or_fail_cleanly(data: st.DataObject) -> None:
    """Replaced, deleted and added keys anywhere: the spec builds or a clean ConfigError."""
    target = data.draw(st.sampled_from(TARGETS))
    builds_or_config_error(target, mutate(data.draw(st.sampled_from(target.bases())), data))


@SETTINGS
@given(st.data())
def test_out_of_range_numbers_build_or_fail_naming_the_leaf(data: st.DataObject) -> None:
    target = data.draw(st.sampled_from(TARGETS))
    base = data.draw(st.sampled_from(target.bases()))
    numeric = [(p, v) for p, v in _leaves(base) if isinstance(v, (int, float))]
    if not numeric:
        return
    path, _ = data.draw(st.sampled_from(numeric))
    bad = data.draw(st.sampled_from([-1, 0, -0.5, 1e300, float("nan"), float("inf"), 10**15]))
    error = builds_or_config_error(target, _replaced(base, path, bad))
    if isinstance(bad, float) and math.isnan(bad):  # no field of any spec accepts NaN
        assert error is not None, (target.name, path)
        if target.exact:
            assert error.field.startswith(_dotted(target.prefix, path)), str(error)


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
