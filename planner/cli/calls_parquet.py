"""The per-call table written as parquet straight from the result arrays, without pandas.

``planner`` writes ``calls.parquet`` on every run. Going through a pandas DataFrame costs the
pandas import (~0.4 s on a 2-core machine, a fifth of a small run's wall time); pyarrow alone
takes ~0.1 s. The file is the one ``DataFrame.to_parquet`` wrote for
:func:`planner.cli.simulate.calls_table`: same Arrow schema (``kind`` a dictionary column,
the pool names large strings) and the same pandas metadata (a ``RangeIndex`` named ``call``,
``kind`` categorical), so ``pandas.read_parquet`` gives back an equal frame
(tests/test_startup.py checks it with ``assert_frame_equal``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner.sim.engine import SimulationResult
from planner.workload.trees import CALL_KINDS

_TIME_COLUMNS = ("ready_s", "admit_s", "first_token_s", "finish_s")


def _column_metadata(name: str, pandas_type: str, numpy_type: str, extra: Any = None) -> dict:
    return {
        "name": name, "field_name": name, "pandas_type": pandas_type,
        "numpy_type": numpy_type, "metadata": extra,
    }  # fmt: skip


def _numbers(pa: Any, values: NDArray[Any], dtype: type[np.generic], arrow_type: Any) -> Any:
    """A numeric Arrow array over ``values``; NaN becomes null, as ``from_pandas`` does."""
    data = np.ascontiguousarray(values, dtype=dtype)
    validity, nulls = None, 0
    if np.issubdtype(dtype, np.floating):
        valid = ~np.isnan(data)
        nulls = int(len(data) - valid.sum())
        if nulls:
            validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        arrow_type, len(data), [validity, pa.py_buffer(data)], null_count=nulls
    )


def _strings(pa: Any, words: Sequence[str], arrow_type: Any, offset_dtype: type[np.generic]) -> Any:
    """A string Arrow array holding ``words``."""
    encoded = [w.encode() for w in words]
    offsets = np.zeros(len(encoded) + 1, dtype=offset_dtype)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(arrow_type, len(encoded), buffers)


def _repeated(pa: Any, word: str, n: int) -> Any:
    """A large-string Arrow array of ``n`` copies of ``word``."""
    encoded = word.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(encoded)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(encoded * n)]
    return pa.Array.from_buffers(pa.large_string(), n, buffers)


def write_calls_parquet(result: SimulationResult, path: Path) -> None:
    """Write one row per call (tree, pools, replicas, tokens, times in s) to ``path``.

    Arrays are built from buffers (``pa.Array.from_buffers``): ``pa.array`` and ``pa.scalar``
    would import pandas to ask whether their argument is a pandas object. Not atomic by itself:
    the caller writes to a temporary name and renames it.
    """
    # pyarrow imported here: only a run that writes parquet pays for it.
    import pyarrow as pa
    import pyarrow.parquet as pq

    trees = result.trees
    n = len(result.call_tree)
    kinds = _numbers(pa, trees.kind, np.int8, pa.int8())
    columns: dict[str, Any] = {
        "tree": _numbers(pa, result.call_tree, np.int64, pa.int64()),
        "kind": pa.DictionaryArray.from_arrays(
            kinds, _strings(pa, CALL_KINDS, pa.string(), np.int32)
        ),
        "prefill_pool": _repeated(pa, result.prefill_pool, n),
        "prefill_replica": _numbers(pa, result.prefill_replica, np.int64, pa.int64()),
        "decode_pool": _repeated(pa, result.decode_pool, n),
        "decode_replica": _numbers(pa, result.decode_replica, np.int64, pa.int64()),
        "input_tokens": _numbers(pa, trees.input_tokens, np.int64, pa.int64()),
        "output_tokens": _numbers(pa, trees.output_tokens, np.int64, pa.int64()),
        "cached_tokens": _numbers(pa, result.cached_tokens, np.int64, pa.int64()),
        **{
            name: _numbers(pa, getattr(result, name), np.float64, pa.float64())
            for name in _TIME_COLUMNS
        },
    }
    described = []
    for name in columns:
        if name == "kind":
            extra = {"num_categories": len(CALL_KINDS), "ordered": False}
            described.append(_column_metadata(name, "categorical", "int8", extra))
        elif name in ("prefill_pool", "decode_pool"):
            described.append(_column_metadata(name, "object", "str"))
        elif name in _TIME_COLUMNS:
            described.append(_column_metadata(name, "float64", "float64"))
        else:
            described.append(_column_metadata(name, "int64", "int64"))
    pandas_metadata = {
        "index_columns": [{"kind": "range", "name": "call", "start": 0, "stop": n, "step": 1}],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "str",
                "metadata": {"encoding": "UTF-8"},
            },
        ],
        "columns": described,
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": metadata.version("pandas"),
    }
    table = pa.Table.from_arrays(
        list(columns.values()), names=list(columns)
    ).replace_schema_metadata({"pandas": json.dumps(pandas_metadata).encode()})
    pq.write_table(table, path)
