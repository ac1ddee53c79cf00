"""The verdict of a ``planner`` run, for the report layer (defined in :mod:`planner.app.verdict`).

The run summary carries its verdict, so the sentences are built in ``app/``; the report and the
console read them from here.
"""

from planner.app.verdict import (
    ATTAINMENT_TO_PASS,
    fleet_name,
    headline_cost,
    verdict,
    verdict_lines,
)

__all__ = ["ATTAINMENT_TO_PASS", "fleet_name", "headline_cost", "verdict", "verdict_lines"]
