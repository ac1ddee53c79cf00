"""The verdict of a ``planner`` run, for the report layer (defined in :mod:`planner.app.verdict`).

The run summary carries its verdict, so the sentences are built in ``app/``; the report and the
console read them from here.
"""

from planner.app.verdict import (
    ATTAINMENT_TO_PASS,
    BUDGET_PARTS,
    budget_line,
    fleet_name,
    headline_cost,
    model_and_fleet,
    passed,
    passes,
    plural,
    verdict,
    verdict_lines,
    worst_shape,
)

__all__ = [
    "ATTAINMENT_TO_PASS",
    "BUDGET_PARTS",
    "budget_line",
    "fleet_name",
    "headline_cost",
    "model_and_fleet",
    "passed",
    "passes",
    "plural",
    "verdict",
    "verdict_lines",
    "worst_shape",
]
