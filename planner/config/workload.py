"""Plain mappings -> workload specs: token-length and delay laws, tree shapes, arrival processes.

The specs (``planner.workload``) validate their own fields in ``__post_init__``; this module only
picks the spec class from ``kind``, refuses unknown and missing keys, builds nested laws, and
re-names the spec's errors by their full config path (``workload.tree.n_subcalls.low``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Annotated, Any, Literal, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from planner.config.errors import reject_unknown, validate
from planner.specs.errors import ConfigError, field_prefix, require_choice
from planner.workload.arrivals import (
    ARRIVAL_CLASSES,
    ARRIVAL_KINDS,
    ArrivalProcess,
    ClosedLoopArrivals,
    TraceArrivals,
)
from planner.workload.lengths import (
    DELAY_KINDS,
    LENGTH_KINDS,
    NO_DELAY,
    DelayLaw,
    LengthLaw,
    require_int,
)
from planner.workload.trace import read_azure_trace
from planner.workload.trees import (
    SHAPE_CLASSES,
    SHAPE_KINDS,
    CallLengths,
    MixtureShape,
    SharedPrefix,
    TreeShape,
)


def check_mapping(data: object, field: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    """Return ``data`` as a mapping after checking every key is in ``allowed``.

    Raises:
        ConfigError: ``data`` is not a mapping, or has a key outside ``allowed``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(field, f"must be a mapping, got {type(data).__name__}")
    reject_unknown(field, data, allowed)
    return data


def require_keys(data: Mapping[str, Any], field: str, names: Sequence[str]) -> None:
    """Raise ConfigError naming the first of ``names`` missing from ``data``."""
    for name in names:
        if name not in data:
            raise ConfigError(f"{field}.{name}", "is required")


def length_law(data: object, field: str = "workload.length") -> LengthLaw:
    """A :class:`LengthLaw` from ``{kind: lognormal, median: 1020, p90: 2734}`` and the like.

    A bare integer is shorthand for ``{kind: fixed, value: N}``.

    Raises:
        ConfigError: Unknown kind or key, or a value out of range, named by ``field``.
    """
    if isinstance(data, (int, np.integer)) and not isinstance(data, bool):
        data = {"kind": "fixed", "value": int(data)}
    mapping = check_mapping(data, field, tuple(f.name for f in fields(LengthLaw)))
    if "kind" not in mapping:
        raise ConfigError(f"{field}.kind", f"is required; one of {', '.join(LENGTH_KINDS)}")
    kwargs = dict(mapping)
    if "values" in kwargs:
        values = kwargs["values"]
        if isinstance(values, np.ndarray):
            values = values.tolist()
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ConfigError(f"{field}.values", "must be a sequence of integers")
        for i, item in enumerate(values):
            require_int(f"{field}.values[{i}]", item, 0)
        kwargs["values"] = tuple(int(v) for v in values)
    with field_prefix("LengthLaw", field):
        return LengthLaw(**kwargs)


def delay_law(data: object, field: str = "workload.delay") -> DelayLaw:
    """A :class:`DelayLaw` from ``{kind: lognormal, median_s: 1.0, sigma: 1.0}`` and the like.

    A bare number is shorthand for ``{kind: fixed, value_s: X}``.

    Raises:
        ConfigError: Unknown kind or key, or a value out of range, named by ``field``.
    """
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        data = {"kind": "fixed", "value_s": float(data)}
    mapping = check_mapping(data, field, tuple(f.name for f in fields(DelayLaw)))
    if "kind" not in mapping:
        raise ConfigError(f"{field}.kind", f"is required; one of {', '.join(DELAY_KINDS)}")
    with field_prefix("DelayLaw", field):
        return DelayLaw(**mapping)


def call_lengths(data: object, field: str, default: CallLengths | None = None) -> CallLengths:
    """:class:`CallLengths` from ``{input_tokens: <law>, output_tokens: <law>}``.

    Missing keys keep ``default``'s laws.
    """
    base = default or CallLengths()
    mapping = check_mapping(data, field, ("input_tokens", "output_tokens"))
    return CallLengths(
        input_tokens=length_law(mapping["input_tokens"], f"{field}.input_tokens")
        if "input_tokens" in mapping
        else base.input_tokens,
        output_tokens=length_law(mapping["output_tokens"], f"{field}.output_tokens")
        if "output_tokens" in mapping
        else base.output_tokens,
    )


def shared_prefix(data: object, field: str) -> SharedPrefix:
    """:class:`SharedPrefix` from ``{fraction: 0.857}`` or ``{tokens: <law>}``; None: no prefix."""
    if data is None:
        return SharedPrefix()
    mapping = check_mapping(data, field, ("fraction", "tokens"))
    tokens = mapping.get("tokens")
    law = None if tokens is None else length_law(tokens, f"{field}.tokens")
    with field_prefix("SharedPrefix", field):
        return SharedPrefix(fraction=mapping.get("fraction"), tokens=law)


def tree_shape(data: object, field: str = "workload.tree") -> TreeShape:
    """The tree shape named by ``data["kind"]``; missing keys keep the shape's defaults.

    Example: ``{kind: fanout, n_subcalls: {kind: uniform, low: 10, high: 50}, waves: 2,
    tool_delay: {kind: fixed, value_s: 0}}``; a mixture is ``{kind: mixture, components:
    [{weight: 0.7, shape: {kind: chat}}, {weight: 0.3, shape: {kind: chain}}]}``.

    Raises:
        ConfigError: Unknown kind or key, or a bad value, named under ``field``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(field, f"must be a mapping, got {type(data).__name__}")
    kinds = (*SHAPE_KINDS, "mixture")
    require_choice(f"{field}.kind", data.get("kind"), kinds)  # type: ignore[arg-type]
    if data["kind"] == "mixture":
        return mixture_shape(data, field)
    cls = SHAPE_CLASSES[data["kind"]]
    names = tuple(f.name for f in fields(cast(Any, cls)))
    mapping = check_mapping(data, field, ("kind", *names))
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for key, value in mapping.items():
        if key == "kind":
            continue
        current, where = getattr(defaults, key), f"{field}.{key}"
        if isinstance(current, LengthLaw):
            kwargs[key] = length_law(value, where)
        elif isinstance(current, DelayLaw):
            kwargs[key] = delay_law(value, where)
        elif isinstance(current, CallLengths):
            kwargs[key] = call_lengths(value, where, current)
        elif isinstance(current, SharedPrefix):
            kwargs[key] = shared_prefix(value, where)
        else:
            kwargs[key] = value
    with field_prefix(cls.__name__, field):
        return cls(**kwargs)


def mixture_shape(data: Mapping[str, Any], field: str) -> MixtureShape:
    """:class:`MixtureShape` from ``{kind: mixture, components: [{weight: w, shape: {...}}]}``."""
    mapping = check_mapping(data, field, ("kind", "components"))
    items = mapping.get("components")
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or not items:
        raise ConfigError(f"{field}.components", "must be a non-empty list")
    components = []
    for i, item in enumerate(items):
        where = f"{field}.components[{i}]"
        entry = check_mapping(item, where, ("weight", "shape"))
        if "weight" not in entry or "shape" not in entry:
            raise ConfigError(where, "needs both weight and shape")
        components.append((entry["weight"], tree_shape(entry["shape"], f"{where}.shape")))
    with field_prefix("MixtureShape", field):
        return MixtureShape(tuple(components))


def arrivals(data: object, field: str = "workload.arrivals") -> ArrivalProcess:
    """The arrival process named by ``data["kind"]``.

    Examples: ``{kind: poisson, rate_per_s: 5.53}``, ``{kind: gamma, rate_per_s: 2.57,
    cv: 3.6}``, ``{kind: diurnal, rate_per_s: 10, peak_to_trough: 3, peak_hour: 14}``,
    ``{kind: offline, n_requests: 1000}``, ``{kind: trace, path: conv.csv, speedup: 2}``,
    ``{kind: closed_loop, users: 16, requests: 640, think_time: {kind: exponential, mean_s: 5}}``.
    The ``trace`` kind reads the named file; a relative path resolves against the current
    directory, so a Hydra app passes an absolute one.

    Raises:
        ConfigError: Unknown kind or key, or a bad value, named under ``field``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(field, f"must be a mapping, got {type(data).__name__}")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in ARRIVAL_CLASSES:
        allowed = ", ".join(ARRIVAL_KINDS)
        raise ConfigError(f"{field}.kind", f"must be one of {allowed}; got {kind!r}")
    cls = ARRIVAL_CLASSES[kind]
    if cls is TraceArrivals:
        mapping = check_mapping(data, field, ("kind", "path", "speedup"))
        if not isinstance(mapping.get("path"), str):
            raise ConfigError(f"{field}.path", "is required: the trace CSV file")
        trace = read_azure_trace(mapping["path"])
        with field_prefix("TraceArrivals", field):
            return TraceArrivals(trace, speedup=mapping.get("speedup", 1.0))
    if cls is ClosedLoopArrivals:
        return closed_loop(data, field)
    spec_fields = fields(cls)  # type: ignore[arg-type]
    mapping = check_mapping(data, field, ("kind", *(f.name for f in spec_fields)))
    require_keys(mapping, field, [f.name for f in spec_fields if f.default is MISSING])
    kwargs: dict[str, Any] = {k: v for k, v in mapping.items() if k != "kind"}
    if isinstance(kwargs.get("hourly_profile"), (list, tuple)):
        kwargs["hourly_profile"] = tuple(kwargs["hourly_profile"])
    with field_prefix(cls.__name__, field):
        return cls(**kwargs)


class ClosedLoopOptions(BaseModel):
    """``workload.arrivals`` of kind ``closed_loop``, as typed options (strict, frozen).

    The arrival kinds form a union discriminated by ``kind`` (:func:`arrivals` dispatches on it);
    this is the ``closed_loop`` member. ``think_time`` stays a plain value here and is built by
    :func:`delay_law`, which names its own fields.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["closed_loop"]
    users: Annotated[int, Field(ge=1, description="an integer >= 1")]
    requests: Annotated[int | None, Field(ge=1, description="an integer >= 1 or null")] = None
    think_time: Annotated[
        Any, Field(description="a delay law ({kind: exponential, mean_s: 5}) or seconds")
    ] = None


def closed_loop(data: Mapping[str, Any], field: str = "workload.arrivals") -> ClosedLoopArrivals:
    """:class:`ClosedLoopArrivals` from ``{kind: closed_loop, users, requests, think_time}``.

    ``requests`` and ``think_time`` are optional; ``think_time`` is a delay law
    (``{kind: exponential, mean_s: 5}``), a bare number of seconds a fixed think time.

    Raises:
        ConfigError: Unknown key, ``users`` missing, or a value out of range, named under
            ``field``.
    """
    options = validate(ClosedLoopOptions, data, field)
    think = options.think_time
    think_time = NO_DELAY if think is None else delay_law(think, f"{field}.think_time")
    with field_prefix("ClosedLoopArrivals", field):
        return ClosedLoopArrivals(
            users=options.users, requests=options.requests, think_time=think_time
        )
