"""Per-iteration step-time jitter that a segment can sum in O(1).

Each replica owns one stream of independent lognormal factors ``f_0, f_1, ...`` (mean 1, the
pool's coefficient of variation): iteration ``k`` of the replica's life takes its modelled time
times ``f_k``, in segment mode and in stepwise mode alike, so both draw the same distribution
(indeed the same factors). A segment of ``n`` iterations whose modelled times are linear in the
iteration index, ``t_i = a + b i``, lasts ``sum_i (a + b i) f_{k+i}``; with the prefix sums
``P0[j] = sum_{m<j} f_m`` and ``P1[j] = sum_{m<j} m f_m`` of each block of factors that is
``a S0 + b (S1 - k S0)`` over the block, so a segment costs a few list look-ups however long.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

JITTER_BLOCK = 512
"""Factors drawn (and prefix-summed) at a time: ~12 kB of arrays per replica in use."""


class JitterStream:
    """The factors of one replica, drawn lazily in blocks (see the module docstring).

    Args:
        rng: The replica's own random stream.
        cv: Coefficient of variation of a factor (> 0).
    """

    __slots__ = ("_blocks", "_drawn", "_mu", "_rng", "_sigma")

    def __init__(self, rng: np.random.Generator, cv: float) -> None:
        """Set the lognormal's parameters for mean 1 and ``cv``; no factor is drawn yet."""
        self._rng = rng
        self._sigma = math.sqrt(math.log1p(cv * cv))
        self._mu = -self._sigma * self._sigma / 2.0
        # block number -> (factors, P0, P1); P* have one more entry than factors.
        self._blocks: dict[int, tuple[NDArray[np.float64], ...]] = {}
        self._drawn = 0  # blocks drawn so far

    def _block(self, number: int) -> tuple[NDArray[np.float64], ...]:
        block = self._blocks.get(number)
        if block is None:
            # Blocks are drawn in order, so the stream does not depend on how it is read.
            for n in range(self._drawn, number + 1):
                f = self._rng.lognormal(self._mu, self._sigma, JITTER_BLOCK)
                p0 = np.concatenate(([0.0], np.cumsum(f)))
                p1 = np.concatenate(([0.0], np.cumsum(f * np.arange(JITTER_BLOCK))))
                self._blocks[n] = (f, p0, p1)
            self._drawn = max(self._drawn, number + 1)
            block = self._blocks[number]
        return block

    def factor(self, k: int) -> float:
        """The factor of iteration ``k``."""
        return float(self._block(k // JITTER_BLOCK)[0][k % JITTER_BLOCK])

    def weighted_sum(self, start: int, n: int, a: float, slope: float) -> float:
        """``sum_{i<n} (a + slope * i) * f_{start+i}``."""
        total = 0.0
        offset = 0  # segment index of the first iteration in this block
        while offset < n:
            k = start + offset
            number, low = divmod(k, JITTER_BLOCK)
            high = min(JITTER_BLOCK, low + n - offset)
            _, p0, p1 = self._block(number)
            s0 = float(p0[high] - p0[low])
            s1 = float(p1[high] - p1[low])
            total += (a + slope * offset) * s0 + slope * (s1 - low * s0)
            offset += high - low
        return total

    def forget_before(self, k: int) -> None:
        """Drop blocks wholly before iteration ``k`` (the replica has passed them)."""
        keep = k // JITTER_BLOCK
        for number in [b for b in self._blocks if b < keep]:
            del self._blocks[number]
