"""Arrival processes: statistics over replications, limits, determinism, config errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from planner import config
from planner.specs.errors import ConfigError
from planner.workload import (
    ArrivalProcess,
    DiurnalArrivals,
    GammaArrivals,
    OfflineArrivals,
    PoissonArrivals,
    TraceArrivals,
    read_azure_trace,
)

SAMPLE = Path(__file__).parent / "data" / "synthetic_azure_format.csv"
SEEDS = range(12)


def _ci_contains(estimates: list[float], truth: float, z: float = 4.0) -> bool:
    """True if ``truth`` lies within mean +- z standard errors of the replications."""
    values = np.asarray(estimates)
    half = z * values.std(ddof=1) / math.sqrt(len(values))
    return bool(abs(values.mean() - truth) <= half)


def _gap_stats(times: np.ndarray) -> tuple[float, float]:
    gaps = np.diff(times)
    return float(gaps.mean()), float(gaps.std(ddof=1) / gaps.mean())


@pytest.mark.parametrize(
    ("process", "cv"),
    [
        (PoissonArrivals(rate_per_s=5.0), 1.0),
        (GammaArrivals(rate_per_s=5.0, cv=3.0), 3.0),
        (GammaArrivals(rate_per_s=5.0, cv=0.4), 0.4),
    ],
)
def test_renewal_mean_gap_and_cv_over_replications(process: ArrivalProcess, cv: float) -> None:
    means, cvs = [], []
    for seed in SEEDS:
        times = process.sample(np.random.default_rng(seed), max_count=20_000)
        mean_gap_s, gap_cv = _gap_stats(times)
        means.append(mean_gap_s)
        cvs.append(gap_cv)
    assert _ci_contains(means, 1 / 5.0)
    assert _ci_contains(cvs, cv)
    assert abs(np.mean(cvs) - cv) < 0.1 * cv


def test_poisson_counts_in_horizon_are_poisson() -> None:
    rate_per_s, horizon_s = 3.0, 400.0
    counts = [
        len(PoissonArrivals(rate_per_s).sample(np.random.default_rng(s), horizon_s=horizon_s))
        for s in range(40)
    ]
    assert _ci_contains([float(c) for c in counts], rate_per_s * horizon_s)
    dispersion = np.var(counts, ddof=1) / np.mean(counts)
    assert 0.5 < dispersion < 1.6  # index of dispersion of a Poisson count is 1


def test_gamma_cv_one_is_exactly_poisson() -> None:
    a = GammaArrivals(rate_per_s=2.0, cv=1.0).sample(np.random.default_rng(7), horizon_s=500)
    b = PoissonArrivals(rate_per_s=2.0).sample(np.random.default_rng(7), horizon_s=500)
    np.testing.assert_array_equal(a, b)


def _hour_counts(process: DiurnalArrivals, seed: int, periods: int) -> np.ndarray:
    times = process.sample(np.random.default_rng(seed), horizon_s=periods * process.period_s)
    hours = (process.start_hour + 24 * times / process.period_s) % 24
    return np.bincount(hours.astype(int), minlength=24)


def test_diurnal_sinusoid_peak_to_trough_ratio() -> None:
    process = DiurnalArrivals(rate_per_s=5.0, peak_to_trough=3.0, peak_hour=14.5, period_s=1200)
    amplitude = (3 - 1) / (3 + 1)
    # Hour bin 14 is centred on the peak and bin 2 on the trough; averaging the cosine over
    # +-half an hour scales the amplitude by sin(x)/x with x = pi/24.
    x = math.pi / 24
    expected = (1 + amplitude * math.sin(x) / x) / (1 - amplitude * math.sin(x) / x)
    ratios, rates = [], []
    for seed in range(8):
        counts = _hour_counts(process, seed, periods=20)
        ratios.append(counts[14] / counts[2])
        rates.append(counts.sum() / (20 * process.period_s))
    assert _ci_contains(ratios, expected)
    assert abs(np.mean(ratios) - expected) < 0.1 * expected
    assert _ci_contains(rates, 5.0)


def test_diurnal_hourly_profile_shape() -> None:
    profile = tuple(float(1 + (h >= 8) + 2 * (18 <= h < 22)) for h in range(24))
    process = DiurnalArrivals(rate_per_s=4.0, hourly_profile=profile, period_s=2400)
    counts = sum(_hour_counts(process, seed, periods=10) for seed in range(6))
    expected = np.asarray(profile) / np.mean(profile) * 4.0 * 6 * 10 * 2400 / 24
    # Poisson counts: each bin within 5 standard deviations of its expectation.
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    assert process.relative_rate(np.array([0.0, 1200.0, 1950.0])).tolist() == pytest.approx(
        [profile[0] / np.mean(profile), profile[12] / np.mean(profile), 4 / np.mean(profile)]
    )


def test_diurnal_start_hour_shifts_the_cycle() -> None:
    process = DiurnalArrivals(rate_per_s=1.0, peak_to_trough=2.0, peak_hour=6.0, start_hour=6.0)
    assert process.relative_rate(np.array([0.0]))[0] == pytest.approx(1 + 1 / 3)


def test_offline_all_at_zero() -> None:
    process = OfflineArrivals(n_requests=500)
    times = process.sample(np.random.default_rng(0), horizon_s=10.0)
    assert times.shape == (500,)
    assert not times.any()
    assert len(process.sample(np.random.default_rng(0), max_count=20)) == 20
    assert math.isinf(process.mean_rate_per_s)


def test_trace_replay() -> None:
    trace = read_azure_trace(SAMPLE)
    process = TraceArrivals(trace)
    np.testing.assert_array_equal(
        process.sample(np.random.default_rng(0), horizon_s=math.inf, max_count=10**6),
        trace.arrival_s,
    )
    fast = TraceArrivals(trace, speedup=2.0).sample(np.random.default_rng(0), horizon_s=5.0)
    np.testing.assert_allclose(fast, trace.arrival_s[trace.arrival_s < 10.0] / 2)
    assert TraceArrivals(trace, speedup=2.0).mean_rate_per_s == pytest.approx(
        2 * trace.mean_rate_per_s
    )
    loaded = config.arrivals({"kind": "trace", "path": str(SAMPLE), "speedup": 3})
    assert isinstance(loaded, TraceArrivals)
    assert loaded.trace.n_requests == trace.n_requests


ALL_RANDOM = [
    PoissonArrivals(rate_per_s=10.0),
    GammaArrivals(rate_per_s=10.0, cv=2.5),
    DiurnalArrivals(rate_per_s=10.0, peak_to_trough=4.0, period_s=600),
]


@pytest.mark.parametrize("process", ALL_RANDOM)
def test_limits_sorted_and_deterministic(process: ArrivalProcess) -> None:
    by_horizon = process.sample(np.random.default_rng(3), horizon_s=300.0)
    assert by_horizon.dtype == np.float64
    assert np.all(np.diff(by_horizon) >= 0)
    assert by_horizon.min() >= 0 and by_horizon.max() < 300.0
    by_count = process.sample(np.random.default_rng(3), max_count=1234)
    assert by_count.shape == (1234,)
    both = process.sample(np.random.default_rng(3), horizon_s=10.0, max_count=10**6)
    assert both.max() < 10.0
    assert len(process.sample(np.random.default_rng(3), horizon_s=1e6, max_count=7)) == 7
    again = process.sample(np.random.default_rng(3), horizon_s=300.0)
    np.testing.assert_array_equal(by_horizon, again)
    other = process.sample(np.random.default_rng(4), horizon_s=300.0)
    assert len(other) != len(by_horizon) or not np.array_equal(other, by_horizon)
    assert len(process.sample(np.random.default_rng(3), max_count=0)) == 0


def test_sample_limit_errors() -> None:
    process = PoissonArrivals(rate_per_s=1.0)
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="horizon_s"):
        process.sample(rng)
    with pytest.raises(ConfigError, match="max_count"):
        process.sample(rng, horizon_s=math.inf)
    with pytest.raises(ConfigError, match="horizon_s"):
        process.sample(rng, horizon_s=-1.0)
    with pytest.raises(ConfigError, match="max_count"):
        process.sample(rng, max_count=-3)
    with pytest.raises(ConfigError, match="arrivals"):
        PoissonArrivals(rate_per_s=1e6).sample(rng, horizon_s=1e6)


def test_from_dict_builds_each_kind() -> None:
    assert config.arrivals({"kind": "poisson", "rate_per_s": 5.53}) == PoissonArrivals(5.53)
    assert config.arrivals({"kind": "gamma", "rate_per_s": 2.57, "cv": 3.6}) == (
        GammaArrivals(2.57, 3.6)
    )
    diurnal = config.arrivals(
        {"kind": "diurnal", "rate_per_s": 1.0, "hourly_profile": [1] * 24, "start_hour": 8}
    )
    assert isinstance(diurnal, DiurnalArrivals) and diurnal.hourly_profile == (1,) * 24
    assert config.arrivals({"kind": "offline", "n_requests": 10}) == OfflineArrivals(10)


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({"kind": "uniform"}, "workload.arrivals.kind", "must be one of"),
        ({"kind": "poisson"}, "workload.arrivals", "rate_per_s"),
        ({"kind": "poisson", "rate_per_s": 0}, "workload.arrivals.rate_per_s", "> 0"),
        ({"kind": "poisson", "rate": 1}, "workload.arrivals.rate", "unknown key"),
        ({"kind": "gamma", "rate_per_s": 1, "cv": -2}, "workload.arrivals.cv", "> 0"),
        (
            {"kind": "diurnal", "rate_per_s": 1, "hourly_profile": [1] * 23},
            "workload.arrivals.hourly_profile",
            "24",
        ),
        (
            {"kind": "diurnal", "rate_per_s": 1, "peak_to_trough": 0.5},
            "workload.arrivals.peak_to_trough",
            ">= 1",
        ),
        (
            {"kind": "diurnal", "rate_per_s": 1, "peak_to_trough": 2, "peak_hour": 24},
            "workload.arrivals.peak_hour",
            "[0, 24)",
        ),
        ({"kind": "offline", "n_requests": 0}, "workload.arrivals.n_requests", ">= 1"),
        ({"kind": "trace"}, "workload.arrivals.path", "required"),
        ([1, 2], "workload.arrivals", "mapping"),
    ],
)
def test_from_dict_errors_name_the_field(data: object, field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.arrivals(data)
    if field != "workload.arrivals":
        assert info.value.field == field
    else:
        assert info.value.field.startswith(field)
    assert problem in str(info.value)


def test_diurnal_needs_exactly_one_profile() -> None:
    with pytest.raises(ConfigError) as info:
        config.arrivals(
            {"kind": "diurnal", "rate_per_s": 1, "peak_to_trough": 2, "hourly_profile": [1] * 24}
        )
    assert "workload.arrivals.peak_to_trough" in str(info.value)
