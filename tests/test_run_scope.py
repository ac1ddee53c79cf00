"""The process-wide settings a run scopes (planner.sim.run_scope) are restored after it."""

from __future__ import annotations

import gc

import pytest

from planner.sim.run_scope import _numpy_hugepage_switch, collector_paused, numpy_small_pages


def test_numpy_asks_for_no_huge_pages_inside_and_as_before_after() -> None:
    switch = _numpy_hugepage_switch()
    if switch is None:
        pytest.skip("this numpy has no huge-page switch")
    before = switch(True)
    try:
        with numpy_small_pages():
            assert switch(False) is False  # what the block runs with
        assert switch(True) is True  # restored
    finally:
        switch(before)


def test_the_collector_is_paused_inside_and_left_as_found() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller's own pause is kept
    finally:
        gc.enable()
