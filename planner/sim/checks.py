"""Checks the engine runs on itself after every run; empty unless a caller registers one.

The test suite registers the census and KV-ledger check here (``tests/sim_helpers.py``), so every
engine test checks conservation. A hook rather than a patched function because the engine may be
compiled (:mod:`planner.native`), and a compiled module calls its own functions directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

AFTER_RUN: list[Callable[[Any, str], None]] = []
"""Called with the engine (``planner.sim.engine._Engine``) and the stop reason after each run."""
