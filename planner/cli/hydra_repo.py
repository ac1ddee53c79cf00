"""A cheaper copy of Hydra's config repository (most of ``planner --help``'s time).

Hydra 1.3 builds a ``CachingConfigRepository`` for every config-group listing and every
composition, and each one deep-copies the whole repository, ConfigStore included (Hydra's own
configs and those of every installed plugin: ray, submitit, optuna, joblib). ``--help`` lists
the groups about 100 times: ~0.9 s of deep copies on a 2-core machine, more than the imports.

The deep copy only protects the original from ``initialize_sources``, which on a
``ConfigRepository`` assigns a new ``sources`` list (it never mutates the sources themselves);
loading never writes to a source, and ``ConfigStore.load`` hands out deep copies of its nodes. A
shallow copy of the repository object is therefore observably the same and costs microseconds.
Any other delegate type keeps Hydra's deep copy. tests/test_startup.py checks both properties.
"""

from __future__ import annotations

import copy

from hydra._internal.config_repository import CachingConfigRepository, ConfigRepository

_ORIGINAL_INIT = CachingConfigRepository.__init__


def _init(self: CachingConfigRepository, delegate: object) -> None:
    """Hydra's constructor with a shallow copy of a plain ``ConfigRepository`` delegate."""
    if type(delegate) is ConfigRepository:
        # A new object whose ``sources`` attribute initialize_sources() rebinds, never mutates.
        self.delegate = copy.copy(delegate)
        self.cache = {}
    else:
        _ORIGINAL_INIT(self, delegate)  # type: ignore[arg-type]


def install_shallow_repository_copy() -> None:
    """Patch Hydra's ``CachingConfigRepository`` process-wide (idempotent)."""
    CachingConfigRepository.__init__ = _init  # type: ignore[method-assign]
