"""One mapping from pydantic's ``ValidationError`` to the project's one-line :class:`ConfigError`.

Every option group the console scripts read is a pydantic model (see :mod:`planner.config.options`);
whatever pydantic reports (wrong type, out of range, unknown key, missing key, bad choice) becomes
``<dotted.field>: <what is allowed>, got <value>``, worded like the hand-written validators in
:mod:`planner.specs.errors` so the messages read the same whichever path found the problem.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from planner.specs.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def unknown_key(prefix: str, key: object, allowed: Iterable[str]) -> ConfigError:
    """The error for an unknown key: lists the allowed keys and suggests a near miss (difflib)."""
    permitted = sorted(str(a) for a in allowed)
    field = f"{prefix}.{key}" if prefix else str(key)
    problem = f"unknown key; allowed: {', '.join(permitted)}"
    close = difflib.get_close_matches(str(key), permitted, n=1, cutoff=0.75)
    if close:
        problem += f"; did you mean {close[0]}?"
    return ConfigError(field, problem)


def reject_unknown(prefix: str, data: Mapping[Any, Any], allowed: Iterable[str]) -> None:
    """Raise :func:`unknown_key` for the first key of ``data`` not in ``allowed`` (sorted)."""
    permitted = {str(a) for a in allowed}
    unknown = sorted(str(k) for k in data if str(k) not in permitted)
    if unknown:
        raise unknown_key(prefix, unknown[0], permitted)


def validate(model: type[ModelT], data: object, prefix: str) -> ModelT:
    """Validate ``data`` (a plain mapping) as ``model``; any problem as one :class:`ConfigError`.

    Args:
        model: A pydantic model from :mod:`planner.config.options`.
        data: The config node as plain Python data (``None`` counts as an empty mapping).
        prefix: Dotted path of the node, e.g. ``run``; errors name ``<prefix>.<field>``.

    Raises:
        ConfigError: The first problem pydantic found, with the full dotted field.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(prefix, f"must be a mapping, got {data!r}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        raise config_error(error, model, prefix) from None


def config_error(error: ValidationError, model: type[BaseModel], prefix: str) -> ConfigError:
    """The first error of ``error`` as a one-line :class:`ConfigError` naming the dotted field."""
    details = error.errors(include_url=False)
    # An unknown key first: a misspelt key also shows up as "missing", and the typo (with its
    # did-you-mean hint) is the more useful of the two messages.
    first = next((d for d in details if d["type"] == "extra_forbidden"), details[0])
    loc = [str(part) for part in first["loc"]]
    field = ".".join([prefix, *loc] if prefix else loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        parent, _ = _field_at(model, loc[:-1])
        holder = ".".join([prefix, *loc[:-1]] if prefix else loc[:-1])
        return unknown_key(holder, loc[-1], _allowed_keys(parent))
    if kind == "missing":
        return ConfigError(field, "is required")
    _, info = _field_at(model, loc)
    expected = info.description if info is not None and info.description else None
    value = first.get("input")
    if kind == "literal_error" and expected:
        return ConfigError(field, f"must be {expected}; got {value!r}")
    if expected:
        return ConfigError(field, f"must be {expected}, got {value!r}")
    return ConfigError(field, f"{_plain(first)}, got {value!r}")


def _plain(detail: ErrorDetails) -> str:
    """Pydantic's own message, lower-cased and on one line (fallback for fields with no text)."""
    message = str(detail.get("msg", "is invalid")).splitlines()[0]
    return message[:1].lower() + message[1:]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``Model``, ``Model | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _field_at(
    model: type[BaseModel], loc: list[str]
) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """Walk ``loc`` through nested models; return (model holding the leaf, the leaf's FieldInfo)."""
    current: type[BaseModel] | None = model
    info: FieldInfo | None = None
    for part in loc:
        if current is None or part not in current.model_fields:
            return current, None
        info = current.model_fields[part]
        nested = _model_of(info.annotation)
        if nested is None:
            return current, info
        current = nested
    return current, info


def _allowed_keys(model: type[BaseModel] | None) -> list[str]:
    return sorted(model.model_fields) if model is not None else []
