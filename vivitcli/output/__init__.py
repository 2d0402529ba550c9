"""Outputs of a run: record dicts -> text formats, array files, Parquet; written safely and resumably.

    records.py   which kind a record dict is, its JSON form (number trimming)
    formats.py   jsonl / json / csv / table text, and choosing the format from --format / --out
    arrays.py    embedding .npy / .npz / .safetensors files and the sidecar
    parquet.py   Parquet files (optional pyarrow)
    durable.py   atomic writes, deferred signals, the output lock, --out path checks, OS errors in one line
    resume.py    reading what an earlier run left (journal, outputs, sidecars) and comparing its settings
    sinks.py     check_output() before any work, then open_sink() -> write()/write_group()/close()

Stdlib-only at import time (numpy and pyarrow are imported when an array or Parquet file is written).
"""

from vivitcli.output.arrays import SIDECAR_FORMAT, read_embedding_files, write_embedding_files
from vivitcli.output.durable import (OutputError, atomic_write, journal_path, lock_path, sidecar_path,
                                     signals_deferred)
from vivitcli.output.formats import TEXT_FORMATS, out_format
from vivitcli.output.records import jsonable, make_record, record_keys, record_kind
from vivitcli.output.sinks import (AppendFileSink, FinalFileSink, OutputTarget, Sink, StreamSink, check_output,
                                   open_sink)

__all__ = ["SIDECAR_FORMAT", "read_embedding_files", "write_embedding_files", "OutputError", "atomic_write",
           "journal_path", "lock_path", "sidecar_path", "signals_deferred", "TEXT_FORMATS", "out_format",
           "jsonable", "make_record", "record_keys", "record_kind", "AppendFileSink", "FinalFileSink",
           "OutputTarget", "Sink", "StreamSink", "check_output", "open_sink"]
