"""Monte Carlo machinery: uncertain inputs, Latin hypercube samples, sensitivities, and runs.

An uncertain input is a named :class:`Distribution`, a scipy.stats continuous law given in
config as ``{dist: lognorm, s: 0.5, scale: 1.2}`` (or ``{dist: fixed, value: 3}``), validated
on construction. :func:`latin_hypercube` draws stratified samples of all inputs at once
(``scipy.stats.qmc.LatinHypercube`` mapped through each input's quantile function);
:func:`run_samples` evaluates a vectorised model on them in chunks, serially, through joblib
on local processes, or through Ray on a cluster, and resumes from a :class:`Checkpoint` so an
interrupted study redoes no finished chunk. :func:`tornado` gives one-at-a-time sensitivities
and :func:`summarize_samples` the percentiles a report shows.

Everything here is pure: no file I/O, randomness only from the seed passed in. The output of
:func:`run_samples` depends only on the samples and the chunking, never on the backend or the
number of workers (each chunk is evaluated by the same function on the same values).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from planner.specs.errors import ConfigError

FloatArray = NDArray[np.float64]
#: A vectorised model: equal-length input arrays by input name -> one output per sample.
Evaluate = Callable[[dict[str, FloatArray]], NDArray[Any]]

BACKENDS: Final = ("serial", "joblib", "ray")

#: Shape parameters each allowed scipy law requires (besides the optional ``loc``/``scale``),
#: with the valid range of each law as text for error messages. ``fixed`` is a constant.
_SHAPE_RULES: Final[dict[str, str]] = {
    "beta": "a > 0, b > 0, scale > 0",
    "gamma": "a > 0, scale > 0",
    "lognorm": "s > 0, scale > 0",
    "loguniform": "0 < a < b, scale > 0",
    "norm": "scale > 0",
    "triang": "0 <= c <= 1, scale > 0",
    "truncnorm": "a < b (bounds in units of scale, relative to loc), scale > 0",
    "uniform": "scale > 0 (support loc .. loc + scale)",
}
DISTRIBUTIONS: Final = (*sorted(_SHAPE_RULES), "fixed")

# Predicates on the shape parameters whose failure names one parameter precisely; the finite
# 0.1 % / 99.9 % quantile check after them catches anything they miss.
_CHECKS: Final[dict[str, tuple[tuple[str, Callable[[dict[str, float]], bool], str], ...]]] = {
    "beta": (("a", lambda p: p["a"] > 0, "> 0"), ("b", lambda p: p["b"] > 0, "> 0")),
    "gamma": (("a", lambda p: p["a"] > 0, "> 0"),),
    "lognorm": (("s", lambda p: p["s"] > 0, "> 0"),),
    "loguniform": (("a", lambda p: p["a"] > 0, "> 0"), ("b", lambda p: p["b"] > p["a"], "> a")),
    "triang": (("c", lambda p: 0 <= p["c"] <= 1, "in [0, 1]"),),
    "truncnorm": (("b", lambda p: p["b"] > p["a"], "> a"),),
}

#: Probabilities at which every law must have finite quantiles (rejects degenerate parameters).
_SUPPORT_CHECK_Q: Final = (0.001, 0.999)

# scipy.stats is imported inside the functions that use it, never at module level: it costs
# ~0.6 s, and every CLI imports this module (through planner.config) at start-up.


@cache
def _qmc_seed_keyword() -> str:
    """``rng`` on scipy >= 1.15 (``seed`` is on its way to deprecation), else ``seed``."""
    from scipy.stats import qmc

    return "rng" if "rng" in inspect.signature(qmc.LatinHypercube.__init__).parameters else "seed"


def _shape_names(dist: str) -> tuple[str, ...]:
    from scipy import stats

    shapes = getattr(stats, dist).shapes
    return tuple(s.strip() for s in shapes.split(",")) if shapes else ()


def _allowed_params(dist: str) -> tuple[str, ...]:
    return ("value",) if dist == "fixed" else (*_shape_names(dist), "loc", "scale")


def _validated(dist: str, params: tuple[tuple[str, float], ...]) -> dict[str, float]:
    """Check a law's parameters; return them as floats or raise a one-line ConfigError."""
    if dist not in DISTRIBUTIONS:
        raise ConfigError(
            "Distribution", f"unknown dist {dist}; allowed: {', '.join(DISTRIBUTIONS)}"
        )
    allowed = _allowed_params(dist)
    rule = "allowed: " + (_SHAPE_RULES[dist] if dist != "fixed" else "value a finite number")
    values: dict[str, float] = {}
    problem = None
    for name, value in params:
        number = isinstance(value, (int, float, np.integer, np.floating))
        if name not in allowed:
            problem = f"unknown parameter {name!r}; allowed: {', '.join(allowed)}"
        elif isinstance(value, bool) or not number or not math.isfinite(value):
            problem = f"parameter {name} must be a finite number, got {value!r}; {rule}"
        else:
            values[name] = float(value)
            continue
        break
    required = ("value",) if dist == "fixed" else _shape_names(dist)
    missing = [name for name in required if name not in values]
    if problem is None and missing:
        problem = f"parameter {missing[0]} is required; allowed: {', '.join(allowed)}"
    if problem is None and dist != "fixed":
        checks: tuple[tuple[str, Callable[[dict[str, float]], bool], str], ...] = (
            ("scale", lambda p: p.get("scale", 1.0) > 0, "> 0"),
            *_CHECKS.get(dist, ()),
        )
        for name, ok, text in checks:
            if not ok(values):
                problem = f"parameter {name} must be {text}, got {values[name]}; {rule}"
                break
        else:
            # Extreme parameters overflow inside scipy; the check below reports them, so the
            # floating-point warnings would only add lines to a one-line error.
            from scipy import stats

            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ends = getattr(stats, dist)(**values).ppf(_SUPPORT_CHECK_Q)
            if not np.all(np.isfinite(ends)):
                shown = ", ".join(f"{k}={v:g}" for k, v in sorted(values.items()))
                problem = f"parameters {shown} give no finite 0.1%/99.9% quantiles; {rule}"
    if problem is not None:
        raise ConfigError("Distribution", f"{dist}: {problem}")
    return values


@dataclass(frozen=True)
class Distribution:
    """A continuous law of one uncertain input, or a constant.

    Attributes:
        dist: A name from :data:`DISTRIBUTIONS`: a scipy.stats law (``beta``, ``gamma``,
            ``lognorm``, ``loguniform``, ``norm``, ``triang``, ``truncnorm``, ``uniform``) or
            ``fixed``. Units are those of the input it describes.
        params: ``(name, value)`` pairs sorted by name: the law's scipy shape parameters
            (all required) and optional ``loc`` (default 0) and ``scale`` (default 1, > 0);
            ``fixed`` takes exactly ``value``.
    """

    dist: str
    params: tuple[tuple[str, float], ...] = ()
    _frozen: Any = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        """Validate the parameters and freeze the scipy law."""
        values = _validated(self.dist, self.params)
        object.__setattr__(self, "params", tuple(sorted(values.items())))
        if self.dist != "fixed":
            from scipy import stats

            object.__setattr__(self, "_frozen", getattr(stats, self.dist)(**values))

    @classmethod
    def of(cls, dist: str, **params: float) -> Distribution:
        """Build from keyword parameters, e.g. ``Distribution.of("lognorm", s=0.5, scale=1.2)``."""
        return cls(dist, tuple(sorted(params.items())))

    def to_dict(self) -> dict[str, Any]:
        """The config mapping this was built from (plain Python types, for summary.json)."""
        return {"dist": self.dist, **dict(self.params)}

    @property
    def is_fixed(self) -> bool:
        """True for a constant (``fixed``): it has no spread and no tornado bar."""
        return self.dist == "fixed"

    def ppf(self, u: NDArray[np.float64]) -> FloatArray:
        """Quantile function: the values at probabilities ``u`` (each in (0, 1))."""
        if self._frozen is None:
            return np.full(np.shape(u), dict(self.params)["value"], dtype=np.float64)
        return np.asarray(self._frozen.ppf(u), dtype=np.float64)

    def quantile(self, q: float) -> float:
        """The value at probability ``q``, as a Python float."""
        return float(self.ppf(np.asarray([q], dtype=np.float64))[0])

    def median(self) -> float:
        """The 50 % quantile."""
        return self.quantile(0.5)

    def mean(self) -> float:
        """The expected value."""
        if self._frozen is None:
            return float(dict(self.params)["value"])
        return float(self._frozen.mean())


@dataclass(frozen=True)
class Choice:
    """A discrete input: one of ``labels`` with probabilities ``weights``, sampled as its index.

    The Latin hypercube's uniform draw ``u`` maps to the first index whose cumulative weight
    exceeds ``u``, so each value is drawn in (almost exactly) its share of the samples.

    Attributes:
        labels: The values (e.g. hardware or model names), in index order.
        weights: Their probabilities (normalised here; each >= 0, sum > 0).
    """

    labels: tuple[str, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        """Check one weight per label and normalise the weights."""
        if not self.labels or len(self.labels) != len(self.weights):
            raise ValueError("a Choice needs one weight per label and at least one label")
        total = float(sum(self.weights))
        if total <= 0 or min(self.weights) < 0:
            raise ValueError("Choice weights must be >= 0 with a positive sum")
        object.__setattr__(self, "weights", tuple(float(w) / total for w in self.weights))

    @property
    def is_fixed(self) -> bool:
        """True with a single possible value (no spread, no tornado bar)."""
        return sum(1 for w in self.weights if w > 0) <= 1

    def ppf(self, u: NDArray[np.float64]) -> FloatArray:
        """The index (as a float) drawn at probabilities ``u``."""
        edges = np.cumsum(self.weights)[:-1]
        return np.searchsorted(edges, np.asarray(u, dtype=float), side="right").astype(np.float64)

    def quantile(self, q: float) -> float:
        """The index at probability ``q``."""
        return float(self.ppf(np.asarray([q], dtype=np.float64))[0])

    def median(self) -> float:
        """The index at probability 0.5."""
        return self.quantile(0.5)

    def to_dict(self) -> dict[str, Any]:
        """Label -> probability (for summary.json)."""
        return {"dist": "choice", **dict(zip(self.labels, self.weights, strict=True))}


@dataclass(frozen=True)
class UncertainInput:
    """A named uncertain input of a Monte Carlo study.

    Attributes:
        name: Key of the input in the sample dict, with its unit (e.g. ``demand_growth_per_yr``).
        distribution: Its law (a continuous law, a constant, or a discrete :class:`Choice`).
    """

    name: str
    distribution: Distribution | Choice


def latin_hypercube(
    inputs: Sequence[UncertainInput], n_samples: int, seed: int | np.random.Generator
) -> dict[str, FloatArray]:
    """Latin hypercube samples of all inputs, mapped through their quantile functions.

    Each input's n equal-probability strata hold exactly one sample each; the pairing across
    inputs is random. The same seed gives identical samples.

    Args:
        inputs: The inputs (order matters for reproducibility; the config converter sorts them).
        n_samples: Number of samples (>= 1).
        seed: Seed (or a Generator) of the sampler; nothing else is random.

    Returns:
        Input name -> ``float64`` array of shape ``(n_samples,)``.

    Raises:
        ConfigError: ``n_samples`` < 1 (``mc.n_samples``).
        ValueError: Two inputs share a name.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ConfigError("mc.n_samples", f"must be an integer >= 1, got {n_samples!r}")
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate input names in {names}")
    if not inputs:
        return {}
    from scipy.stats import qmc

    sampler = qmc.LatinHypercube(d=len(inputs), **{_qmc_seed_keyword(): seed})
    unit = sampler.random(int(n_samples))
    return {inp.name: inp.distribution.ppf(unit[:, j]) for j, inp in enumerate(inputs)}


def summarize_samples(values: NDArray[Any]) -> dict[str, float | int]:
    """Percentiles and moments of Monte Carlo outputs (e.g. NPV in USD), as Python numbers.

    Returns:
        ``p5``, ``p50``, ``p95``, ``mean``, ``std`` (sample, ddof 1; 0 for one sample),
        ``standard_error`` (of the mean: std / sqrt(n)), ``prob_positive`` (fraction > 0) and
        ``n``; all in the unit of ``values`` except the last two.

    Raises:
        ValueError: ``values`` is empty or holds a non-finite value.
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("cannot summarize zero samples")
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"{bad} of {arr.size} samples are not finite")
    n = int(arr.size)
    std = float(arr.std(ddof=1)) if n > 1 else 0.0
    p5, p50, p95 = (float(v) for v in np.percentile(arr, [5.0, 50.0, 95.0]))
    return {
        "p5": p5,
        "p50": p50,
        "p95": p95,
        "mean": float(arr.mean()),
        "std": std,
        "standard_error": std / math.sqrt(n),
        "prob_positive": float(np.count_nonzero(arr > 0)) / n,
        "n": n,
    }


@dataclass(frozen=True)
class TornadoBar:
    """One input's one-at-a-time sensitivity (all other inputs at their medians).

    Attributes:
        name: The input.
        low_value_input: The input's value at the low quantile (its unit).
        high_value_input: The input's value at the high quantile (its unit).
        output_at_low: The output with the input at its low value (the output's unit).
        output_at_high: The output with the input at its high value.
        swing: ``abs(output_at_high - output_at_low)``.
    """

    name: str
    low_value_input: float
    high_value_input: float
    output_at_low: float
    output_at_high: float
    swing: float


def base_point(inputs: Sequence[UncertainInput]) -> dict[str, float]:
    """Every input at its median: the centre of a tornado chart."""
    return {i.name: i.distribution.median() for i in inputs}


def tornado(
    evaluate_point: Callable[[Mapping[str, float]], float],
    inputs: Sequence[UncertainInput],
    low_quantile: float = 0.1,
    high_quantile: float = 0.9,
) -> list[TornadoBar]:
    """One-at-a-time sensitivities around the base point (every input at its median).

    Each non-fixed input in turn is moved to its low and its high quantile while the others
    stay at their medians. Evaluates ``2 x (non-fixed inputs)`` points (the base point itself
    is not evaluated: get it with ``evaluate_point(base_point(inputs))``).

    Args:
        evaluate_point: Input name -> value mapping to the scalar output (e.g. NPV, USD).
        inputs: The inputs.
        low_quantile: Probability of the low value, in (0, high_quantile).
        high_quantile: Probability of the high value, in (low_quantile, 1).

    Returns:
        Bars sorted by swing, largest first (ties by name).

    Raises:
        ConfigError: The quantiles are not ``0 < low < high < 1`` (``mc.tornado``).
    """
    if not 0.0 < low_quantile < high_quantile < 1.0:
        raise ConfigError(
            "mc.tornado",
            f"need 0 < low_quantile < high_quantile < 1, got {low_quantile}, {high_quantile}",
        )
    base = base_point(inputs)
    bars = []
    for inp in inputs:
        if inp.distribution.is_fixed:
            continue
        low = inp.distribution.quantile(low_quantile)
        high = inp.distribution.quantile(high_quantile)
        out_low = float(evaluate_point({**base, inp.name: low}))
        out_high = float(evaluate_point({**base, inp.name: high}))
        bars.append(TornadoBar(inp.name, low, high, out_low, out_high, abs(out_high - out_low)))
    bars.sort(key=lambda b: (-b.swing, b.name))
    return bars


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a probability from ``successes`` of ``n`` (scipy.stats).

    Treats the samples as independent draws; Latin hypercube samples are at least as precise,
    so the interval is conservative for them.
    """
    from scipy.stats import binomtest

    if n < 1:
        raise ValueError("n must be >= 1")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class SobolIndices:
    """First- and total-order Sobol indices of one scalar output (variance shares).

    Attributes:
        names: The inputs (non-fixed ones only), in order.
        first_order: Share of the output's variance each input explains alone.
        total_order: Share including every interaction the input takes part in.
        evaluations: Model evaluations spent ((inputs + 2) x base samples).
    """

    names: tuple[str, ...]
    first_order: tuple[float, ...]
    total_order: tuple[float, ...]
    evaluations: int


def sobol_first_order(
    evaluate: Evaluate,
    inputs: Sequence[UncertainInput],
    base_samples: int,
    seed: int,
) -> SobolIndices:
    """Sobol indices of ``evaluate`` over the non-fixed inputs (scipy.stats.sobol_indices).

    Fixed inputs are held at their value. Saltelli's scheme costs ``(d + 2) x base_samples``
    evaluations of the vectorised model (``base_samples`` is rounded up to a power of two).

    Raises:
        ValueError: Fewer than one non-fixed input.
    """
    from scipy.stats import sobol_indices

    varying = [i for i in inputs if not i.distribution.is_fixed]
    if not varying:
        raise ValueError("no uncertain input to rank")
    fixed = {i.name: i.distribution.median() for i in inputs if i.distribution.is_fixed}
    n = 1 << max(math.ceil(math.log2(max(base_samples, 2))), 1)

    def func(x: NDArray[np.float64]) -> NDArray[np.float64]:
        values = {name: np.full(x.shape[1], v) for name, v in fixed.items()}
        values.update({inp.name: x[j] for j, inp in enumerate(varying)})
        return np.asarray(evaluate(values), dtype=np.float64)[None, :]

    result = sobol_indices(
        func=func,
        n=n,
        dists=[i.distribution for i in varying],
        rng=np.random.default_rng(seed),
    )
    return SobolIndices(
        names=tuple(i.name for i in varying),
        first_order=tuple(float(v) for v in np.ravel(result.first_order)),
        total_order=tuple(float(v) for v in np.ravel(result.total_order)),
        evaluations=n * (len(varying) + 2),
    )


def rank_variance_shares(
    draws: Mapping[str, FloatArray], output: NDArray[Any], inputs: Sequence[UncertainInput]
) -> tuple[dict[str, float], float]:
    """Variance shares from squared Spearman rank correlations, normalised to sum to 1.

    A discrete input (:class:`Choice`) is correlated through its values ranked by their mean
    output, since the order of its values carries no meaning.

    Returns:
        (input -> share, the un-normalised sum of squared rank correlations: how much of the
        output's rank variance an additive monotone model of the inputs explains).
    """
    from scipy.stats import spearmanr

    squared = {}
    y = np.asarray(output, dtype=float)
    for inp in inputs:
        if inp.distribution.is_fixed:
            continue
        x = np.asarray(draws[inp.name])
        if isinstance(inp.distribution, Choice):
            # A discrete input's index order is arbitrary: rank its values by their mean
            # output, so a non-monotone effect (the middle value worst) is not hidden.
            codes = x.astype(int)
            means = [
                float(y[codes == c].mean()) if np.any(codes == c) else 0.0
                for c in range(len(inp.distribution.labels))
            ]
            x = np.argsort(np.argsort(means))[codes].astype(float)
        rho = 0.0 if np.ptp(x) == 0 else float(spearmanr(x, y).statistic)
        squared[inp.name] = 0.0 if not math.isfinite(rho) else rho * rho
    total = sum(squared.values())
    if total <= 0:
        return {k: 0.0 for k in squared}, 0.0
    return {k: v / total for k, v in squared.items()}, float(total)


# --------------------------------------------------------------------------------------------
# Chunked, parallel, resumable evaluation
# --------------------------------------------------------------------------------------------


class Checkpoint(Protocol):
    """Storage of finished chunks, so an interrupted study resumes where it stopped.

    A store must belong to one study (same samples and chunk size); :func:`run_samples`
    rejects chunks whose index or length do not fit.
    """

    def load(self) -> dict[int, NDArray[Any]]:
        """Finished chunks: chunk index -> its outputs."""
        ...

    def save(self, index: int, values: NDArray[Any]) -> None:
        """Record that chunk ``index`` finished with outputs ``values``."""
        ...

    def discard(self, index: int) -> None:
        """Forget chunk ``index`` (it does not fit the study); it will be evaluated again."""
        ...


@dataclass
class InMemoryCheckpoint:
    """A :class:`Checkpoint` held in a dict (tests; the CLI keeps one on disk).

    Attributes:
        chunks: Chunk index -> outputs (copies).
    """

    chunks: dict[int, NDArray[Any]] = field(default_factory=dict)

    def load(self) -> dict[int, NDArray[Any]]:
        """Finished chunks (a shallow copy of the dict)."""
        return dict(self.chunks)

    def save(self, index: int, values: NDArray[Any]) -> None:
        """Store a copy of one chunk's outputs."""
        self.chunks[index] = np.array(values, copy=True)

    def discard(self, index: int) -> None:
        """Drop one chunk."""
        self.chunks.pop(index, None)


def chunk_bounds(n_samples: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` sample index ranges of the chunks, in order (the last may be short)."""
    return [(s, min(s + chunk_size, n_samples)) for s in range(0, n_samples, chunk_size)]


def _resumed(
    checkpoint: Checkpoint | None, bounds: list[tuple[int, int]]
) -> dict[int, NDArray[Any]]:
    """The checkpoint's chunks that fit this study (index and length); the others discarded."""
    if checkpoint is None:
        return {}
    results: dict[int, NDArray[Any]] = {}
    for index, values in checkpoint.load().items():
        if 0 <= index < len(bounds) and len(values) == bounds[index][1] - bounds[index][0]:
            results[index] = np.asarray(values)
        else:
            # A chunk of another study (a copied or damaged file) is never fatal: forget it and
            # evaluate that chunk again.
            checkpoint.discard(index)
    return results


def _evaluate_chunk(
    evaluate: Evaluate, index: int, chunk: dict[str, FloatArray]
) -> tuple[int, NDArray[Any]]:
    """Evaluate one chunk (runs in a worker process for joblib and Ray)."""
    return index, np.asarray(evaluate(chunk))


def run_samples(
    evaluate: Evaluate,
    samples: Mapping[str, FloatArray],
    *,
    chunk_size: int = 1000,
    backend: str = "serial",
    n_jobs: int = 1,
    ray_address: str | None = None,
    checkpoint: Checkpoint | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> NDArray[Any]:
    """Evaluate a vectorised model on samples in chunks, optionally in parallel, resumably.

    Args:
        evaluate: Equal-length input arrays by name -> one output per sample. Must be picklable
            (a module-level function or a ``functools.partial`` of one) for joblib and Ray.
        samples: Input name -> array, all of one length (e.g. from :func:`latin_hypercube`).
        chunk_size: Samples per chunk (>= 1): the unit of parallel work and of checkpoints.
        backend: ``serial``, ``joblib`` (local processes) or ``ray`` (a Ray cluster).
        n_jobs: Worker processes for joblib (>= 1); for Ray, the in-flight tasks are at least
            twice this (and twice the cluster's CPUs).
        ray_address: Ray cluster address (``None``: start a local instance). Ray is initialised
            only if it is not already; an instance started here is shut down on return.
        checkpoint: Finished chunks to skip; each newly finished chunk is saved to it.
        progress: Called with ``(done_chunks, total_chunks)`` once at the start (chunks already
            in the checkpoint, usually 0) and after each finished chunk.

    Returns:
        The outputs of all samples, in sample order; identical (bitwise) for every backend.

    Raises:
        ConfigError: Bad ``backend`` (or Ray not installed), ``n_jobs`` or ``chunk_size``
            (fields ``mc.backend``, ``mc.n_jobs``, ``mc.chunk_size``).
        ValueError: Sample arrays of unequal length or an output of the wrong length. A
            checkpoint chunk that does not fit this study is discarded and evaluated again.
    """
    if backend not in BACKENDS:
        raise ConfigError("mc.backend", f"must be one of {', '.join(BACKENDS)}; got {backend!r}")
    for name, value in (("mc.n_jobs", n_jobs), ("mc.chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(name, f"must be an integer >= 1, got {value!r}")
    lengths = {name: len(arr) for name, arr in samples.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"sample arrays differ in length: {lengths}")
    n_samples = next(iter(lengths.values()), 0)
    bounds = chunk_bounds(n_samples, int(chunk_size))
    results = _resumed(checkpoint, bounds)
    todo = [i for i in range(len(bounds)) if i not in results]
    if progress is not None:
        progress(len(results), len(bounds))

    def chunk_of(index: int) -> dict[str, FloatArray]:
        start, stop = bounds[index]
        # Fresh contiguous copies in every backend, so each chunk is evaluated on identical
        # buffers whether it runs here or is pickled to a worker.
        return {name: np.array(arr[start:stop], copy=True) for name, arr in samples.items()}

    def finish(index: int, values: NDArray[Any]) -> None:
        expected = bounds[index][1] - bounds[index][0]
        if values.shape[:1] != (expected,):
            raise ValueError(f"evaluate returned shape {values.shape} for a chunk of {expected}")
        results[index] = values
        if checkpoint is not None:
            checkpoint.save(index, values)
        if progress is not None:
            progress(len(results), len(bounds))

    chunks: Generator[tuple[int, NDArray[Any]], None, None]
    if backend == "serial" or not todo:
        chunks = (_evaluate_chunk(evaluate, i, chunk_of(i)) for i in todo)
    elif backend == "joblib":
        chunks = _joblib_chunks(evaluate, todo, chunk_of, int(n_jobs))
    else:
        chunks = _ray_chunks(evaluate, todo, chunk_of, int(n_jobs), ray_address)
    with closing(chunks):  # stops workers (and a Ray instance started here) on an error
        for index, values in chunks:
            finish(index, values)
    if not bounds:
        return np.empty(0, dtype=np.float64)
    return np.concatenate([results[i] for i in range(len(bounds))])


def _joblib_chunks(
    evaluate: Evaluate,
    todo: list[int],
    chunk_of: Callable[[int], dict[str, FloatArray]],
    n_jobs: int,
) -> Generator[tuple[int, NDArray[Any]], None, None]:
    """Chunks evaluated by joblib worker processes, yielded as each finishes."""
    import joblib

    parallel = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    call = joblib.delayed(_evaluate_chunk)
    yield from parallel(call(evaluate, i, chunk_of(i)) for i in todo)


def _ray_chunks(
    evaluate: Evaluate,
    todo: list[int],
    chunk_of: Callable[[int], dict[str, FloatArray]],
    n_jobs: int,
    address: str | None,
) -> Generator[tuple[int, NDArray[Any]], None, None]:
    """Chunks evaluated as Ray tasks (a bounded window in flight), yielded as each finishes."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "mc.backend", "ray is not installed; pip install 'planner[ray]'"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, ignore_reinit_error=True)
    try:
        task = ray.remote(_evaluate_chunk)
        evaluate_ref = ray.put(evaluate)
        untyped: Any = ray  # ray's API is untyped; typed as Any so strict mypy accepts the call
        cpus = int(untyped.cluster_resources().get("CPU", 1))
        window = 2 * max(n_jobs, cpus)
        queue = iter(todo)
        pending = [task.remote(evaluate_ref, i, chunk_of(i)) for i in _take(queue, window)]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])
            pending += [task.remote(evaluate_ref, i, chunk_of(i)) for i in _take(queue, 1)]
    finally:
        if started_here:
            ray.shutdown()


def _take(items: Iterator[int], n: int) -> list[int]:
    return [i for _, i in zip(range(n), items, strict=False)]
