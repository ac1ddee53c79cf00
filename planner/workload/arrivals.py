"""Arrival processes: when user requests (chat calls or agent query trees) arrive.

Every process is a frozen spec with one method, :meth:`ArrivalProcess.sample`, returning
sorted arrival times in seconds from the start of the simulation. Kinds:

- ``poisson``: exponential inter-arrival times at ``rate_per_s``.
- ``gamma``: bursty renewal process, Gamma inter-arrivals with mean ``1 / rate_per_s`` and a
  chosen coefficient of variation ``cv`` (cv = 1 is Poisson; BurstGPT, workloads.md D3, models
  its arrivals this way).
- ``diurnal``: non-homogeneous Poisson process whose rate follows a daily cycle (24 hourly
  relative rates, or a sinusoid with a peak/trough ratio), sampled by thinning.
- ``offline``: a batch of requests all present at t = 0.
- ``trace``: replay of a parsed trace's arrival times (optionally sped up).
- ``closed_loop``: ``users`` clients, each sending its next request when its previous one
  finishes (after a think time): the benchmark clients' way of loading a server
  (``benchmark_serving --max-concurrency``). Its arrival times depend on the service, so it
  has no :meth:`~ArrivalProcess.sample`; the simulator drives it through :class:`ClosedLoop`.

Randomness comes only from the ``numpy.random.Generator`` passed in, drawn in blocks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final

import numpy as np
from numpy.typing import NDArray

from planner.specs.errors import (
    ConfigError,
    require_non_negative,
    require_positive,
    require_positive_int,
)
from planner.workload.lengths import NO_DELAY, DelayLaw, must
from planner.workload.trace import Trace

ARRIVAL_KINDS: Final = ("poisson", "gamma", "diurnal", "offline", "trace", "closed_loop")

#: Refuse to build more arrivals than this in one call (about 0.8 GB of float64 and temporaries).
MAX_ARRIVALS: Final = 50_000_000

_HOURS_PER_DAY: Final = 24


def _check_limits(horizon_s: float | None, max_count: int | None) -> float:
    """Validate the sample limits and return the horizon (inf when not given)."""
    if horizon_s is None and max_count is None:
        raise ConfigError("horizon_s", "give horizon_s, max_count or both")
    if max_count is not None and (
        isinstance(max_count, bool) or not isinstance(max_count, (int, np.integer)) or max_count < 0
    ):
        raise ConfigError("max_count", f"must be an integer >= 0, got {max_count!r}")
    if horizon_s is None:
        return math.inf
    if isinstance(horizon_s, bool) or not isinstance(horizon_s, (int, float)) or horizon_s <= 0:
        raise ConfigError("horizon_s", f"must be a number > 0 (inf allowed), got {horizon_s!r}")
    if math.isinf(horizon_s) and max_count is None:
        raise ConfigError("max_count", "is required when horizon_s is infinite")
    return float(horizon_s)


def _expected_guard(expected: float) -> None:
    if expected > MAX_ARRIVALS:
        raise ConfigError(
            "horizon_s",
            f"would produce ~{expected:.3g} arrivals (> {MAX_ARRIVALS:,}); "
            "shorten the horizon or pass max_count",
        )


def _renewal(
    draw_gaps_s: Callable[[int], NDArray[np.float64]],
    mean_gap_s: float,
    horizon_s: float,
    max_count: int | None,
) -> NDArray[np.float64]:
    """Arrival times of a renewal process: cumulative sums of gap blocks.

    Blocks are sized from the expected number of arrivals left before the horizon (plus a
    margin), so a typical call draws one or two blocks.
    """
    want = horizon_s / mean_gap_s
    if max_count is not None:
        want = min(want, float(max_count))
    _expected_guard(want)
    chunks: list[NDArray[np.float64]] = []
    t_s, got = 0.0, 0
    while True:
        left = (horizon_s - t_s) / mean_gap_s
        if max_count is not None:
            left = min(left, float(max_count - got))
        block = int(min(left + 5.0 * math.sqrt(left) + 16.0, 2_000_000.0))
        if max_count is not None:
            block = min(block, max_count - got)
        if block <= 0:
            break
        times = t_s + np.cumsum(draw_gaps_s(block))
        chunks.append(times)
        got += block
        t_s = float(times[-1])
        if t_s >= horizon_s or (max_count is not None and got >= max_count):
            break
    out = np.concatenate(chunks) if chunks else np.empty(0)
    if not math.isinf(horizon_s):
        out = out[: np.searchsorted(out, horizon_s, side="left")]
    return out[:max_count] if max_count is not None else out


class ArrivalProcess(ABC):
    """Common interface of the arrival processes (frozen dataclass subclasses)."""

    kind: ClassVar[str]

    def sample(
        self,
        rng: np.random.Generator,
        *,
        horizon_s: float | None = None,
        max_count: int | None = None,
    ) -> NDArray[np.float64]:
        """Draw arrival times.

        Args:
            rng: The random stream to draw from (unused by ``offline`` and ``trace``).
            horizon_s: Keep arrivals in ``[0, horizon_s)`` seconds; ``inf`` allowed together
                with ``max_count``.
            max_count: Keep at most this many (the first ones).

        Returns:
            Sorted ``float64`` array of arrival times in seconds. With only ``max_count`` the
            array has exactly ``max_count`` entries (fewer for a shorter offline batch or trace).

        Raises:
            ConfigError: Neither limit given, or a limit out of range, or the horizon would
                produce more than :data:`MAX_ARRIVALS` arrivals.
        """
        horizon = _check_limits(horizon_s, max_count)
        count = None if max_count is None else int(max_count)
        return self._sample(rng, horizon, count)

    @abstractmethod
    def _sample(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None
    ) -> NDArray[np.float64]: ...

    @property
    @abstractmethod
    def mean_rate_per_s(self) -> float:
        """Long-run mean arrival rate, requests per second (inf for an offline batch)."""


@dataclass(frozen=True)
class PoissonArrivals(ArrivalProcess):
    """Poisson arrivals: independent exponential gaps.

    Attributes:
        rate_per_s: Mean arrival rate, requests per second.
    """

    rate_per_s: float
    kind: ClassVar[str] = "poisson"

    def __post_init__(self) -> None:
        """Check the fields (ConfigError naming the first bad one)."""
        require_positive("PoissonArrivals.rate_per_s", self.rate_per_s)

    @property
    def mean_rate_per_s(self) -> float:
        """Mean arrival rate, requests per second."""
        return float(self.rate_per_s)

    def _sample(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None
    ) -> NDArray[np.float64]:
        mean_gap_s = 1.0 / self.rate_per_s
        return _renewal(lambda n: rng.exponential(mean_gap_s, n), mean_gap_s, horizon_s, max_count)


@dataclass(frozen=True)
class GammaArrivals(ArrivalProcess):
    """Bursty renewal arrivals: Gamma gaps with a chosen coefficient of variation.

    The gap law is Gamma(shape 1/cv^2, scale cv^2/rate): mean ``1 / rate_per_s``, standard
    deviation ``cv / rate_per_s``. ``cv = 1`` draws exactly the Poisson process (same numbers
    from the same stream); ``cv > 1`` is burstier, ``cv < 1`` more regular.

    Attributes:
        rate_per_s: Mean arrival rate, requests per second.
        cv: Coefficient of variation of the gaps (> 0).
    """

    rate_per_s: float
    cv: float
    kind: ClassVar[str] = "gamma"

    def __post_init__(self) -> None:
        """Check the fields (ConfigError naming the first bad one)."""
        require_positive("GammaArrivals.rate_per_s", self.rate_per_s)
        require_positive("GammaArrivals.cv", self.cv)

    @property
    def mean_rate_per_s(self) -> float:
        """Mean arrival rate, requests per second."""
        return float(self.rate_per_s)

    def _sample(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None
    ) -> NDArray[np.float64]:
        mean_gap_s = 1.0 / self.rate_per_s
        if self.cv == 1.0:
            return PoissonArrivals(self.rate_per_s)._sample(rng, horizon_s, max_count)
        shape = 1.0 / self.cv**2
        scale_s = mean_gap_s / shape
        return _renewal(lambda n: rng.gamma(shape, scale_s, n), mean_gap_s, horizon_s, max_count)


@dataclass(frozen=True)
class DiurnalArrivals(ArrivalProcess):
    """Non-homogeneous Poisson arrivals following a daily cycle, sampled by thinning.

    The rate at time t is ``rate_per_s * f(hour(t))`` where ``hour(t) = (start_hour + 24 t /
    period_s) mod 24`` and f averages 1 over a period, so ``rate_per_s`` is the mean rate. f is
    either the piecewise-constant ``hourly_profile`` (24 relative rates, normalised by their
    mean) or the sinusoid ``1 + a cos(2 pi (hour - peak_hour) / 24)`` with
    ``a = (peak_to_trough - 1) / (peak_to_trough + 1)``. Give exactly one of the two.

    Attributes:
        rate_per_s: Mean rate over a period, requests per second.
        hourly_profile: 24 relative rates (>= 0, not all zero), hour 0 first.
        peak_to_trough: Ratio of the highest to the lowest rate of the sinusoid (>= 1).
        peak_hour: Hour of the sinusoid's peak, in [0, 24).
        start_hour: Hour of day at t = 0, in [0, 24).
        period_s: Length of one cycle, seconds (86,400 for a day; shorter compresses it).
    """

    rate_per_s: float
    hourly_profile: tuple[float, ...] | None = None
    peak_to_trough: float | None = None
    peak_hour: float = 14.0
    start_hour: float = 0.0
    period_s: float = 86_400.0
    kind: ClassVar[str] = "diurnal"

    def __post_init__(self) -> None:
        """Check the fields (ConfigError naming the first bad one)."""
        name = "DiurnalArrivals"
        require_positive(f"{name}.rate_per_s", self.rate_per_s)
        require_positive(f"{name}.period_s", self.period_s)
        for attr in ("peak_hour", "start_hour"):
            hour = require_non_negative(f"{name}.{attr}", getattr(self, attr))
            if hour >= _HOURS_PER_DAY:
                raise ConfigError(f"{name}.{attr}", f"must be in [0, 24), got {hour!r}")
        if (self.hourly_profile is None) == (self.peak_to_trough is None):
            raise ConfigError(
                f"{name}.hourly_profile", f"give exactly one of it and {name}.peak_to_trough"
            )
        if self.hourly_profile is not None:
            profile = self.hourly_profile
            if not isinstance(profile, tuple) or len(profile) != _HOURS_PER_DAY:
                raise ConfigError(f"{name}.hourly_profile", "must be 24 relative rates")
            for hour, value in enumerate(profile):
                require_non_negative(f"{name}.hourly_profile[{hour}]", value)
            if max(profile) <= 0:
                raise ConfigError(f"{name}.hourly_profile", "must not be all zero")
        else:
            ratio = require_positive(f"{name}.peak_to_trough", must(self.peak_to_trough))
            if ratio < 1 or math.isinf(ratio):
                raise ConfigError(f"{name}.peak_to_trough", f"must be finite and >= 1, got {ratio}")

    @property
    def mean_rate_per_s(self) -> float:
        """Mean arrival rate over a whole period, requests per second."""
        return float(self.rate_per_s)

    @property
    def _amplitude(self) -> float:
        ratio = float(self.peak_to_trough or 1.0)
        return (ratio - 1.0) / (ratio + 1.0)

    def relative_rate(self, t_s: NDArray[np.float64]) -> NDArray[np.float64]:
        """The rate at times ``t_s`` (seconds) divided by ``rate_per_s`` (averages 1)."""
        hour = (self.start_hour + _HOURS_PER_DAY * np.asarray(t_s) / self.period_s) % 24.0
        if self.hourly_profile is not None:
            profile = np.asarray(self.hourly_profile, dtype=np.float64)
            factors = profile / profile.mean()
            out: NDArray[np.float64] = factors[np.minimum(hour.astype(np.int64), 23)]
            return out
        phase = 2.0 * math.pi * (hour - self.peak_hour) / _HOURS_PER_DAY
        wave: NDArray[np.float64] = 1.0 + self._amplitude * np.cos(phase)
        return wave

    def _sample(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None
    ) -> NDArray[np.float64]:
        if self.hourly_profile is not None:
            profile = np.asarray(self.hourly_profile, dtype=np.float64)
            peak = float(profile.max() / profile.mean())
        else:
            peak = 1.0 + self._amplitude
        rate_max_per_s = self.rate_per_s * peak
        mean_gap_s = 1.0 / rate_max_per_s
        want = horizon_s * self.rate_per_s
        if max_count is not None:
            want = min(want, float(max_count))
        _expected_guard(want)
        chunks: list[NDArray[np.float64]] = []
        t_s, got = 0.0, 0
        while t_s < horizon_s and (max_count is None or got < max_count):
            # Candidates at the peak rate; expected acceptance is 1 / peak.
            if max_count is None:
                left = (horizon_s - t_s) * rate_max_per_s
            else:
                left = min((horizon_s - t_s) * rate_max_per_s, (max_count - got) * peak)
            block = int(min(left + 5.0 * math.sqrt(left) + 16.0, 2_000_000.0))
            candidates = t_s + np.cumsum(rng.exponential(mean_gap_s, block))
            keep = rng.random(block) * peak < self.relative_rate(candidates)
            accepted = candidates[keep]
            chunks.append(accepted)
            got += len(accepted)
            t_s = float(candidates[-1])
        out = np.concatenate(chunks) if chunks else np.empty(0)
        if not math.isinf(horizon_s):
            out = out[: np.searchsorted(out, horizon_s, side="left")]
        return out[:max_count] if max_count is not None else out


@dataclass(frozen=True)
class OfflineArrivals(ArrivalProcess):
    """An offline batch: ``n_requests`` requests all present at t = 0.

    Attributes:
        n_requests: Size of the batch.
    """

    n_requests: int
    kind: ClassVar[str] = "offline"

    def __post_init__(self) -> None:
        """Check the fields (ConfigError naming the first bad one)."""
        require_positive_int("OfflineArrivals.n_requests", self.n_requests)

    @property
    def mean_rate_per_s(self) -> float:
        """Infinite: the whole batch arrives at once."""
        return math.inf

    def _sample(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None
    ) -> NDArray[np.float64]:
        count = self.n_requests if max_count is None else min(self.n_requests, max_count)
        return np.zeros(count, dtype=np.float64)


@dataclass(frozen=True)
class TraceArrivals(ArrivalProcess):
    """Replay of a trace's arrival times, optionally sped up.

    Attributes:
        trace: The parsed trace (its token columns stay available to the caller).
        speedup: Time compression: 2.0 replays twice as fast (twice the rate).
    """

    trace: Trace
    speedup: float = 1.0
    kind: ClassVar[str] = "trace"

    def __post_init__(self) -> None:
        """Check the fields (ConfigError naming the first bad one)."""
        require_positive("TraceArrivals.speedup", self.speedup)

    @property
    def mean_rate_per_s(self) -> float:
        """The trace's mean rate times the speedup, requests per second."""
        return self.trace.mean_rate_per_s * self.speedup

    def _sample(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None
    ) -> NDArray[np.float64]:
        times = self.trace.arrival_s / self.speedup
        if not math.isinf(horizon_s):
            times = times[: np.searchsorted(times, horizon_s, side="left")]
        out: NDArray[np.float64] = np.array(times[:max_count], dtype=np.float64)
        return out


@dataclass(frozen=True)
class ClosedLoopArrivals(ArrivalProcess):
    """Closed-loop clients: ``users`` users, each with one request (tree) in flight at a time.

    Every user sends its first request at t = 0; when a request finishes (its whole tree, or the
    tree dies of a failure) the user thinks for a draw of ``think_time`` and sends the next one.
    Requests stop after ``requests`` in all (also bounded by the workload's ``n_trees``) or when
    the next one would start at or after the workload's ``horizon_s``; the ones in flight then
    finish. With zero think time this is ``benchmark_serving --max-concurrency users``; with
    ``users = 4`` and a horizon it is "4 agents working around the clock".

    Attributes:
        users: Concurrent users (clients), ``C``.
        requests: Requests in all (``None``: bounded by ``n_trees`` or the horizon only).
        think_time: Delay between a request finishing and the user's next one, s.
    """

    users: int
    requests: int | None = None
    think_time: DelayLaw = NO_DELAY
    kind: ClassVar[str] = "closed_loop"

    def __post_init__(self) -> None:
        """Check the fields (ConfigError naming the first bad one)."""
        require_positive_int("ClosedLoopArrivals.users", self.users)
        if self.requests is not None:
            require_positive_int("ClosedLoopArrivals.requests", self.requests)
        if not isinstance(self.think_time, DelayLaw):
            raise ConfigError("ClosedLoopArrivals.think_time", "must be a delay law")

    @property
    def mean_rate_per_s(self) -> float:
        """Undefined (NaN): the rate is set by how fast the service answers."""
        return math.nan

    def request_limit(self, n_trees: int | None) -> int | None:
        """Requests in all: the smaller of ``requests`` and ``n_trees`` (None: no count limit)."""
        limits = [n for n in (self.requests, n_trees) if n is not None]
        return min(limits) if limits else None

    def _sample(
        self, rng: np.random.Generator, horizon_s: float, max_count: int | None
    ) -> NDArray[np.float64]:
        raise ConfigError(
            "workload.arrivals.kind",
            "closed_loop arrival times depend on the service; only the simulator (planner) "
            "runs them; allowed here: poisson, gamma, diurnal, offline, trace",
        )


class ClosedLoop:
    """The users of a :class:`ClosedLoopArrivals` during one run (no clock of its own).

    The simulator tells it when a request ends (:meth:`request_ended`) and starts the request it
    hands back at the time it says. Requests are numbered in start order: whoever starts next
    takes the next index, so request ``i``'s data can be drawn before the run. Think times are
    drawn up front too, one per request (the one after request ``i`` ends is ``think_s[i]``).

    Args:
        spec: The clients.
        n_requests: Requests available (drawn before the run).
        horizon_s: No request starts at or after this time, s (``inf``: no limit).
        rng: Stream of the think-time draws.
        extendable: ``n_requests`` is a guess, not the workload's count (only a horizon bounds
            it): running out before the horizon sets :attr:`wanted_more` so the caller can run
            again with more.
    """

    def __init__(
        self,
        spec: ClosedLoopArrivals,
        n_requests: int,
        horizon_s: float,
        rng: np.random.Generator,
        extendable: bool = False,
    ) -> None:
        """Draw the think times; no request has started yet."""
        self.spec = spec
        self.extendable = extendable
        self.n_requests = n_requests
        self.horizon_s = horizon_s
        self.think_s: list[float] = spec.think_time.sample(rng, n_requests).tolist()
        self.claimed = 0  # requests started or promised to a thinking user
        self.started = 0
        self.wanted_more = False  # a user wanted a request before the horizon but none was left
        self.last_start_s = 0.0

    def first(self) -> int:
        """Requests to start at t = 0 (one per user, as far as they go)."""
        count = min(self.spec.users, self.n_requests) if self.horizon_s > 0 else 0
        self.claimed = count
        return count

    def request_ended(self, request: int, now_s: float) -> float | None:
        """Request ``request`` ended at ``now_s``: when its user sends the next, or None.

        None when the user is done: no request is left, or the next would start at or after the
        horizon. The caller starts the next request (:meth:`take`) at the returned time.
        """
        start_s = now_s + self.think_s[request]
        if start_s >= self.horizon_s:
            return None
        if self.claimed >= self.n_requests:
            self.wanted_more = self.extendable
            return None
        self.claimed += 1
        return start_s

    def take(self, now_s: float) -> int:
        """The index of the request starting now (the next in start order)."""
        request = self.started
        self.started += 1
        self.last_start_s = now_s
        return request


ARRIVAL_CLASSES: Final[dict[str, type[ArrivalProcess]]] = {
    "poisson": PoissonArrivals,
    "gamma": GammaArrivals,
    "diurnal": DiurnalArrivals,
    "offline": OfflineArrivals,
    "trace": TraceArrivals,
    "closed_loop": ClosedLoopArrivals,
}

#: Chat arrivals: D1 "Conversation" row (Azure 2023 conv trace), 5.53 req/s mean, near-Poisson
#: (inter-arrival CV 1.09, per-second index of dispersion 1.33); D7 "Chat" default.
CHAT_ARRIVALS: Final = PoissonArrivals(rate_per_s=5.53)

#: Code-completion arrivals: D1 "Code" row (Azure 2023 code trace), 2.57 req/s mean, very
#: bursty (per-second index of dispersion 13.2). A renewal process's index of dispersion tends
#: to cv^2 over long windows, so cv = sqrt(13.2) = 3.6 is a rough match, not a fit.
CODE_ARRIVALS: Final = GammaArrivals(rate_per_s=2.57, cv=3.6)
