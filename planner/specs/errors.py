"""The one error type for bad input, and small validators that raise it.

Every layer reports bad input as a :class:`ConfigError` naming the offending field and what is
allowed. The CLI turns it into a single line on stderr and exit code 2; nothing below the CLI
prints or exits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any


class ConfigError(ValueError):
    """Bad input: names the field and what is allowed.

    Attributes:
        field: Dotted path of the offending field, e.g. ``model.n_layers`` or
            ``trace:<path>:12:ContextTokens``.
        problem: What is wrong and what is allowed, e.g. ``must be > 0, got -3``.
    """

    def __init__(self, field: str, problem: str) -> None:
        field, problem = _one_line(str(field)), _one_line(str(problem))
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _one_line(text: str) -> str:
    """Escape line breaks and tabs so an error message (e.g. naming a user's key) stays one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def require_positive(field: str, value: float) -> float:
    """Return ``value`` if it is a finite number > 0, else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"must be a number > 0, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(field, f"must be > 0, got {value!r}")
    return value


def require_non_negative(field: str, value: float) -> float:
    """Return ``value`` if it is a finite number >= 0, else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"must be a number >= 0, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(field, f"must be >= 0, got {value!r}")
    return value


def require_positive_int(field: str, value: int) -> int:
    """Return ``value`` if it is an integer >= 1, else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(field, f"must be an integer >= 1, got {value!r}")
    return value


def require_non_negative_int(field: str, value: int) -> int:
    """Return ``value`` if it is an integer >= 0, else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(field, f"must be an integer >= 0, got {value!r}")
    return value


def require_fraction(field: str, value: float, *, allow_zero: bool = True) -> float:
    """Return ``value`` if it lies in [0, 1] (or (0, 1] without ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(field, f"must be a number in [0, 1], got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not low_ok or value > 1:
        bounds = "[0, 1]" if allow_zero else "(0, 1]"
        raise ConfigError(field, f"must lie in {bounds}, got {value!r}")
    return value


def require_choice(field: str, value: str, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ConfigError listing them."""
    options = sorted(allowed)
    if value not in options:
        raise ConfigError(field, f"must be one of {', '.join(options)}; got {value!r}")
    return value


def reject_unknown_keys(prefix: str, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise ConfigError naming the first key of ``data`` not in ``allowed`` (and listing them).

    Keys are compared as strings, so a config with numeric or odd keys still gets a clean error.
    """
    permitted = sorted(str(a) for a in allowed)
    unknown = sorted(str(k) for k in data if str(k) not in permitted)
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}", f"unknown key; allowed: {', '.join(permitted)}")


@contextmanager
def field_prefix(class_name: str, field: str) -> Iterator[None]:
    """Re-raise ConfigErrors from a spec's ``__post_init__`` under the config path ``field``.

    Specs validate themselves and name fields ``ClassName.attr``; inside a converter this
    rewrites ``ClassName.`` to ``field.`` in both the field and the problem text, so sibling
    fields mentioned in the problem are also named by their full config path.
    """
    try:
        yield
    except ConfigError as err:
        old, new = f"{class_name}.", f"{field}."
        name = new + err.field[len(old) :] if err.field.startswith(old) else err.field
        raise ConfigError(name, err.problem.replace(old, new)) from None
