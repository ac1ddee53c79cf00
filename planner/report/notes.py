"""Reader's caveats shared by every report: pools built on borrowed factors or press-only parts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def calibration_notes(pools: Any) -> list[str]:
    """One sentence per pool (or option) built on borrowed factors or press-only figures.

    Args:
        pools: ``{name: entry}`` with the ``calibrated``, ``borrowed_from`` and
            ``hardware_confirmed`` keys of ``summary.json``'s pool entries (missing keys: no note).
    """
    notes = []
    for name, entry in (pools or {}).items():
        if not isinstance(entry, Mapping):
            continue
        if entry.get("calibrated") is False:
            donor = entry.get("borrowed_from")
            source = f"borrowed from {donor}" if donor else "borrowed from a neighbouring stack"
            notes.append(
                f"{name}: calibrated: false. Its efficiency factors are {source}, not fitted on "
                "measurements of this family and stack; read its figures as an estimate."
            )
        if entry.get("hardware_confirmed") is False:
            notes.append(f"{name}: hardware figures unconfirmed (press only); a what-if.")
    return notes
