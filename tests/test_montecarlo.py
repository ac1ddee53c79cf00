"""Monte Carlo machinery: distributions, Latin hypercube sampling, tornado, chunked runs."""

from __future__ import annotations

import functools
import math
import sys
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from planner import config
from planner.econ.montecarlo import (
    DISTRIBUTIONS,
    Distribution,
    InMemoryCheckpoint,
    UncertainInput,
    base_point,
    chunk_bounds,
    latin_hypercube,
    run_samples,
    summarize_samples,
    tornado,
)
from planner.specs.errors import ConfigError

#: One valid spec of every allowed law.
VALID_SPECS: dict[str, dict[str, Any]] = {
    "beta": {"dist": "beta", "a": 2, "b": 5, "loc": 1.0, "scale": 3.0},
    "fixed": {"dist": "fixed", "value": 4.5},
    "gamma": {"dist": "gamma", "a": 2.5, "scale": 0.4},
    "lognorm": {"dist": "lognorm", "s": 0.5, "scale": 1.2},
    "loguniform": {"dist": "loguniform", "a": 1.0, "b": 100.0},
    "norm": {"dist": "norm", "loc": 10.0, "scale": 2.0},
    "triang": {"dist": "triang", "c": 0.5, "loc": 1, "scale": 4},
    "truncnorm": {"dist": "truncnorm", "a": -1.0, "b": 2.0, "loc": 1.0, "scale": 0.5},
    "uniform": {"dist": "uniform", "loc": 0.1, "scale": 0.2},
}


def test_every_allowed_law_has_a_valid_spec() -> None:
    assert set(VALID_SPECS) == set(DISTRIBUTIONS)


@pytest.mark.parametrize("name", sorted(VALID_SPECS))
def test_lhs_samples_match_median_and_mean(name: str) -> None:
    (inp,) = config.uncertain_inputs({name: VALID_SPECS[name]})
    values = latin_hypercube([inp], 20_000, seed=7)[name]
    dist = inp.distribution
    assert isinstance(dist, Distribution)
    spread = dist.quantile(0.9) - dist.quantile(0.1)
    tol = 0.01 * spread + 1e-12
    assert abs(float(np.median(values)) - dist.median()) <= tol
    assert abs(float(values.mean()) - dist.mean()) <= tol


def test_known_moments_and_round_trip() -> None:
    (u,) = config.uncertain_inputs({"x": VALID_SPECS["uniform"]})
    assert isinstance(u.distribution, Distribution)
    assert u.distribution.median() == pytest.approx(0.2)
    assert u.distribution.mean() == pytest.approx(0.2)
    lognorm = Distribution.of("lognorm", s=0.5, scale=1.2)
    assert lognorm.median() == pytest.approx(1.2)
    assert lognorm.mean() == pytest.approx(1.2 * math.exp(0.125))
    assert config.distribution(lognorm.to_dict(), "f") == lognorm
    assert config.distribution(3, "f") == Distribution.of("fixed", value=3.0)


INVALID_SPECS: list[tuple[object, str]] = [
    ({"dist": "weibull", "c": 1.0}, "weibull"),  # unknown law
    ({"dist": "norm", "loc": 0, "scale": 1, "shape": 2}, "shape"),  # unknown parameter
    ({"dist": "norm", "loc": 0, "scale": -1}, "scale"),  # negative scale
    ({"dist": "uniform", "scale": 0}, "scale"),  # zero scale
    ({"dist": "loguniform", "a": 5, "b": 5}, "b"),  # b <= a
    ({"dist": "loguniform", "a": 0, "b": 5}, "a"),  # a must be > 0
    ({"dist": "triang", "c": 2, "loc": 0, "scale": 1}, "c"),  # c outside [0, 1]
    ({"dist": "lognorm", "s": -0.5, "scale": 1}, "s"),  # negative shape
    ({"dist": "norm", "loc": "ten", "scale": 1}, "loc"),  # non-numeric
    ({"dist": "norm", "loc": True, "scale": 1}, "loc"),  # bool is not a number
    ({"dist": "lognorm", "scale": 1.2}, "s"),  # missing shape parameter
    ({"dist": "beta", "a": 2}, "b"),  # missing second shape parameter
    ({"dist": "norm", "loc": float("nan"), "scale": 1}, "loc"),  # NaN
    ({"dist": "gamma", "a": float("inf")}, "a"),  # infinite
    ({"dist": "truncnorm", "a": 1, "b": 0}, "b"),  # empty truncation interval
    ({"dist": "beta", "a": 0, "b": 1}, "a"),  # shape must be > 0
    ({"dist": "fixed", "value": 1, "scale": 2}, "scale"),  # fixed takes only value
    ({"dist": "fixed"}, "value"),  # fixed without value
    ({"s": 0.5}, "dist"),  # no dist
    ("lognormal", "mapping"),  # not a mapping
]


@pytest.mark.parametrize(("spec", "named"), INVALID_SPECS)
def test_invalid_specs_raise_one_line_config_error(spec: object, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.uncertain_inputs({"demand_growth": spec})
    err = info.value
    assert err.field == "mc.inputs.demand_growth"
    assert "\n" not in str(err)
    assert named in err.problem
    assert "allowed" in err.problem or "mapping" in err.problem


def test_parse_inputs_sorts_by_name_and_uses_field() -> None:
    inputs = config.uncertain_inputs({"b": 1.0, "a": VALID_SPECS["norm"]}, field="roi.mc.inputs")
    assert [i.name for i in inputs] == ["a", "b"]
    with pytest.raises(ConfigError) as info:
        config.uncertain_inputs({"x": {"dist": "nope"}}, field="roi.mc.inputs")
    assert info.value.field == "roi.mc.inputs.x"


# --------------------------------------------------------------------------------------------
# Latin hypercube
# --------------------------------------------------------------------------------------------


def _inputs() -> tuple[UncertainInput, ...]:
    return config.uncertain_inputs(VALID_SPECS)


def test_lhs_is_stratified_in_every_input() -> None:
    n = 257
    inputs = _inputs()
    samples = latin_hypercube(inputs, n, seed=3)
    for inp in inputs:
        if inp.distribution.is_fixed:
            assert np.all(samples[inp.name] == 4.5)
            continue
        assert isinstance(inp.distribution, Distribution)
        law = inp.distribution._frozen
        bins = np.floor(law.cdf(samples[inp.name]) * n).astype(int)
        assert sorted(bins.tolist()) == list(range(n)), inp.name


def test_lhs_same_seed_same_samples_different_seed_differs() -> None:
    inputs = _inputs()
    first = latin_hypercube(inputs, 100, seed=11)
    again = latin_hypercube(inputs, 100, seed=11)
    other = latin_hypercube(inputs, 100, seed=12)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
        if name != "fixed":
            assert not np.array_equal(first[name], other[name])


def test_lhs_rejects_bad_sample_count() -> None:
    with pytest.raises(ConfigError) as info:
        latin_hypercube(_inputs(), 0, seed=1)
    assert info.value.field == "mc.n_samples"


# --------------------------------------------------------------------------------------------
# Summaries and tornado
# --------------------------------------------------------------------------------------------


def test_summarize_samples() -> None:
    values = np.arange(-10.0, 90.0)  # 100 values, 89 positive
    summary = summarize_samples(values)
    assert summary["n"] == 100
    assert summary["p50"] == pytest.approx(39.5)
    assert summary["mean"] == pytest.approx(39.5)
    assert summary["std"] == pytest.approx(float(np.std(values, ddof=1)))
    assert summary["standard_error"] == pytest.approx(summary["std"] / 10)
    assert summary["prob_positive"] == pytest.approx(0.89)
    assert summary["p5"] < summary["p50"] < summary["p95"]
    assert all(isinstance(v, (int, float)) for v in summary.values())
    with pytest.raises(ValueError, match="not finite"):
        summarize_samples(np.array([1.0, np.nan]))


def test_tornado_on_a_linear_function() -> None:
    inputs = config.uncertain_inputs(
        {
            "x": {"dist": "uniform", "loc": 0, "scale": 10},  # 10 % / 90 %: 1 and 9
            "y": {"dist": "norm", "loc": 5, "scale": 1},
            "k": {"dist": "fixed", "value": 100},
        }
    )
    weights = {"x": 2.0, "y": -30.0, "k": 1.0}

    def npv(point: Any) -> float:
        return float(sum(weights[name] * point[name] for name in weights))

    bars = tornado(npv, inputs)
    assert [b.name for b in bars] == ["y", "x"]  # fixed k has no bar; y swings most
    z90 = 1.2815515655446004
    y_bar, x_bar = bars
    assert x_bar.low_value_input == pytest.approx(1.0)
    assert x_bar.high_value_input == pytest.approx(9.0)
    assert x_bar.swing == pytest.approx(2.0 * 8.0)
    assert y_bar.swing == pytest.approx(30.0 * 2 * z90)
    base = npv(base_point(inputs))
    assert base == pytest.approx(2 * 5 - 30 * 5 + 100)
    assert x_bar.output_at_low == pytest.approx(base - 8.0)
    assert y_bar.output_at_high == pytest.approx(base - 30 * z90)
    with pytest.raises(ConfigError):
        tornado(npv, inputs, low_quantile=0.9, high_quantile=0.1)


# --------------------------------------------------------------------------------------------
# run_samples
# --------------------------------------------------------------------------------------------


def npv_model(
    samples: dict[str, NDArray[np.float64]], discount: float = 0.1
) -> NDArray[np.float64]:
    """A vectorised toy model (module level, so joblib and Ray workers can import it)."""
    cash = samples["lognorm"] * np.exp(samples["norm"] / 10) - samples["gamma"] ** 1.5
    return cash / (1 + discount) + np.sin(samples["triang"])


@functools.cache
def _samples(n: int = 2503) -> dict[str, NDArray[np.float64]]:
    return latin_hypercube(_inputs(), n, seed=5)


class CountingModel:
    """Records how many chunks and samples it evaluated (serial backend only)."""

    def __init__(self) -> None:
        self.calls = 0
        self.samples = 0

    def __call__(self, samples: dict[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        self.calls += 1
        self.samples += len(samples["norm"])
        return npv_model(samples)


def test_serial_equals_direct_evaluation_and_reports_progress() -> None:
    samples = _samples()
    seen: list[tuple[int, int]] = []
    out = run_samples(npv_model, samples, chunk_size=500, progress=lambda d, t: seen.append((d, t)))
    np.testing.assert_allclose(out, npv_model(samples), rtol=1e-15)
    assert seen == [(i, 6) for i in range(7)]
    assert chunk_bounds(2503, 500)[-1] == (2500, 2503)


def test_joblib_matches_serial_bitwise() -> None:
    samples = _samples()
    model = functools.partial(npv_model, discount=0.07)
    serial = run_samples(model, samples, chunk_size=300)
    parallel = run_samples(model, samples, chunk_size=300, backend="joblib", n_jobs=2)
    assert serial.tobytes() == parallel.tobytes()


@pytest.mark.parametrize("backend", ["serial", "joblib"])
def test_checkpoint_resume_evaluates_only_missing_chunks(backend: str) -> None:
    samples = _samples()
    full = run_samples(npv_model, samples, chunk_size=500)
    checkpoint = InMemoryCheckpoint()
    for index in (0, 2, 5):  # as if an earlier run finished these chunks
        start, stop = chunk_bounds(2503, 500)[index]
        checkpoint.save(index, full[start:stop])
    model = CountingModel()
    if backend == "serial":
        resumed = run_samples(model, samples, chunk_size=500, checkpoint=checkpoint)
        assert model.calls == 3
        assert model.samples == 1500
    else:
        resumed = run_samples(
            npv_model, samples, chunk_size=500, checkpoint=checkpoint, backend="joblib", n_jobs=2
        )
    assert resumed.tobytes() == full.tobytes()
    assert sorted(checkpoint.chunks) == list(range(6))
    again = CountingModel()
    assert run_samples(again, samples, chunk_size=500, checkpoint=checkpoint).tobytes() == (
        full.tobytes()
    )
    assert again.calls == 0


def test_checkpoint_chunk_from_another_study_is_discarded_and_evaluated_again() -> None:
    samples = _samples()
    full = run_samples(npv_model, samples, chunk_size=500)
    checkpoint = InMemoryCheckpoint({0: np.zeros(100), 99: np.zeros(500)})
    resumed = run_samples(npv_model, samples, chunk_size=500, checkpoint=checkpoint)
    assert resumed.tobytes() == full.tobytes()
    assert 99 not in checkpoint.chunks
    assert checkpoint.chunks[0].tobytes() == full[:500].tobytes()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"backend": "dask"}, "mc.backend"),
        ({"n_jobs": 0}, "mc.n_jobs"),
        ({"chunk_size": 0}, "mc.chunk_size"),
        ({"chunk_size": 2.5}, "mc.chunk_size"),
    ],
)
def test_run_samples_rejects_bad_settings(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        run_samples(npv_model, _samples(), **kwargs)
    assert info.value.field == field


def test_run_samples_rejects_wrong_output_length() -> None:
    with pytest.raises(ValueError, match="shape"):
        run_samples(lambda s: np.zeros(3), _samples(), chunk_size=500)


@pytest.mark.slow
def test_ray_matches_serial_bitwise() -> None:
    ray = pytest.importorskip("ray")
    samples = _samples()
    serial = run_samples(npv_model, samples, chunk_size=300)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        checkpoint = InMemoryCheckpoint()
        out = run_samples(
            npv_model, samples, chunk_size=300, backend="ray", n_jobs=2, checkpoint=checkpoint
        )
        assert ray.is_initialized()  # an instance started by the caller stays up
    finally:
        ray.shutdown()
    assert out.tobytes() == serial.tobytes()
    assert sorted(checkpoint.chunks) == list(range(9))
    # Without a running instance run_samples starts a local one and shuts it down again.
    started = run_samples(npv_model, samples, chunk_size=1000, backend="ray")
    assert not ray.is_initialized()
    assert started.tobytes() == run_samples(npv_model, samples, chunk_size=1000).tobytes()


def test_ray_backend_without_ray_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes ``import ray`` raise ImportError
    with pytest.raises(ConfigError) as info:
        run_samples(npv_model, _samples(), backend="ray")
    assert info.value.field == "mc.backend"
    assert "planner[ray]" in info.value.problem
