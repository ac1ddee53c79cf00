"""Closed-loop arrivals: config, the users' loop, agreement with the static model.

The static figures are ``at_concurrency`` of ``planner-roofline`` on the same replica.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from planner import config
from planner.app.roofline import roofline
from planner.config.options import RooflineOptions
from planner.sim.config import BatchingSpec, FleetSpec, PoolSpec
from planner.sim.engine import WorkloadSpec, simulate
from planner.sim.faults import FailureSpec
from planner.sim.results import SimulationResult
from planner.specs.errors import ConfigError
from planner.workload import CallLengths, ChatShape, DelayLaw, LengthLaw
from planner.workload.arrivals import ClosedLoopArrivals
from tests.conftest import load_efficiency, load_model, load_system
from tests.sim_helpers import (
    assert_census,
    checked_engine,  # noqa: F401 (autouse: census after every run)
    gpu_fleet,
    queue_pool,
)

# ------------------------------------------------------------------------------------- config


def test_config_builds_closed_loop_with_think_time() -> None:
    """The mapping becomes the spec; requests and think time are optional."""
    spec = config.arrivals(
        {
            "kind": "closed_loop",
            "users": 4,
            "requests": 40,
            "think_time": {"kind": "exponential", "mean_s": 5.0},
        }
    )
    assert isinstance(spec, ClosedLoopArrivals)
    assert (spec.users, spec.requests) == (4, 40)
    assert spec.think_time == DelayLaw("exponential", mean_s=5.0)
    default = config.arrivals({"kind": "closed_loop", "users": 2})
    assert isinstance(default, ClosedLoopArrivals)
    assert default.requests is None and default.think_time.expected_s() == 0.0


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"kind": "closed_loop"}, "workload.arrivals.users", "required"),
        ({"kind": "closed_loop", "users": 0}, "workload.arrivals.users", ">= 1"),
        ({"kind": "closed_loop", "users": 2.5}, "workload.arrivals.users", "integer"),
        ({"kind": "closed_loop", "users": 2, "requests": 0}, "workload.arrivals.requests", ">= 1"),
        ({"kind": "closed_loop", "users": 2, "rate_per_s": 1}, "workload.arrivals", "rate_per_s"),
        (
            {"kind": "closed_loop", "users": 2, "think_time": {"kind": "gauss"}},
            "workload.arrivals.think_time.kind",
            "fixed",
        ),
        (
            {"kind": "closed_loop", "users": 2, "think_time": -1.0},
            "workload.arrivals.think_time.value_s",
            ">= 0",
        ),
    ],
)
def test_config_errors_name_the_field(data: dict[str, object], field: str, words: str) -> None:
    """Bad input: one line naming the dotted field and what is allowed."""
    with pytest.raises(ConfigError) as error:
        config.arrivals(data)
    assert error.value.field.startswith(field), error.value.field
    assert words in str(error.value)
    assert "\n" not in str(error.value)


def test_closed_loop_has_no_precomputed_times() -> None:
    """Only the simulator can drive a closed loop: sampling times up front is refused."""
    with pytest.raises(ConfigError, match="closed_loop"):
        ClosedLoopArrivals(users=2).sample(np.random.default_rng(0), max_count=3)


# ------------------------------------------------------------------------------ users' loop


def _chat(
    users: int, requests: int | None, think: DelayLaw | None = None, **limits: Any
) -> WorkloadSpec:
    shape = ChatShape(call=CallLengths(LengthLaw.fixed(1), LengthLaw.uniform(5, 40)))
    arrivals = ClosedLoopArrivals(
        users=users, requests=requests, think_time=think or DelayLaw.fixed(0.0)
    )
    return WorkloadSpec(arrivals=arrivals, tree=shape, **limits)


def _in_flight(result: SimulationResult, times: NDArray[np.float64]) -> NDArray[np.int64]:
    """Requests started and not yet finished at each of ``times``."""
    start, end = result.tree_arrival_s, result.tree_finish_s
    started = (start[None, :] <= times[:, None]) & (end[None, :] > times[:, None])
    counts: NDArray[np.int64] = started.sum(axis=1)
    return counts


def test_each_user_sends_the_next_request_when_one_ends() -> None:
    """Later requests start one think time after an earlier one ends; never more than C."""
    users, requests, think_s = 3, 30, 0.25
    result = simulate(
        queue_pool(servers=2, step_s=0.01),
        _chat(users, requests, DelayLaw.fixed(think_s), n_trees=1000),
        seed=3,
    )
    assert_census(result)
    assert result.complete and result.trees.n_trees == requests
    starts, ends = result.tree_arrival_s, result.tree_finish_s
    assert (starts[:users] == 0.0).all()
    # Every later request starts exactly one think time after some earlier request ended, and
    # each end starts at most one request (the user's next).
    later = np.sort(starts[users:])
    expected = np.sort(ends + think_s)[: len(later)]
    np.testing.assert_allclose(later, expected, rtol=0, atol=1e-9)
    # Never more than `users` requests in flight; exactly `users` while work is queued.
    probes = np.linspace(0.0, float(np.nanmax(ends)), 2000)
    assert _in_flight(result, probes).max() == users


def test_requests_also_bounded_by_n_trees() -> None:
    """The smaller of ``requests`` and ``workload.n_trees`` is sent."""
    result = simulate(queue_pool(servers=1, step_s=0.01), _chat(2, 50, n_trees=7), seed=0)
    assert result.trees.n_trees == 7 and result.complete


def test_requests_alone_bound_a_run() -> None:
    """A closed loop with ``requests`` needs neither ``n_trees`` nor a horizon."""
    spec = config.workload(
        {
            "arrivals": {"kind": "closed_loop", "users": 3, "requests": 9},
            "tree": {"kind": "chat"},
            "n_trees": None,
            "horizon_s": None,
        }
    )
    result = simulate(queue_pool(servers=2, step_s=0.001), spec, seed=5)
    assert result.complete and result.trees.n_trees == 9
    with pytest.raises(ConfigError, match=r"workload\.n_trees"):
        config.workload({"arrivals": {"kind": "closed_loop", "users": 3}, "n_trees": None})


def test_agents_around_the_clock_run_to_the_horizon() -> None:
    """Four agents working without pause until a horizon.

    Far more requests than the first draw (32 per user), none started at or after the horizon,
    every one started finishes.
    """
    horizon_s = 60.0
    result = simulate(
        queue_pool(servers=4, step_s=0.002), _chat(4, None, horizon_s=horizon_s), seed=1
    )
    census = assert_census(result)
    starts = result.tree_arrival_s
    assert result.complete and result.stop_reason == "drained"
    assert result.trees.n_trees == result.trees_started > 4 * 32
    assert np.isfinite(starts).all() and starts.max() < horizon_s
    assert census["tree_pending"] == 0 and census["finished"] == result.trees.n_calls
    # Each of the 4 servers holds one user's request: the agents never wait, so the fleet runs
    # `users` requests back to back for the whole horizon.
    probes = np.linspace(1.0, horizon_s - 1.0, 500)
    assert (_in_flight(result, probes) == 4).all()


def test_a_failed_request_sends_the_user_on_to_the_next() -> None:
    """A user whose request dies sends the next one instead of waiting forever.

    Under failures every request is still sent (after the think time), and each finishes or
    fails.
    """
    failures = FailureSpec(
        rate_multiplier=2e6,
        blast_radius="domain",
        max_retries=1,
        repair_time=DelayLaw("exponential", mean_s=30.0),
    )
    workload = WorkloadSpec(
        arrivals=ClosedLoopArrivals(users=6, requests=200, think_time=DelayLaw.fixed(5.0)),
        tree=ChatShape(),
    )
    result = simulate(gpu_fleet(replicas=8), workload, seed=5, failures=failures)
    census = assert_census(result)
    assert result.failed is not None and result.failed.any(), "the run must see failed calls"
    assert result.stop_reason == "drained" and result.trees_started == 200
    assert census["failed"] + census["finished"] + census["abandoned"] == result.trees.n_calls
    dead = np.unique(result.call_tree[result.failed])
    assert np.isnan(result.tree_finish_s[dead]).all()


# ------------------------------------------------------- simulator vs the static closed loop

ISL, OSL = 1024, 1024
REQUESTS_PER_USER = 16


def _pool(model: str, tp: int, ep: int) -> PoolSpec:
    return PoolSpec(
        name="gpu",
        role="unified",
        system=load_system("h200"),
        model=load_model(model),
        efficiency=load_efficiency("nvidia_gpu"),
        racks=1,
        precision="fp8",
        tp=tp,
        ep=ep,
        replicas=1,
        batching=BatchingSpec(max_batch=512, token_budget=8192, prefix_cache_fraction=0.0),
    )


@pytest.mark.parametrize(("model", "tp", "ep"), [("llama3_70b", 4, 1), ("deepseek_r1", 8, 8)])
@pytest.mark.parametrize("users", [4, 16, 64])
def test_simulated_closed_loop_matches_static_at_concurrency(
    model: str, tp: int, ep: int, users: int
) -> None:
    """The simulator's closed loop agrees with ``planner-roofline concurrency=C`` within 10%.

    Same model, hardware, tp/ep and isl/osl; compared: output tokens/s per accelerator and
    tokens/s per user.

    Output lengths are drawn uniformly within +-20% of ``OSL`` (mean ``OSL``), as benchmark
    clients draw them: with one fixed length every user would finish in the same step and the
    users would prefill and decode in lockstep, a synchronised state no real load has. Steady
    state is read by Little's law over the middle half of the requests (by finish time), past the
    start-up and before the drain: throughput = users x mean output / mean request time.
    """
    pool = _pool(model, tp, ep)
    lengths = CallLengths(LengthLaw.fixed(ISL), LengthLaw.uniform(OSL * 4 // 5, OSL * 6 // 5))
    requests = users * REQUESTS_PER_USER
    workload = WorkloadSpec(
        arrivals=ClosedLoopArrivals(users=users, requests=requests),
        tree=ChatShape(call=lengths),
        n_trees=requests,
    )
    result = simulate(FleetSpec(pools=(pool,)), workload, seed=0)
    assert result.complete
    order = np.argsort(result.finish_s)
    middle = order[requests // 4 : 3 * requests // 4]
    outputs = result.trees.output_tokens[middle].astype(float)
    request_s = result.finish_s[middle] - result.ready_s[middle]
    accelerators = result.pools[0].accelerators
    sim_per_accelerator = users * outputs.mean() / request_s.mean() / accelerators
    tpot_s = (result.finish_s[middle] - result.first_token_s[middle]) / (outputs - 1)
    sim_per_user = 1.0 / tpot_s.mean()

    options = RooflineOptions(precision="fp8", tp=tp, ep=ep, isl=ISL, osl=OSL, concurrency=users)
    static = roofline(pool.model, pool.system, options)["at_concurrency"]
    per_accelerator = static["output_tokens_per_s_per_accelerator"]
    per_user = static["tokens_per_s_per_user"]
    assert sim_per_accelerator == pytest.approx(per_accelerator, rel=0.10), (
        sim_per_accelerator,
        per_accelerator,
    )
    assert sim_per_user == pytest.approx(per_user, rel=0.10), (sim_per_user, per_user)
