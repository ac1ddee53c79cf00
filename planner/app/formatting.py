"""Money as every output writes it: the verdict, the terminal, the reports and answer sentences.

One rule for one kind of figure, so a review never sees ``$0.4625`` in one place and ``$0.46``
in the next. The report layer re-exports it (:mod:`planner.report.html_parts`).
"""

from __future__ import annotations

import math
from typing import Any, Final

MISSING: Final = "–"
"""What an undefined figure prints as."""


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (missing, a bool, not a number, inf or NaN)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt_usd(value: Any) -> str:
    """Dollars for a table or a sentence.

    From $100,000 up in millions (``$10.20 M``, ``-$0.19 M``: one unit for the sums a review
    compares), thousands to the dollar, smaller to the cent; ``–`` when undefined.
    """
    number = finite(value)
    if number is None:
        return MISSING
    sign = "-" if number < 0 else ""
    magnitude = abs(number)
    if magnitude >= 1e5:
        return f"{sign}${magnitude / 1e6:,.2f} M"
    if magnitude >= 1e3:
        return f"{sign}${magnitude:,.0f}"
    return f"{sign}${magnitude:,.2f}"
