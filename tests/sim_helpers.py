"""Builders shared by the simulator tests.

Small fleets and workloads, queueing formulas, and the census check every engine test runs at the
end of every simulation (``checked_engine``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from scipy import stats

from planner.sim import engine as engine_module
from planner.sim.checks import AFTER_RUN
from planner.sim.config import BatchingSpec, FleetSpec, PoolSpec
from planner.sim.engine import WorkloadSpec
from planner.sim.results import CENSUS_PLACES, SimulationResult
from planner.workload import CallLengths, ChatShape, LengthLaw, PoissonArrivals
from planner.workload.arrivals import TraceArrivals
from planner.workload.trace import Trace
from planner.workload.trees import TreeShape
from tests.conftest import load_efficiency, load_model, load_system


def queue_pool(servers: int, step_s: float, router: str = "central_queue") -> FleetSpec:
    """``servers`` single-sequence replicas with a constant iteration time: a textbook queue."""
    pool = PoolSpec(
        name="q",
        role="unified",
        system=load_system("h100"),
        model=load_model("llama3_70b"),
        efficiency=load_efficiency("nvidia_gpu"),
        racks=1,
        replicas=servers,
        fixed_step_s=step_s,
        batching=BatchingSpec(max_batch=1, token_budget=1, prefix_cache_fraction=0.0),
    )
    return FleetSpec(pools=(pool,), router=router)


def chat_workload(
    rate_per_s: float, n: int, output: LengthLaw, input_tokens: LengthLaw | None = None
) -> WorkloadSpec:
    """Single-call trees with the given output law (1-token prompts unless given)."""
    shape = ChatShape(call=CallLengths(input_tokens or LengthLaw.fixed(1), output))
    return WorkloadSpec(arrivals=PoissonArrivals(rate_per_s=rate_per_s), tree=shape, n_trees=n)


def tree_workload(rate_per_s: float, n: int, shape: TreeShape) -> WorkloadSpec:
    """Poisson-arriving trees of ``shape``."""
    return WorkloadSpec(arrivals=PoissonArrivals(rate_per_s=rate_per_s), tree=shape, n_trees=n)


def llama70b_pool(
    name: str = "gpu",
    role: str = "unified",
    hardware: str = "h200",
    replicas: int | None = 1,
    batching: BatchingSpec | None = None,
    step_jitter_cv: float = 0.0,
) -> PoolSpec:
    """Llama-3-70B FP8 TP2 replicas on one rack of ``hardware``, the roofline model's factors."""
    return PoolSpec(
        name=name,
        role=role,
        system=load_system(hardware),
        model=load_model("llama3_70b"),
        efficiency=load_efficiency("nvidia_gpu"),
        racks=1,
        precision="fp8",
        tp=2,
        replicas=replicas,
        step_jitter_cv=step_jitter_cv,
        batching=batching if batching is not None else BatchingSpec(),
    )


def lpu_llama70b_pool(
    name: str = "lpu", role: str = "unified", prefix_cache_fraction: float = 0.2
) -> PoolSpec:
    """Llama-3-70B INT8 on one 1,152-chip LPU v1 chain (16 racks), the LPU family's factors."""
    return PoolSpec(
        name=name,
        role=role,
        system=load_system("groq_lpu_v1"),
        model=load_model("llama3_70b"),
        efficiency=load_efficiency("groq_lpu"),
        racks=16,
        chips=1152,
        precision="int8",
        kv_precision="fp8",
        batching=BatchingSpec(
            max_batch=1152, token_budget=8192, prefix_cache_fraction=prefix_cache_fraction
        ),
    )


def gpu_fleet(
    replicas: int | None = None,
    router: str = "least_outstanding",
    jitter_cv: float = 0.0,
    max_batch: int = 64,
    prefix_cache_fraction: float = 0.2,
) -> FleetSpec:
    """Llama-3-70B FP8 TP2 replicas on one H200 rack (16 replicas) with the roofline model."""
    pool = llama70b_pool(
        replicas=replicas,
        step_jitter_cv=jitter_cv,
        batching=BatchingSpec(
            max_batch=max_batch, token_budget=4096, prefix_cache_fraction=prefix_cache_fraction
        ),
    )
    return FleetSpec(pools=(pool,), router=router)


def erlang_c_wait_s(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean wait in queue of M/M/c (Erlang C), s."""
    offered = arrival_rate / service_rate
    rho = offered / servers
    assert rho < 1
    top = offered**servers / math.factorial(servers) / (1 - rho)
    bottom = sum(offered**k / math.factorial(k) for k in range(servers)) + top
    return (top / bottom) / (servers * service_rate - arrival_rate)


def pollaczek_khinchine_wait_s(
    arrival_rate: float, mean_s: float, second_moment_s2: float
) -> float:
    """Mean wait in queue of M/G/1 (Pollaczek-Khinchine), s."""
    rho = arrival_rate * mean_s
    assert rho < 1
    return arrival_rate * second_moment_s2 / (2 * (1 - rho))


def mean_ci(samples: list[float], confidence: float = 0.99) -> tuple[float, float]:
    """Mean of replication means and the half-width of its t confidence interval."""
    values = np.asarray(samples)
    half = (
        stats.t.ppf(0.5 + confidence / 2, len(values) - 1)
        * values.std(ddof=1)
        / math.sqrt(len(values))
    )
    return float(values.mean()), float(half)


@pytest.fixture(autouse=True)
def checked_engine() -> Iterator[list[int]]:
    """Check the census after every simulation of the test.

    The census finds every call in exactly one place, the in-flight places hold exactly the engine's
    active calls, and every KV ledger balances.

    Imported into each ``test_sim_*`` module (so it applies to all of their tests); yields the
    list of checked runs' call counts, so a test can confirm it was checked.
    """
    checked: list[int] = []

    def check(engine: engine_module._Engine, reason: str) -> None:
        engine.check_invariants()
        census = engine.census()
        assert sum(census[p] for p in CENSUS_PLACES) == engine.trees.n_calls, census
        if reason == "drained":
            in_flight = ("parked", "queue", "prefill", "transfer", "decode", "timer")
            assert all(census[p] == 0 for p in in_flight), census
        checked.append(engine.trees.n_calls)

    AFTER_RUN.append(check)
    try:
        yield checked
    finally:
        AFTER_RUN.remove(check)


def assert_census(result: SimulationResult) -> dict[str, int]:
    """The result's census: consistent, and agreeing with the per-call arrays."""
    census = result.census
    assert census["unaccounted"] == 0 and census["double_counted"] == 0, census
    assert sum(census[p] for p in CENSUS_PLACES) == result.trees.n_calls
    assert census["finished"] == int(np.isfinite(result.finish_s).sum())
    failed = 0 if result.failed is None else int(result.failed.sum())
    assert census["failed"] == failed
    in_flight = sum(census[p] for p in ("parked", "queue", "prefill", "transfer", "decode"))
    assert int(np.isfinite(result.ready_s).sum()) == census["finished"] + failed + in_flight
    return census


def trace_workload(
    arrival_s: list[float], prompt_tokens: list[int], output_tokens: list[int]
) -> WorkloadSpec:
    """Single-call trees at the given times with the given token counts (a replayed trace)."""
    trace = Trace("test", np.array(arrival_s), np.array(prompt_tokens), np.array(output_tokens))
    return WorkloadSpec(TraceArrivals(trace), ChatShape(), n_trees=len(arrival_s))


def fixed_pool(
    replicas: int, step_s: float, max_batch: int, token_budget: int, router: str = "round_robin"
) -> FleetSpec:
    """Replicas whose every iteration takes ``step_s`` (unbounded KV, no prefix cache)."""
    pool = PoolSpec(
        name="q",
        role="unified",
        system=load_system("h100"),
        model=load_model("llama3_70b"),
        efficiency=load_efficiency("nvidia_gpu"),
        racks=1,
        replicas=replicas,
        fixed_step_s=step_s,
        batching=BatchingSpec(
            max_batch=max_batch, token_budget=token_budget, prefix_cache_fraction=0.0
        ),
    )
    return FleetSpec(pools=(pool,), router=router)
