"""The per-call table (``calls.parquet`` or ``calls.csv``): one row per call of a run.

Parquet is written straight from the result arrays, without pandas.

``planner`` writes ``calls.parquet`` on every run. Going through a pandas DataFrame costs the
pandas import (~0.4 s on a 2-core machine, a fifth of a small run's wall time); pyarrow alone
takes ~0.1 s. The file is the one ``DataFrame.to_parquet`` wrote for
:func:`calls_table`: same Arrow schema (``kind`` a dictionary column,
the pool names large strings) and the same pandas metadata (a ``RangeIndex`` named ``call``,
``kind`` categorical), so ``pandas.read_parquet`` gives back an equal frame
(tests/test_startup.py checks it with ``assert_frame_equal``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from planner.app.files import atomic_write_text
from planner.sim.engine import SimulationResult
from planner.specs.errors import require_choice
from planner.workload.trees import CALL_KINDS

if TYPE_CHECKING:
    # pandas (and pyarrow behind it) is imported where the csv table is built: ~0.5 s that
    # `planner --help` and a parquet run should not pay.
    import pandas as pd

_TIME_COLUMNS = ("ready_s", "admit_s", "first_token_s", "finish_s")


def _column_metadata(
    name: str, pandas_type: str, numpy_type: str, extra: Any = None
) -> dict[str, Any]:
    return {
        "name": name,
        "field_name": name,
        "pandas_type": pandas_type,
        "numpy_type": numpy_type,
        "metadata": extra,
    }


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


def calls_table(result: SimulationResult) -> pd.DataFrame:
    """One row per call: tree, pools and replicas, token counts and timestamps (s)."""
    import pandas as pd  # lazily, see the module's imports

    trees = result.trees
    return pd.DataFrame(
        {
            "tree": result.call_tree,
            "kind": pd.Categorical.from_codes(trees.kind, CALL_KINDS),
            "prefill_pool": result.prefill_pool,
            "prefill_replica": result.prefill_replica,
            "decode_pool": result.decode_pool,
            "decode_replica": result.decode_replica,
            "input_tokens": trees.input_tokens,
            "output_tokens": trees.output_tokens,
            "cached_tokens": result.cached_tokens,
            "ready_s": result.ready_s,
            "admit_s": result.admit_s,
            "first_token_s": result.first_token_s,
            "finish_s": result.finish_s,
        }
    )


def write_calls_table(result: SimulationResult, out_dir: Path, fmt: str) -> Path:
    """Write the per-call table (:func:`calls_table`) atomically as parquet or csv.

    Parquet is written from the arrays by pyarrow alone (:func:`write_calls_parquet`, the same
    file as ``calls_table(result).to_parquet``): pandas is imported only for csv.

    Raises:
        ConfigError: ``fmt`` is neither ``parquet`` nor ``csv``.
    """
    require_choice("output.calls_table", fmt, ("parquet", "csv"))
    path = out_dir / f"calls.{fmt}"
    if fmt == "csv":
        atomic_write_text(path, calls_table(result).rename_axis("call").to_csv())
        return path
    tmp = out_dir / f".calls.{fmt}.tmp"
    try:
        write_calls_parquet(result, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
