"""The engine against queueing theory, with replications and confidence intervals.

A pool of single-sequence replicas with a constant iteration time serves 1-token prompts: a call
of ``n`` output tokens takes exactly ``n`` iterations. Geometric ``n`` with mean 200 makes the
service time nearly exponential (squared CV 0.995), so the pool is M/M/c; fixed ``n`` makes it
M/D/1. Each replication drops its first calls (the queue starts empty) and the check is that the
closed form lies inside the 99% confidence interval of the replication means.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytest

from planner.sim.config import FleetSpec
from planner.sim.engine import WorkloadSpec, simulate
from planner.workload import LengthLaw
from tests.sim_helpers import (
    chat_workload,
    checked_engine,  # noqa: F401 (autouse: census after every run)
    erlang_c_wait_s,
    mean_ci,
    pollaczek_khinchine_wait_s,
    queue_pool,
)

STEP_S = 0.005
MEAN_TOKENS = 200  # service mean 1.0 s
CALLS = 12_000
WARMUP = 1_000
REPLICATIONS = 12


def _mean_waits(fleet: FleetSpec, workload: WorkloadSpec, seeds: Iterable[int]) -> list[float]:
    waits: list[float] = []
    for seed in seeds:
        result = simulate(fleet, workload, seed=seed)
        wait = (result.admit_s - result.ready_s)[WARMUP:]
        assert np.isfinite(wait).all()
        waits.append(float(wait.mean()))
    return waits


@pytest.mark.parametrize(("servers", "rho"), [(1, 0.7), (3, 0.75)])
def test_mm_c_mean_wait_matches_erlang_c(servers: int, rho: float) -> None:
    service_rate = 1.0 / (STEP_S * MEAN_TOKENS)
    arrival_rate = rho * servers * service_rate
    workload = chat_workload(arrival_rate, CALLS, LengthLaw("geometric", mean_value=MEAN_TOKENS))
    waits = _mean_waits(queue_pool(servers, STEP_S), workload, range(REPLICATIONS))
    mean, half = mean_ci(waits)
    expected = erlang_c_wait_s(arrival_rate, service_rate, servers)
    assert half < 0.15 * expected, "interval too wide for the check to mean anything"
    assert abs(mean - expected) <= half, (mean, half, expected)


def test_md1_mean_wait_matches_pollaczek_khinchine() -> None:
    service_s = STEP_S * MEAN_TOKENS
    arrival_rate = 0.7 / service_s
    workload = chat_workload(arrival_rate, CALLS, LengthLaw.fixed(MEAN_TOKENS))
    waits = _mean_waits(queue_pool(1, STEP_S), workload, range(100, 100 + REPLICATIONS))
    mean, half = mean_ci(waits)
    expected = pollaczek_khinchine_wait_s(arrival_rate, service_s, service_s**2)
    assert half < 0.15 * expected
    assert abs(mean - expected) <= half, (mean, half, expected)


def test_service_times_are_exactly_n_iterations() -> None:
    workload = chat_workload(0.5, 500, LengthLaw("geometric", mean_value=50))
    result = simulate(queue_pool(2, STEP_S), workload, seed=3)
    service = result.finish_s - result.admit_s
    np.testing.assert_allclose(service, result.trees.output_tokens * STEP_S, rtol=1e-9)


def test_littles_law_holds_over_a_steady_window() -> None:
    """Time-average number in system (integrated) = arrival rate x mean time in system."""
    service_rate = 1.0 / (STEP_S * MEAN_TOKENS)
    workload = chat_workload(
        2.4 * service_rate, 20_000, LengthLaw("geometric", mean_value=MEAN_TOKENS)
    )
    result = simulate(queue_pool(3, STEP_S), workload, seed=11)
    start, end = result.ready_s[2_000], result.ready_s[18_000]
    times = np.concatenate([result.ready_s, result.finish_s])
    steps = np.concatenate([np.ones(result.trees.n_calls), -np.ones(result.trees.n_calls)])
    order = np.argsort(times, kind="stable")
    times, in_system = times[order], np.cumsum(steps[order])
    inside = (times >= start) & (times < end)
    edges = np.append(times[inside], end)
    before = np.searchsorted(times, start) - 1
    levels = np.concatenate([[in_system[before]], in_system[inside]])
    area = np.sum(levels * np.diff(np.concatenate([[start], edges])))
    time_average = area / (end - start)
    window = (result.ready_s >= start) & (result.ready_s < end)
    rate = window.sum() / (end - start)
    sojourn = (result.finish_s - result.ready_s)[window].mean()
    assert time_average == pytest.approx(rate * sojourn, rel=0.03)
