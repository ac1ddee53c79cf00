"""Integer laws for token lengths and counts, delay laws in seconds, and their presets.

A :class:`LengthLaw` draws non-negative integers: prompt and output token counts of calls, and
also integer counts such as the fan-out of an agent tree or the length of a ReAct chain (its
values then count calls rather than tokens). A :class:`DelayLaw` draws non-negative durations
in seconds (tool-call delays). Both are frozen specs validated on construction; planner.config
builds them from plain config mappings and names the offending field on bad input.

Sampling always goes through a ``numpy.random.Generator`` passed in and draws whole blocks at
once (a scalar draw costs about 15x a draw taken in a block, DESIGN.md pitfalls).

The presets at the bottom are the defaults of ``/work/shared/reference/workloads.md`` (rows D1,
D6, D7); each cites its row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, Final, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner.specs.errors import (
    ConfigError,
    require_choice,
    require_non_negative,
    require_positive,
)

#: Standard normal 90th percentile: a lognormal with median m and p90 q has sigma ln(q/m)/Z_90.
#: The value of ``scipy.stats.norm.ppf(0.9)`` written out, so that importing this module (every
#: CLI does at start-up) does not import scipy.stats (~0.6 s); tests/test_startup.py checks it.
Z_90: Final[float] = 1.2815515655446004

LENGTH_KINDS: Final = ("fixed", "lognormal", "uniform", "empirical", "geometric")
DELAY_KINDS: Final = ("fixed", "lognormal", "exponential", "uniform")

_T = TypeVar("_T")

# Largest value a lognormal draw is clipped to before the cast to int64 (avoids overflow).
_INT_CEILING: Final = float(2**53)


# --------------------------------------------------------------------------------------------
# Config helpers shared by the workload modules
# --------------------------------------------------------------------------------------------


def must(value: _T | None) -> _T:
    """Narrow an optional field that validation has already proved present."""
    if value is None:
        raise AssertionError("validated field is unexpectedly None")
    return value


def _positive(field: str, value: object) -> float:
    return require_positive(field, value)  # type: ignore[arg-type]  # validates the type too


def _non_negative(field: str, value: object) -> float:
    return require_non_negative(field, value)  # type: ignore[arg-type]  # validates the type too


def require_int(field: str, value: object, minimum: int) -> int:
    """``value`` as an int, refused unless an integer (not a bool) of at least ``minimum``.

    Raises:
        ConfigError: naming ``field`` and what is allowed.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(field, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# LengthLaw
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthLaw:
    """A law of non-negative integers (tokens, or a count of calls).

    Kinds and the fields they use:

    - ``fixed``: always ``value``.
    - ``lognormal``: ``median`` and either ``p90`` or ``sigma`` (sigma of the underlying
      normal); draws are rounded to the nearest integer.
    - ``uniform``: integers ``low`` .. ``high`` inclusive, equally likely.
    - ``empirical``: ``values`` sampled with replacement (e.g. a trace's token column).
    - ``geometric``: trials to the first success with probability ``1 / mean_value`` (support
      1, 2, ...; mean ``mean_value``): the discrete memoryless law, so a call of that many
      fixed-time steps has near-exponential service (squared CV ``1 - 1/mean_value``).

    Every draw is finally clipped to ``[min_value, max_value]`` (``max_value`` None: no cap).

    Attributes:
        kind: One of ``fixed``, ``lognormal``, ``uniform``, ``empirical``.
        value: Constant of the ``fixed`` kind.
        median: Median of the ``lognormal`` kind.
        p90: 90th percentile of the ``lognormal`` kind (> median); or give ``sigma``.
        sigma: Log-space standard deviation of the ``lognormal`` kind; or give ``p90``.
        low: Smallest value of the ``uniform`` kind.
        high: Largest value of the ``uniform`` kind (inclusive).
        values: Population of the ``empirical`` kind.
        mean_value: Mean of the ``geometric`` kind (>= 1).
        min_value: Lower clip, default 1 (a call has at least one token).
        max_value: Upper clip, e.g. a model's context window or a trace's observed maximum.
    """

    kind: str
    value: int | None = None
    median: float | None = None
    p90: float | None = None
    sigma: float | None = None
    low: int | None = None
    high: int | None = None
    values: tuple[int, ...] = ()
    mean_value: float | None = None
    min_value: int = 1
    max_value: int | None = None

    _USES: ClassVar[dict[str, tuple[str, ...]]] = {
        "fixed": ("value",),
        "lognormal": ("median", "p90", "sigma"),
        "uniform": ("low", "high"),
        "empirical": ("values",),
        "geometric": ("mean_value",),
    }

    def __post_init__(self) -> None:
        name = "LengthLaw"
        require_choice(f"{name}.kind", self.kind, LENGTH_KINDS)
        for other in ("value", "median", "p90", "sigma", "low", "high", "values", "mean_value"):
            if other not in self._USES[self.kind] and getattr(self, other) not in (None, ()):
                raise ConfigError(f"{name}.{other}", f"is not used by kind {self.kind!r}")
        require_int(f"{name}.min_value", self.min_value, 0)
        if self.max_value is not None:
            require_int(f"{name}.max_value", self.max_value, 0)
            if self.max_value < self.min_value:
                raise ConfigError(
                    f"{name}.max_value",
                    f"must be >= {name}.min_value ({self.min_value}), got {self.max_value}",
                )
        {
            "fixed": self._check_fixed,
            "lognormal": self._check_lognormal,
            "uniform": self._check_uniform,
            "geometric": self._check_geometric,
            "empirical": self._check_empirical,
        }[self.kind](name)

    def _check_fixed(self, name: str) -> None:
        require_int(f"{name}.value", self.value, self.min_value)
        if self.max_value is not None and must(self.value) > self.max_value:
            raise ConfigError(
                f"{name}.value", f"must be <= {name}.max_value ({self.max_value}), got {self.value}"
            )

    def _check_lognormal(self, name: str) -> None:
        median = _positive(f"{name}.median", self.median)
        if (self.p90 is None) == (self.sigma is None):
            raise ConfigError(f"{name}.p90", "give exactly one of p90 and sigma")
        if self.p90 is not None:
            if _positive(f"{name}.p90", self.p90) <= median:
                raise ConfigError(
                    f"{name}.p90", f"must be > {name}.median ({self.median}), got {self.p90}"
                )
        else:
            _positive(f"{name}.sigma", self.sigma)

    def _check_uniform(self, name: str) -> None:
        low = require_int(f"{name}.low", self.low, 0)
        high = require_int(f"{name}.high", self.high, 0)
        if low > high:
            raise ConfigError(f"{name}.low", f"must be <= {name}.high ({high}), got {low}")

    def _check_geometric(self, name: str) -> None:
        if _positive(f"{name}.mean_value", self.mean_value) < 1:
            raise ConfigError(f"{name}.mean_value", f"must be >= 1, got {self.mean_value}")

    def _check_empirical(self, name: str) -> None:
        if not isinstance(self.values, tuple) or not self.values:
            raise ConfigError(f"{name}.values", "must be a non-empty sequence of integers")
        if self._values_array.min() < 0:
            raise ConfigError(f"{name}.values", "must all be >= 0")

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def fixed(cls, value: int, *, max_value: int | None = None) -> LengthLaw:
        """A constant law."""
        return cls("fixed", value=value, max_value=max_value)

    @classmethod
    def lognormal(
        cls,
        median: float,
        *,
        p90: float | None = None,
        sigma: float | None = None,
        min_value: int = 1,
        max_value: int | None = None,
    ) -> LengthLaw:
        """A lognormal law from its median and its p90 or log-space sigma."""
        return cls(
            "lognormal",
            median=median,
            p90=p90,
            sigma=sigma,
            min_value=min_value,
            max_value=max_value,
        )

    @classmethod
    def uniform(cls, low: int, high: int) -> LengthLaw:
        """Integers ``low`` .. ``high`` inclusive, equally likely."""
        return cls("uniform", low=low, high=high)

    @classmethod
    def empirical(cls, values: ArrayLike, *, min_value: int = 1) -> LengthLaw:
        """Resample ``values`` (e.g. ``trace.context_tokens``) with replacement."""
        array = np.asarray(values)
        if array.dtype.kind not in "iu":
            raise ConfigError("LengthLaw.values", f"must be integers, got dtype {array.dtype}")
        return cls("empirical", values=tuple(int(v) for v in array), min_value=min_value)

    # -- derived -----------------------------------------------------------------------------

    @cached_property
    def _values_array(self) -> NDArray[np.int64]:
        return np.asarray(self.values, dtype=np.int64)

    @property
    def log_sigma(self) -> float:
        """Log-space sigma of a lognormal law: ``sigma``, or ``ln(p90 / median) / Z_90``."""
        if self.kind != "lognormal":
            raise ValueError(f"log_sigma is defined for lognormal laws only, not {self.kind!r}")
        if self.sigma is not None:
            return float(self.sigma)
        return math.log(must(self.p90) / must(self.median)) / Z_90

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        """Draw ``n`` values in one block.

        Args:
            rng: The random stream to draw from.
            n: Number of values (>= 0).

        Returns:
            ``int64`` array of shape ``(n,)``, every value in ``[min_value, max_value]``.
        """
        if self.kind == "fixed":
            return np.full(n, self.value, dtype=np.int64)
        if self.kind == "lognormal":
            draws = rng.lognormal(math.log(must(self.median)), self.log_sigma, size=n)
            out = np.rint(np.minimum(draws, _INT_CEILING)).astype(np.int64)
        elif self.kind == "uniform":
            low, high = must(self.low), must(self.high)
            out = rng.integers(low, high, size=n, endpoint=True, dtype=np.int64)
        elif self.kind == "geometric":
            out = rng.geometric(1.0 / must(self.mean_value), size=n).astype(np.int64)
        else:
            out = self._values_array[rng.integers(0, len(self.values), size=n)]
        clipped: NDArray[np.int64] = np.clip(out, self.min_value, self.max_value)
        return clipped

    def mean(self) -> float:
        """Expected value of a draw, clipping included (lognormal: rounding ignored)."""
        lo, hi = self.min_value, self.max_value
        if self.kind == "fixed":
            return float(must(self.value))
        if self.kind == "uniform":
            span = np.arange(must(self.low), must(self.high) + 1)
            return float(np.clip(span, lo, hi).mean())
        if self.kind == "empirical":
            return float(np.clip(self._values_array, lo, hi).mean())
        if self.kind == "geometric":
            if lo <= 1 and hi is None:
                return float(must(self.mean_value))
            # scipy.stats imported here, not at module level: it costs ~0.6 s at CLI start-up.
            from scipy import stats

            support = np.arange(1, 200 * int(must(self.mean_value)) + 2)
            law = stats.geom(1.0 / must(self.mean_value))
            return float((np.clip(support, lo, hi) * law.pmf(support)).sum())
        from scipy import stats  # lazily: ~0.6 s at CLI start-up (see Z_90)

        mu, sigma = math.log(must(self.median)), self.log_sigma
        upper = math.inf if hi is None else float(hi)
        lower = max(float(lo), 1e-300)
        law = stats.lognorm(s=sigma, scale=math.exp(mu))
        # E[clip(X, a, b)] = a P(X<a) + E[X; a<=X<=b] + b P(X>b); partial lognormal expectation.
        shift = mu + sigma**2

        def phi(x: float) -> float:
            return float(stats.norm.cdf((math.log(x) - shift) / sigma)) if x < math.inf else 1.0

        partial = math.exp(mu + sigma**2 / 2) * (phi(upper) - phi(lower))
        tail = 0.0 if math.isinf(upper) else upper * float(law.sf(upper))
        return float(lo * law.cdf(lower) + partial + tail)


# --------------------------------------------------------------------------------------------
# DelayLaw
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DelayLaw:
    """A law of non-negative durations in seconds (tool-call delays).

    Kinds: ``fixed`` (``value_s``), ``lognormal`` (``median_s`` and ``p90_s`` or ``sigma``),
    ``exponential`` (``mean_s``), ``uniform`` (``low_s`` .. ``high_s``).

    Attributes:
        kind: One of ``fixed``, ``lognormal``, ``exponential``, ``uniform``.
        value_s: Constant of the ``fixed`` kind, seconds (0 allowed).
        median_s: Median of the ``lognormal`` kind, seconds.
        p90_s: 90th percentile of the ``lognormal`` kind, seconds; or give ``sigma``.
        sigma: Log-space standard deviation of the ``lognormal`` kind.
        mean_s: Mean of the ``exponential`` kind, seconds.
        low_s: Lower bound of the ``uniform`` kind, seconds.
        high_s: Upper bound of the ``uniform`` kind, seconds.
    """

    kind: str
    value_s: float | None = None
    median_s: float | None = None
    p90_s: float | None = None
    sigma: float | None = None
    mean_s: float | None = None
    low_s: float | None = None
    high_s: float | None = None

    _USES: ClassVar[dict[str, tuple[str, ...]]] = {
        "fixed": ("value_s",),
        "lognormal": ("median_s", "p90_s", "sigma"),
        "exponential": ("mean_s",),
        "uniform": ("low_s", "high_s"),
    }

    def __post_init__(self) -> None:
        name = "DelayLaw"
        require_choice(f"{name}.kind", self.kind, DELAY_KINDS)
        for other in ("value_s", "median_s", "p90_s", "sigma", "mean_s", "low_s", "high_s"):
            if other not in self._USES[self.kind] and getattr(self, other) is not None:
                raise ConfigError(f"{name}.{other}", f"is not used by kind {self.kind!r}")
        if self.kind == "fixed":
            _non_negative(f"{name}.value_s", self.value_s)
        elif self.kind == "lognormal":
            median = _positive(f"{name}.median_s", self.median_s)
            if (self.p90_s is None) == (self.sigma is None):
                raise ConfigError(f"{name}.p90_s", "give exactly one of p90_s and sigma")
            if self.p90_s is not None:
                if _positive(f"{name}.p90_s", self.p90_s) <= median:
                    raise ConfigError(
                        f"{name}.p90_s",
                        f"must be > {name}.median_s ({self.median_s}), got {self.p90_s}",
                    )
            else:
                _positive(f"{name}.sigma", self.sigma)
        elif self.kind == "exponential":
            _positive(f"{name}.mean_s", self.mean_s)
        else:
            low = _non_negative(f"{name}.low_s", self.low_s)
            high = _non_negative(f"{name}.high_s", self.high_s)
            if low > high:
                raise ConfigError(f"{name}.low_s", f"must be <= {name}.high_s ({high}), got {low}")

    @classmethod
    def fixed(cls, value_s: float) -> DelayLaw:
        """A constant delay of ``value_s`` seconds."""
        return cls("fixed", value_s=value_s)

    @property
    def log_sigma(self) -> float:
        """Log-space sigma of a lognormal law."""
        if self.sigma is not None:
            return float(self.sigma)
        return math.log(must(self.p90_s) / must(self.median_s)) / Z_90

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        """Draw ``n`` delays in seconds in one block (``float64``, all >= 0)."""
        if self.kind == "fixed":
            return np.full(n, must(self.value_s), dtype=np.float64)
        if self.kind == "lognormal":
            return rng.lognormal(math.log(must(self.median_s)), self.log_sigma, size=n)
        if self.kind == "exponential":
            return rng.exponential(must(self.mean_s), size=n)
        return rng.uniform(must(self.low_s), must(self.high_s), size=n)

    def expected_s(self) -> float:
        """Expected delay, seconds."""
        if self.kind == "fixed":
            return float(must(self.value_s))
        if self.kind == "lognormal":
            return must(self.median_s) * math.exp(self.log_sigma**2 / 2)
        if self.kind == "exponential":
            return float(must(self.mean_s))
        return (must(self.low_s) + must(self.high_s)) / 2


# --------------------------------------------------------------------------------------------
# Presets (reference/workloads.md)
# --------------------------------------------------------------------------------------------

#: Chat prompt tokens: D1 "Conversation" row (Azure 2023 conv trace): p50 1,020, p90 2,734,
#: max 14,050; D7 "Chat" default (~1.0 k median / 2.7 k p90). The lognormal through p50 and
#: p90 has mean ~1,370 against the measured 1,155 (the real tail is lighter).
CHAT_PROMPT_TOKENS: Final = LengthLaw.lognormal(1020, p90=2734, max_value=14050)

#: Chat output tokens: D1 "Conversation" row: p50 129, p90 424, max 1,000; D7 "Chat" default.
CHAT_OUTPUT_TOKENS: Final = LengthLaw.lognormal(129, p90=424, max_value=1000)

#: Code-completion prompt tokens: D1 "Code" row (Azure 2023 code trace): p50 1,469,
#: p90 5,188, max 7,437; D7 "Code completion" default.
CODE_PROMPT_TOKENS: Final = LengthLaw.lognormal(1469, p90=5188, max_value=7437)

#: Code-completion output tokens: D1 "Code" row: p50 13, p90 55, max 1,899.
CODE_OUTPUT_TOKENS: Final = LengthLaw.lognormal(13, p90=55, max_value=1899)

#: Reasoning output tokens: D7 "Reasoning" (MLPerf DeepSeek-R1 dataset, ~3.7 k per request);
#: only the mean is known, so a constant.
REASONING_OUTPUT_TOKENS: Final = LengthLaw.fixed(3700)

#: Fraction of an agent call's prompt that is a prefix shared with other calls: D6 Copilot
#: row, 540.95 B cached of 631.4 B prompt tokens = 0.857 (D7: 86-96 % from prefix cache).
AGENT_SHARED_PREFIX_FRACTION: Final = 0.857

#: Shared prefix (system prompt + task context) of one agent tree, tokens: D6 Copilot row,
#: ~67.8 k prompt tokens per call x 0.857 cached = ~58 k mean. Only the mean is known: sigma
#: 0.6 and the cap of 128 k tokens (room left in a ~200 k-token context window) are
#: assumptions; median 50,900 gives a clipped mean of 58 k.
AGENT_SHARED_PREFIX_TOKENS: Final = LengthLaw.lognormal(50_900, sigma=0.6, max_value=128_000)

#: New (not shared) prompt tokens per agent call: D6 Copilot row, ~67.8 k prompt tokens per
#: call x (1 - 0.857) = ~9.7 k mean. Only the mean is known: sigma 1.0 and the cap of 64 k
#: are assumptions; median 6,100 gives a clipped mean of 9.8 k. With the shared prefix above, a
#: whole prompt averages ~68 k tokens (D7: ~68-154 k context tokens per call).
AGENT_CALL_NEW_INPUT_TOKENS: Final = LengthLaw.lognormal(6100, sigma=1.0, max_value=64_000)

#: Output tokens per agent call: D6 Copilot (~527) and TraceLab (~523) means; sigma 1.0 is an
#: assumption, median 320 gives mean 320 x e^0.5 = 528; cap 16 k tokens is an assumption.
AGENT_CALL_OUTPUT_TOKENS: Final = LengthLaw.lognormal(320, sigma=1.0, max_value=16_000)

#: Sub-calls of a fan-out (map-reduce) agent tree: 10-50 (DESIGN.md "The workload";
#: calibration question "10-50 sub-call agent trees").
FANOUT_SUBCALLS: Final = LengthLaw.uniform(10, 50)

#: Steps of a ReAct chain: D6 TraceLab per-request tool-initiated steps p90 20, p99 86, mean
#: 7.8 (Copilot: 7.83 LLM calls per turn). Lognormal with p90 20 and the cap at the p99; the
#: median 5 is chosen so the mean (~8.5) is near the measured 7.8 (the measured p50 of 1 cannot
#: be matched by a lognormal together with the p90).
CHAIN_STEPS: Final = LengthLaw.lognormal(5, p90=20, max_value=86)

#: Tool-call delay before a dependent call: no row in workloads.md; an assumption of a
#: lognormal with median 1 s and sigma 1.0 (p90 ~3.6 s, mean ~1.65 s).
TOOL_DELAY: Final = DelayLaw("lognormal", median_s=1.0, sigma=1.0)

#: No delay (debate turns follow each other without tool calls).
NO_DELAY: Final = DelayLaw.fixed(0.0)
