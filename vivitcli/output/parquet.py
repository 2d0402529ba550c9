"""Parquet outputs (pyarrow, optional: `pip install 'vivitcli[parquet]'`).

One row per record (per file, or per window), columns in the record key order (`vivitcli.records`):

    path string, labels list<struct<label string, score double, index int64>>,
    heads map<string, list<struct<...>>> (null for single-head models), model string, label_source string,
    window int64, start double, end double (window records), dim int64, pool string,
    embedding fixed_size_list<float>[D] (embed; null for a failed file),
    frame_indices list<int64> (list<list<int64>> with several views), timestamps list<double> (likewise),
    approximate bool, error string

Parquet strings must be valid UTF-8: a file name that is not (a lone surrogate in Python) is written with
`\\udcXX` escapes, in `records.safe_text`'s plain form (`read_parquet` gives the original str back; other
readers: `records.original_text`, then os.fsencode for the name's bytes).

The schema metadata holds `vivitcli.kind` ("classify", "embed", "window"). `write_parquet` writes atomically;
the sink (`sinks.FinalFileSink`) journals records and calls it at the end, like the .json/.npy writers.
`records_table` is what a distributed writer (Ray) reuses to write part files with the same schema.
"""

from __future__ import annotations

import os

from vivitcli.errors import UsageError
from vivitcli.output.durable import OutputError, atomic_write
from vivitcli.output.records import original_text, record_keys, safe_text, tolist

KIND_KEY = b"vivitcli.kind"


def require_pyarrow():
    """pyarrow and pyarrow.parquet, or the one-line error saying what to install."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UsageError("Parquet output needs pyarrow", "pip install 'vivitcli[parquet]'") from None
    return pyarrow, pyarrow.parquet


# Columns that hold no strings (the rest may: path, error, model, labels, heads, ...).
_NUMERIC = frozenset(("embedding", "frame_indices", "timestamps", "window", "dim", "start", "end", "approximate"))


def _strings(value, fn):
    """`value` with `fn` applied to every str in it (dict keys too), through dicts, lists and tuples."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {_strings(k, fn): _strings(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strings(v, fn) for v in value]
    return value


def _safe(text: str) -> str:
    return safe_text(text, plain=True)


def _nested(values) -> bool:
    return any(v is not None and len(v) and isinstance(v[0], (list, tuple)) for v in values)


def _column_type(pa, key: str, values: list, dim: int | None):
    label = pa.struct([("label", pa.string()), ("score", pa.float64()), ("index", pa.int64())])
    if key == "labels":
        return pa.list_(label)
    if key == "heads":
        return pa.map_(pa.string(), pa.list_(label))
    if key in ("frame_indices", "timestamps"):
        item = pa.int64() if key == "frame_indices" else pa.float64()
        return pa.list_(pa.list_(item)) if _nested(values) else pa.list_(item)
    if key in ("window", "dim"):
        return pa.int64()
    if key in ("start", "end"):
        return pa.float64()
    if key == "approximate":
        return pa.bool_()
    return pa.string()


def _embedding_column(pa, records: list[dict], dim: int):
    import numpy as np

    flat = np.zeros((len(records), dim), dtype=np.float32)
    missing = np.zeros(len(records), dtype=bool)
    for i, r in enumerate(records):
        if r.get("embedding") is None or r.get("error"):
            missing[i] = True
        else:
            flat[i] = np.asarray(r["embedding"], dtype=np.float32).reshape(-1)
    values = pa.array(flat.reshape(-1), type=pa.float32())
    try:
        return pa.FixedSizeListArray.from_arrays(values, dim, mask=pa.array(missing))
    except TypeError:  # pyarrow < 15 has no mask=
        return pa.array([None if m else row for m, row in zip(missing, flat.tolist())],
                        type=pa.list_(pa.float32(), dim))


def records_table(records: list[dict], *, kind: str, dim: int | None = None):
    """A pyarrow Table with one row per record dict, in the schema above. `dim` is required for embed."""
    pa, _ = require_pyarrow()
    # The fullest record names the columns (a failed record may lack keys a windowed embed adds).
    keys = max((list(r) for r in records), key=len) if records else list(record_keys(kind))
    if kind == "embed" and dim is None:
        raise ValueError("records_table(kind='embed') needs dim")
    columns, fields = [], []
    for key in keys:
        values = [r.get(key) for r in records]
        if key == "embedding":
            arr = _embedding_column(pa, records, dim)
        else:
            if key in ("frame_indices", "timestamps", "labels"):
                values = [tolist(v) for v in values]
            elif key in ("window", "dim"):
                values = [None if v is None else int(v) for v in values]
            elif key in ("start", "end"):
                values = [None if v is None else float(v) for v in values]
            if key not in _NUMERIC:
                values = [_strings(v, _safe) for v in values]
            arr = pa.array(values, type=_column_type(pa, key, values, dim))
        columns.append(arr)
        fields.append(pa.field(key, arr.type))
    schema = pa.schema(fields, metadata={KIND_KEY: kind.encode()})
    return pa.Table.from_arrays(columns, schema=schema)


def write_parquet(path: str, records: list[dict], *, kind: str, dim: int | None = None) -> None:
    """Write record dicts to one Parquet file at `path`, atomically (temp file + rename)."""
    _, pq = require_pyarrow()
    table = records_table(records, kind=kind, dim=dim)
    atomic_write(path, lambda f: pq.write_table(table, f))


def read_parquet(path: str, *, kind: str | None = None) -> list[dict]:
    """Record dicts back from a file `write_parquet` wrote (embeddings as float32 arrays, heads as dicts)."""
    import numpy as np

    _, pq = require_pyarrow()
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises ArrowInvalid/OSError/... for a damaged file
        raise OutputError(f"{path}: not a readable Parquet file ({type(err).__name__}), cannot resume",
                          "start over with --force") from None
    found = (table.schema.metadata or {}).get(KIND_KEY, b"").decode()
    if kind is not None and found != kind:
        raise OutputError(f"{path}: holds {found or 'non-vivit'} records, not {kind}; cannot resume into it",
                          "choose another --out")
    records = table.to_pylist()
    for r in records:
        if r.get("heads") is not None:
            r["heads"] = dict(r["heads"])
        for key in r.keys() - _NUMERIC:
            r[key] = _strings(r[key], original_text)
        if r.get("embedding") is not None:
            r["embedding"] = np.asarray(r["embedding"], dtype=np.float32)
    return records


def parquet_dim(path: str) -> int | None:
    """The embedding width stored in a Parquet file's schema (None without an embedding column)."""
    pa, pq = require_pyarrow()
    schema = pq.read_schema(path)
    if "embedding" not in schema.names:
        return None
    return schema.field("embedding").type.list_size


def is_parquet(path: str) -> bool:
    return os.path.splitext(path)[1].lower() == ".parquet"
