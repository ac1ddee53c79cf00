"""Routing strategies: each against a brute-force scan, liveness, bounded load, registry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from librt.vecs import vec
from mypy_extensions import i64

from planner.sim.config import ROUTERS as CONFIG_ROUTERS
from planner.sim.config import SloSpec
from planner.sim.engine import simulate
from planner.sim.metrics import summarize
from planner.sim.routing import (
    LOAD_BOUND,
    ROUTERS,
    CentralQueue,
    LeastOutstanding,
    PowerOfTwo,
    PrefixAffinity,
    RoundRobin,
    RoutedReplica,
    Router,
)
from planner.workload.trees import MIXED_AGENT_SHAPE
from tests.sim_helpers import (
    assert_census,
    checked_engine,  # noqa: F401 (autouse: census after every run)
    gpu_fleet,
    tree_workload,
)


@dataclass
class Stub:
    index: int
    outstanding: int = 0
    down: bool = False


def _random_changes(
    router: Router, replicas: list[Stub], rng: np.random.Generator, steps: int
) -> Iterator[None]:
    """Random load and liveness changes, told to the router; yields after each."""
    for _ in range(steps):
        replica = replicas[int(rng.integers(len(replicas)))]
        if rng.random() < 0.05:
            replica.down = not replica.down
            replica.outstanding = 0
        elif not replica.down:
            replica.outstanding = max(0, replica.outstanding + int(rng.integers(-1, 2)))
        router.on_change(replica)
        yield


def _chosen(router: Router, call: int) -> RoutedReplica:
    """The replica ``router`` picks for ``call``, where some replica is live."""
    replica = router.choose(call)
    assert replica is not None
    return replica


def test_least_outstanding_equals_a_linear_scan() -> None:
    rng = np.random.default_rng(0)
    replicas = [Stub(i) for i in range(37)]
    router = LeastOutstanding(replicas)
    for _ in _random_changes(router, replicas, rng, 5000):
        live = [r for r in replicas if not r.down]
        chosen = router.choose(0)
        if not live:
            assert chosen is None
            continue
        best = min(live, key=lambda r: (r.outstanding, r.index))
        assert chosen is best
        assert len(router._heap.slots) == len(live)  # one entry per live replica, none stale


def test_round_robin_and_power_of_two_choose_live_replicas_only() -> None:
    rng = np.random.default_rng(1)
    for make in (RoundRobin, lambda r: PowerOfTwo(r, rng=np.random.default_rng(2))):
        replicas = [Stub(i) for i in range(9)]
        router = make(replicas)
        for _ in _random_changes(router, replicas, rng, 2000):
            chosen = router.choose(0)
            if all(r.down for r in replicas):
                assert chosen is None
            else:
                assert chosen is not None and not chosen.down


def test_power_of_two_picks_the_lighter_of_two() -> None:
    replicas = [Stub(i, outstanding=i) for i in range(10)]
    router = PowerOfTwo(replicas, rng=np.random.default_rng(3))
    picks = [_chosen(router, 0).index for _ in range(4000)]
    # The heaviest replica can never win a pair; the lightest wins every pair it is in.
    assert 9 not in picks
    assert picks.count(0) / len(picks) == pytest.approx(2 / 10, abs=0.03)


def test_prefix_affinity_keeps_a_group_on_one_replica_until_the_load_bound() -> None:
    replicas = [Stub(i) for i in range(8)]
    groups = vec[i64](range(1000))
    router = PrefixAffinity(replicas, prefix_group=groups)
    homes = {_chosen(router, g).index for g in range(0, 1000, 7) for _ in range(3)}
    assert len(homes) > 4  # groups spread over the ring
    home = _chosen(router, 5)
    assert all(router.choose(5) is home for _ in range(10))  # stable while loads are equal
    home.outstanding = 50
    router.on_change(home)
    moved = _chosen(router, 5)
    assert moved is not home  # over the bound: next replica clockwise
    total = sum(r.outstanding for r in replicas)
    assert moved.outstanding + 1 <= np.ceil(LOAD_BOUND * (total + 1) / len(replicas))
    home.down = True
    home.outstanding = 0
    router.on_change(home)
    assert all(router.choose(g) is not home for g in groups)


def test_central_queue_names_one_idle_replica() -> None:
    replicas = [Stub(i, outstanding=3) for i in range(5)]
    replicas[3].outstanding = 0
    router = CentralQueue(replicas)
    for r in replicas:
        router.on_change(r)
    assert router.choose(0) is replicas[3]


def test_every_configured_router_is_registered_and_runs() -> None:
    assert set(CONFIG_ROUTERS) == set(ROUTERS)
    workload = tree_workload(0.1, 20, MIXED_AGENT_SHAPE)
    for name in CONFIG_ROUTERS:
        result = simulate(gpu_fleet(replicas=3, router=name), workload, seed=4)
        census = assert_census(result)
        assert result.stop_reason == "drained" and census["finished"] == result.trees.n_calls


def test_central_queue_wakes_one_replica_per_call() -> None:
    """Engine events per call stay near those of per-replica routing with 16 replicas.

    The old central queue cut the segment of every replica with room on each submit (30 events
    per call against 4.9).
    """
    from planner.workload import ChatShape

    workload = tree_workload(4.0, 300, ChatShape())
    per_call = {}
    for name in ("central_queue", "least_outstanding"):
        result = simulate(gpu_fleet(replicas=16, router=name), workload, seed=1)
        assert summarize(result, SloSpec())["calls"]["completed"] == 300
        per_call[name] = result.events / 300
    assert per_call["least_outstanding"] > 1.0, per_call
    assert per_call["central_queue"] <= 1.5 * per_call["least_outstanding"], per_call
