"""Efficiency factors for accelerator families that have none fitted: the borrowing rule.

``scripts/calibrate.py`` fits one factor set per family from measured rows
(``conf/efficiency/<family>.yaml``). A family with no measurements (Google TPU, AWS Trainium,
Microsoft Maia, Meta MTIA) instead borrows the fitted set of the family of its nearest
architecture class, as listed in ``conf/efficiency/borrowed.yaml``: HBM + systolic/tensor-array
chips borrow ``nvidia_gpu``, SRAM dataflow chips borrow ``groq_lpu``. The result says whether the
factors were fitted for this family (``calibrated``) and, if not, whose they are
(``borrowed_from``), so no output passes a transferred factor off as a fitted one.

Pure functions over mappings: the CLI layer reads the files and passes their contents in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from planner.perf.efficiency import EfficiencyFactors
from planner.specs.errors import ConfigError, reject_unknown_keys

BORROWED_FILE = "borrowed"
"""Stem of the borrowing table in ``conf/efficiency/`` (not a family)."""


@dataclass(frozen=True)
class BorrowingRule:
    """One uncalibrated family and the calibrated family it borrows from.

    Attributes:
        family: The uncalibrated family, e.g. ``google_tpu``.
        borrow_from: The calibrated donor family, e.g. ``nvidia_gpu``.
        reason: Why the donor is the nearest architecture class.
    """

    family: str
    borrow_from: str
    reason: str


@dataclass(frozen=True)
class ResolvedEfficiency:
    """Efficiency factors for a family and where they came from.

    Attributes:
        factors: The factors, labelled with the requested family (so they pass
            ``build_replica``'s family check); values are the donor's when borrowed.
        calibrated: True if fitted on this family's own measurements.
        borrowed_from: The donor family when borrowed, else None.
    """

    factors: EfficiencyFactors
    calibrated: bool
    borrowed_from: str | None


def parse_borrowing(
    data: Mapping[str, Any], prefix: str = "efficiency.borrowed"
) -> dict[str, BorrowingRule]:
    """The borrowing table from the contents of ``conf/efficiency/borrowed.yaml``.

    Raises:
        ConfigError: An entry is not a mapping, has unknown keys, lacks ``borrow_from`` or
            ``reason``, or borrows from itself.
    """
    rules: dict[str, BorrowingRule] = {}
    for family, entry in data.items():
        where = f"{prefix}.{family}"
        if not isinstance(entry, Mapping):
            raise ConfigError(where, "must map borrow_from and reason")
        reject_unknown_keys(where, entry, {"borrow_from", "reason"})
        for key in ("borrow_from", "reason"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ConfigError(f"{where}.{key}", "is required (a non-empty string)")
        if entry["borrow_from"] == family:
            raise ConfigError(f"{where}.borrow_from", f"must name another family, got {family!r}")
        rules[str(family)] = BorrowingRule(str(family), entry["borrow_from"], entry["reason"])
    return rules


def resolve_efficiency(
    family: str,
    fitted: Callable[[str], Mapping[str, Any] | None],
    rules: Mapping[str, BorrowingRule],
) -> ResolvedEfficiency:
    """The factors for ``family``: its own fitted set, else its donor's through ``rules``.

    Args:
        family: The accelerator family (``Accelerator.family``).
        fitted: Returns the contents of a family's fitted factor file, or None if it has none.
        rules: The borrowing table (:func:`parse_borrowing`).

    Raises:
        ConfigError: ``family`` has neither fitted factors nor a rule, or its donor has no
            fitted factors (a donor must itself be calibrated: no chains).
    """
    own = fitted(family)
    if own is not None:
        factors = EfficiencyFactors.from_dict(own, f"efficiency[{family}]")
        # A stack profile borrowed within the family (e.g. vLLM on AMD) is not calibrated either.
        return ResolvedEfficiency(factors, calibrated=factors.calibrated, borrowed_from=None)
    rule = rules.get(family)
    if rule is None:
        allowed = ", ".join(sorted(rules)) or "none"
        raise ConfigError(
            "hardware.accelerator.family",
            f"no fitted factors for {family!r} and no borrowing rule; "
            f"borrowable families: {allowed}",
        )
    donor = fitted(rule.borrow_from)
    if donor is None:
        raise ConfigError(
            f"efficiency.borrowed.{family}.borrow_from",
            f"{rule.borrow_from!r} has no fitted factors; a donor must be calibrated",
        )
    factors = EfficiencyFactors.from_dict(donor, f"efficiency[{rule.borrow_from}]")
    return ResolvedEfficiency(
        dataclasses.replace(
            factors, family=family, calibrated=False, borrowed_from=rule.borrow_from
        ),
        calibrated=False,
        borrowed_from=rule.borrow_from,
    )
