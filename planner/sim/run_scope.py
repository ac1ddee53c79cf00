"""Process-wide settings the engine scopes around a run: the cyclic collector, numpy's pages.

Each is a context manager that restores what it found, so a caller's own settings (a notebook
that disabled the collector, or asked numpy for huge pages) survive a simulation.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
from collections.abc import Callable, Iterator


def _numpy_hugepage_switch() -> Callable[[bool], bool] | None:
    """The switch numpy has for ``madvise(MADV_HUGEPAGE)`` on large arrays (``None``: not found)."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, numpy 1
        try:
            multiarray = importlib.import_module(module)
        except ImportError:
            continue
        switch: Callable[[bool], bool] | None = getattr(multiarray, "_set_madvise_hugepage", None)
        return switch
    return None


@contextlib.contextmanager
def numpy_small_pages() -> Iterator[None]:
    """Keep numpy from asking for transparent huge pages for the block (restored after it).

    numpy advises the kernel to back every array of 4 MB or more with 2 MB pages. Drawing and
    building a large run makes many such arrays that live for a moment each, and the kernel
    zeroes each one's huge pages whole on first touch: on a 1000x fleet (540,000 calls) that
    was 15% of the run's CPU time in ``clear_page_erms`` (``perf record -g``), and its cost
    swung from run to run with the host's free huge pages. With small pages the same run took
    5-17% less CPU time (three A/B pairs); results are the same (only page sizes change).
    Scoped, so a notebook's own arrays keep numpy's default.
    """
    switch = _numpy_hugepage_switch()
    before = switch(False) if switch is not None else False
    try:
        yield
    finally:
        if switch is not None:
            switch(before)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (resumed after it if it was running)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
