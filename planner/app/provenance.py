"""Where a fleet's performance figures come from: fitted or borrowed factors, confirmed parts.

A family with no measurements of its own runs on factors borrowed from a neighbouring family
(``conf/efficiency/borrowed.yaml``), and a press-only part has unconfirmed figures. Every output
built on such a pool carries ``calibrated: false`` / ``hardware_confirmed: false`` (issue 13), so
nobody mistakes a transferred factor for a fitted one.
"""

from __future__ import annotations

from typing import Any

from planner.sim.config import FleetSpec, PoolSpec


def pool_provenance(pool: PoolSpec) -> dict[str, Any]:
    """``calibrated``, ``borrowed_from`` (donor family or None) and ``hardware_confirmed``."""
    return {
        "calibrated": pool.efficiency.calibrated,
        "borrowed_from": pool.efficiency.borrowed_from or None,
        "hardware_confirmed": pool.system.accelerator.confirmed,
    }


def fleet_provenance(fleet: FleetSpec) -> dict[str, dict[str, Any]]:
    """:func:`pool_provenance` of every pool of ``fleet``, by pool name."""
    return {pool.name: pool_provenance(pool) for pool in fleet.pools}


def all_calibrated(pools: Any) -> bool:
    """True unless some entry of a ``{pool: provenance}`` mapping says ``calibrated: false``."""
    return all(
        not isinstance(entry, dict) or entry.get("calibrated") is not False
        for entry in (pools or {}).values()
    )
