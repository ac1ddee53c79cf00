"""The cost of a simulated fleet: each pool's parts, then the fleet's yearly and per-unit cost.

Written once here for every caller (``planner``, ``planner-size``, the studies): a pool's cost
depends on its hardware, racks and the mean IT power the simulation measured; the per-token and
per-tree figures assume the simulated load runs ``economics.hours_per_year`` hours a year
(:func:`planner.econ.tco.cost_summary`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner.econ.tco import EconomicsSpec, cost_summary, pool_cost
from planner.sim.config import FleetSpec


def fleet_cost(
    fleet: FleetSpec,
    power_kw_mean: Mapping[str, float],
    *,
    output_tokens_per_s: float,
    trees_per_s: float,
    economics: EconomicsSpec,
    racks: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The ``cost`` section of ``summary.json`` for ``fleet``.

    Args:
        fleet: The simulated fleet (hardware and racks of each pool).
        power_kw_mean: Mean IT power (kW) of each pool over the run, by pool name.
        output_tokens_per_s: Output tokens completed per second of simulated time.
        trees_per_s: Agent trees completed per second of simulated time.
        economics: Prices, depreciation and utilization hours.
        racks: Rack counts replacing the fleet's (a sizing result); absent pools keep theirs.

    Returns:
        The mapping :func:`planner.econ.tco.cost_summary` documents (USD, USD/year).
    """
    racks = racks or {}
    parts = [
        pool_cost(p.name, p.system, racks.get(p.name, p.racks), power_kw_mean[p.name], economics)
        for p in fleet.pools
    ]
    return cost_summary(
        parts,
        output_tokens_per_s=output_tokens_per_s,
        trees_per_s=trees_per_s,
        economics=economics,
    )


def summary_cost(
    fleet: FleetSpec,
    summary: Mapping[str, Any],
    economics: EconomicsSpec,
    racks: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """:func:`fleet_cost` reading power and throughput from a run summary (``summary.json``).

    Args:
        fleet: The fleet the summary describes.
        summary: :func:`planner.sim.metrics.summarize`'s output (``pools``, ``throughput``).
        economics: Prices, depreciation and utilization hours.
        racks: Rack counts replacing the fleet's, as in :func:`fleet_cost`.

    Returns:
        The ``cost`` section.
    """
    throughput = summary["throughput"]
    return fleet_cost(
        fleet,
        {name: float(pool["power_kw_mean"]) for name, pool in summary["pools"].items()},
        output_tokens_per_s=float(throughput["output_tokens_per_s"]),
        trees_per_s=float(throughput["trees_per_s"]),
        economics=economics,
        racks=racks,
    )
