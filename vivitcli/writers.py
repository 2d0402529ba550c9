"""Output formats, and the files a run writes, made safe to interrupt and to resume.

A run produces one record (a dict) per input, in input order. Records go to a *sink*:

- stdout: `table` (for people), `jsonl`, `json` (one array), `csv`; every record is written in one piece while
  SIGINT/SIGTERM are held back, so an interrupted run still leaves whole lines (and a closed json array).
- an append file (`--out x.jsonl | x.csv | x.txt`): records are appended as they finish, one write call each,
  so the file is valid after Ctrl-C and at worst loses a torn last line after `kill -9`.
- a final file (`--out x.json | x.npy | x.npz | x.safetensors`): records go to a journal `x.npy.partial`
  (jsonl) as they finish; the final file is written from it atomically (temp file + rename) when the run ends,
  also when it ends by Ctrl-C or SIGTERM. A final file is therefore never half written.

`--resume` reads what a previous run left (the journal when there is one, else the output itself), keeps the
successful records, and the new run only does the inputs missing from it. Records of failed inputs are
dropped so that the retry does not duplicate them.

Embedding files: `feats.npy` holds a float32 (N, D) array; the sidecar `feats.npy.json` says where each row
came from (see `write_embedding_files`). numpy is imported lazily (`vivit --help` imports this module's
siblings, never numpy).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import signal
import sys
import threading
from typing import IO, Any, Iterable

from vivitcli.errors import UsageError, VivitError

CLASSIFY_FORMATS = ("table", "jsonl", "json", "csv")
EMBED_FILE_SUFFIXES = (".npy", ".npz", ".safetensors")
SIDECAR_FORMAT = "vivitcli.embeddings/1"

_SUFFIX_FORMAT = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".txt": "table",
                  ".npy": "npy", ".npz": "npz", ".safetensors": "safetensors"}


class OutputError(VivitError):
    """An output file that cannot be written or resumed."""


# --------------------------------------------------------------------------------------------------------------
# Signals: hold Ctrl-C / SIGTERM back while a record or a final file is being written.


@contextlib.contextmanager
def signals_deferred():
    """Delay SIGINT and SIGTERM until the block is done, then deliver them to the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
        except (ValueError, OSError):  # pragma: no cover - embedded interpreters without signal support
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


# --------------------------------------------------------------------------------------------------------------
# Records -> text.


def _f(x: float, digits: int) -> float | None:
    """A float trimmed to `digits` significant digits (9 round-trips float32 exactly); NaN/inf -> None."""
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _tolist(value):
    if value is None:
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    return [_tolist(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v for v in value]


def jsonable(record: dict) -> dict:
    """A record with numpy values turned into plain JSON values (embeddings as float32-exact numbers)."""
    out = {}
    for key, value in record.items():
        if key == "embedding" and value is not None:
            out[key] = [_f(v, 9) for v in _tolist(value)]
        elif key == "timestamps" and value is not None:
            out[key] = _round_nested(_tolist(value), 6)
        elif key == "frame_indices" and value is not None:
            out[key] = _tolist(value)
        elif key == "labels" and value is not None:
            out[key] = [{"label": item["label"], "score": _f(item["score"], 6), "index": int(item["index"])}
                        for item in value]
        else:
            out[key] = value
    return out


def _round_nested(value, ndigits: int):
    if isinstance(value, list):
        return [_round_nested(v, ndigits) for v in value]
    return round(float(value), ndigits)


def _dumps(record: dict) -> str:
    return json.dumps(jsonable(record), ensure_ascii=False, separators=(", ", ": "))


def _joined(value) -> str:
    """Frame indices / timestamps in one csv cell: numbers space-separated, views separated by ' | '."""
    if value is None:
        return ""
    value = _tolist(value)
    if value and isinstance(value[0], list):
        return " | ".join(_joined(v) for v in value)
    return " ".join(str(v) for v in value)


class Format:
    """Turns records into text; `streaming` formats can be appended to a file record by record."""

    streaming = True

    def header(self) -> str:
        return ""

    def record(self, record: dict, first: bool) -> str:
        raise NotImplementedError

    def footer(self, any_records: bool) -> str:
        return ""


class JsonlFormat(Format):
    def record(self, record, first):
        return _dumps(record) + "\n"


class JsonFormat(Format):
    """One JSON array; streamed to stdout as `[`, records, `]` so that even an interrupted run closes it."""

    streaming = False

    def header(self):
        return "["

    def record(self, record, first):
        return ("\n  " if first else ",\n  ") + _dumps(record)

    def footer(self, any_records):
        return "\n]\n" if any_records else "]\n"


CSV_COLUMNS = ("path", "rank", "label", "score", "index", "model", "label_source", "approximate",
               "frame_indices", "timestamps", "error")


class CsvFormat(Format):
    """Long format: one row per (file, label rank); a failed file is one row with `error` set."""

    def header(self):
        return self._rows([CSV_COLUMNS])

    @staticmethod
    def _rows(rows) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        return buf.getvalue()

    def record(self, record, first):
        rec = jsonable(record)
        common = dict(path=rec["path"], model=rec.get("model") or "", label_source=rec.get("label_source") or "",
                      approximate="" if rec.get("approximate") is None else str(bool(rec["approximate"])).lower(),
                      frame_indices=_joined(rec.get("frame_indices")), timestamps=_joined(rec.get("timestamps")),
                      error=rec.get("error") or "")
        labels = rec.get("labels") or [None]
        rows = []
        for rank, item in enumerate(labels, 1):
            row = dict(common, rank=rank if item else "", label=item["label"] if item else "",
                       score=item["score"] if item else "", index=item["index"] if item else "")
            rows.append([row[c] for c in CSV_COLUMNS])
        return self._rows(rows)


class TableFormat(Format):
    """For people at a terminal: the path, then one `score  label` line per label."""

    def record(self, record, first):
        if record.get("error"):
            return f"{record['path']}\n  error: {record['error']}\n"
        lines = [record["path"] + ("  (approximate frames)" if record.get("approximate") else "")]
        for item in record.get("labels") or []:
            lines.append(f"  {float(item['score']):7.4f}  {item['label']}")
        return "\n".join(lines) + "\n"


FORMAT_CLASSES = {"jsonl": JsonlFormat, "json": JsonFormat, "csv": CsvFormat, "table": TableFormat}


# --------------------------------------------------------------------------------------------------------------
# Choosing a format.


def out_format(out: str | None, fmt: str | None, *, task: str, stdout_isatty: bool) -> str:
    """The output format for a run: --format if given, else from --out's suffix, else by terminal/pipe."""
    if task == "embed":
        if out is None:
            if fmt not in (None, "jsonl"):
                raise UsageError(f"embed writes --format {fmt} only to a file", "add --out FILE")
            return "jsonl"
        suffix = os.path.splitext(out)[1].lower()
        kind = _SUFFIX_FORMAT.get(suffix)
        if kind not in ("npy", "npz", "safetensors", "jsonl", "json"):
            raise UsageError(f"{out}: unknown embedding file type {suffix or '(none)'}",
                             "use .npy, .npz, .safetensors or .jsonl")
        return kind
    if fmt is not None:
        return fmt
    if out is not None:
        kind = _SUFFIX_FORMAT.get(os.path.splitext(out)[1].lower())
        return kind if kind in CLASSIFY_FORMATS else "jsonl"
    return "table" if stdout_isatty else "jsonl"


# --------------------------------------------------------------------------------------------------------------
# Reading what a previous run left, for --resume.


def _norm(path: str) -> str:
    return os.path.normpath(path)


def _read_jsonl_whole_lines(path: str) -> tuple[list[dict], int]:
    """Records from whole lines, and the byte length of the valid prefix (a torn last line is not counted)."""
    with open(path, "rb") as f:
        data = f.read()
    records, good = [], 0
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            break
        line = data[pos:end]
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn or foreign line: everything from here on is not ours to trust
        pos = good = end + 1
    return records, good


def _read_csv_rows(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        data = f.read()
    if data and not data.endswith("\n"):
        data = data[: data.rfind("\n") + 1]
    rows = list(csv.DictReader(io.StringIO(data)))
    if rows and set(rows[0]) != set(CSV_COLUMNS):
        raise OutputError(f"{path}: not a vivit csv (columns differ)", "resume into the file the first run wrote")
    return rows


def _csv_rows_to_records(rows: list[dict]) -> list[dict]:
    """Group csv rows back into one record per path (enough for resume: path, model, labels, error)."""
    records: dict[str, dict] = {}
    for row in rows:
        rec = records.setdefault(row["path"], {
            "path": row["path"], "labels": [], "model": row["model"] or None,
            "label_source": row["label_source"] or None, "error": row["error"] or None, "_rows": []})
        rec["_rows"].append(row)
        if row["label"] != "" or row["rank"] != "":
            rec["labels"].append({"label": row["label"], "score": float(row["score"] or "nan"),
                                  "index": int(row["index"] or -1)})
    return list(records.values())


def read_embedding_files(path: str) -> list[dict]:
    """Records (path, embedding, row info) from an embeddings file and its sidecar."""
    import numpy as np

    sidecar = sidecar_path(path)
    if not os.path.exists(sidecar):
        raise OutputError(f"{path}: no sidecar {os.path.basename(sidecar)} next to it",
                          "resume needs the row index the first run wrote")
    with open(sidecar, encoding="utf-8") as f:
        meta = json.load(f)
    kind = _SUFFIX_FORMAT[os.path.splitext(path)[1].lower()]
    if kind == "npy":
        array = np.load(path, allow_pickle=False)
    elif kind == "npz":
        with np.load(path, allow_pickle=False) as z:
            array = z["embeddings"]
    else:
        from safetensors.numpy import load_file

        array = load_file(path)["embeddings"]
    rows = meta.get("rows", [])
    if array.ndim != 2 or array.shape[0] != len(rows):
        raise OutputError(f"{path}: {array.shape[0]} rows but the sidecar lists {len(rows)}",
                          "the two files come from different runs; start over without --resume")
    records = []
    for row, vector in zip(rows, array):
        rec = {k: v for k, v in row.items() if k != "row"}
        rec["embedding"] = vector.astype(np.float32)
        rec.setdefault("error", None)
        records.append(rec)
    for err in meta.get("errors", []):
        records.append({"path": err["path"], "error": err["error"]})
    return records


# --------------------------------------------------------------------------------------------------------------
# Writing files atomically.


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _tmp_name(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.{os.getpid()}.tmp")


def atomic_write(path: str, write) -> None:
    """Call `write(binary_file)` on a temporary file next to `path`, fsync it, then rename it over `path`."""
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def sidecar_path(path: str) -> str:
    """`feats.npy` -> `feats.npy.json`: the row index written next to every embeddings file."""
    return path + ".json"


def journal_path(path: str) -> str:
    return path + ".partial"


def write_embedding_files(path: str, records: list[dict], *, complete: bool) -> None:
    """Write an (N, D) float32 embeddings file plus its sidecar, both atomically.

    The sidecar `<path>.json`:
        {"format": "vivitcli.embeddings/1", "file": "feats.npy", "shape": [N, D], "dtype": "float32",
         "complete": true,                      # false when the run was interrupted (resume with --resume)
         "rows": [{"row": 0, "path": "a.mp4", "model": ..., "pool": ..., "frame_indices": [...],
                   "timestamps": [...], "approximate": false}, ...],   # rows[i] describes array row i
         "errors": [{"path": "bad.mp4", "error": "..."}]}               # inputs that produced no row
    .npz files also hold `paths` (N,) next to `embeddings`; .safetensors files hold `embeddings` and carry the
    paths as a JSON list in their metadata.
    """
    import numpy as np

    good = [r for r in records if not r.get("error")]
    dims = {len(r["embedding"]) for r in good}
    if len(dims) > 1:
        raise OutputError(f"{path}: embeddings of different sizes {sorted(dims)}",
                          "the resumed run used another model or --pool; start over without --resume")
    dim = dims.pop() if dims else 0
    array = np.zeros((len(good), dim), dtype=np.float32)
    for i, r in enumerate(good):
        array[i] = np.asarray(r["embedding"], dtype=np.float32)
    paths = [r["path"] for r in good]
    kind = _SUFFIX_FORMAT[os.path.splitext(path)[1].lower()]
    if kind == "npy":
        atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))
    elif kind == "npz":
        names = np.array(paths, dtype=str) if paths else np.zeros((0,), dtype="<U1")
        atomic_write(path, lambda f: np.savez(f, embeddings=array, paths=names))
    else:
        from safetensors.numpy import save

        blob = save({"embeddings": array}, metadata={"paths": json.dumps(paths, ensure_ascii=False)})
        atomic_write(path, lambda f: f.write(blob))
    rows = []
    for i, r in enumerate(good):
        info = {k: v for k, v in jsonable(r).items() if k not in ("embedding", "error", "dim")}
        rows.append({"row": i, **info})
    meta = {"format": SIDECAR_FORMAT, "file": os.path.basename(path), "shape": [len(good), dim],
            "dtype": "float32", "complete": complete, "rows": rows,
            "errors": [{"path": r["path"], "error": r["error"]} for r in records if r.get("error")]}
    text = json.dumps(meta, ensure_ascii=False, indent=1) + "\n"
    atomic_write(sidecar_path(path), lambda f: f.write(text.encode("utf-8")))


# --------------------------------------------------------------------------------------------------------------
# Sinks.


class Sink:
    """Where a run's records go. `done` holds the (normalised) paths a previous run already finished.

    `expect` (e.g. model=..., pool=...) must match the records of a run being resumed.
    """

    def __init__(self, expect: dict | None = None):
        self.expect = dict(expect or {})
        self.done: set[str] = set()
        self.previous: list[dict] = []
        self.count = 0

    def check_compatible(self, **expected) -> None:
        """Refuse to resume into an output made with another model, pool, ... (UsageError)."""
        for rec in self.previous:
            if rec.get("error"):
                continue
            for key, value in expected.items():
                if key in rec and rec[key] is not None and value is not None and rec[key] != value:
                    raise UsageError(f"cannot resume: the output was made with {key} {rec[key]!r}, not {value!r}",
                                     "use the same options, or start over without --resume")

    def _remember_previous(self, records: list[dict]) -> None:
        if any(not isinstance(r, dict) or not isinstance(r.get("path"), str) for r in records):
            raise OutputError(f"{getattr(self, 'path', '')}: not written by vivit (records without a path), "
                              "cannot resume from it", "start over without --resume, or pick another --out")
        self.previous = [r for r in records if not r.get("error")]
        self.done = {_norm(r["path"]) for r in self.previous}
        # Checked before anything is rewritten: a refused resume leaves the files as they were.
        self.check_compatible(**self.expect)

    def write(self, record: dict) -> None:
        raise NotImplementedError

    def close(self, complete: bool = True) -> None:
        raise NotImplementedError


class StreamSink(Sink):
    """Records to a text stream (stdout), each written and flushed in one piece."""

    def __init__(self, stream: IO[str], fmt: Format):
        super().__init__()
        self.stream, self.fmt = stream, fmt
        self._started = False

    def _emit(self, text: str) -> None:
        if text:
            self.stream.write(text)
            self.stream.flush()

    def write(self, record):
        with signals_deferred():
            if not self._started:
                self._started = True
                self._emit(self.fmt.header() + self.fmt.record(record, True))
            else:
                self._emit(self.fmt.record(record, False))
            self.count += 1

    def close(self, complete=True):
        with signals_deferred():
            if not self._started:
                self._started = True
                if isinstance(self.fmt, JsonFormat):  # an empty run still prints a valid (empty) array
                    self._emit(self.fmt.header())
                else:
                    return
            self._emit(self.fmt.footer(self.count > 0))


class AppendFileSink(Sink):
    """jsonl / csv / table records appended to a file, one os.write per record."""

    def __init__(self, path: str, fmt_name: str, *, resume: bool, expect: dict | None = None):
        super().__init__(expect)
        self.path, self.fmt = path, FORMAT_CLASSES[fmt_name]()
        self._fd = None
        self._fresh = not (resume and os.path.exists(path))
        if resume and fmt_name == "table":
            raise UsageError("--resume needs a machine-readable --out (jsonl or csv)")
        if not self._fresh:
            self._resume(fmt_name)
            self._open()
        elif not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
            raise OutputError(f"{path}: cannot write to its folder")
        # A fresh file is created on the first record, so a run that dies before producing any (a model that
        # fails to run, an early Ctrl-C) leaves an existing file of that name as it was.

    def _open(self) -> None:
        if self._fd is None:
            if self._fresh:
                atomic_write(self.path, lambda f: f.write(self.fmt.header().encode("utf-8")))
                self._fresh = False
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            except OSError as err:
                raise OutputError(f"{self.path}: cannot open for writing ({err.strerror})") from None

    def _resume(self, fmt_name: str) -> None:
        if fmt_name == "jsonl":
            records, _ = _read_jsonl_whole_lines(self.path)
            self._remember_previous(records)
            text = "".join(json.dumps(r, ensure_ascii=False, separators=(", ", ": ")) + "\n" for r in self.previous)
        else:
            rows = _read_csv_rows(self.path)
            records = _csv_rows_to_records(rows)
            self._remember_previous(records)
            keep = [[row[c] for c in CSV_COLUMNS] for rec in self.previous for row in rec.pop("_rows")]
            text = self.fmt.header() + CsvFormat._rows(keep)
        # Rewriting (atomically) drops failed records and a torn last line before new records are appended.
        atomic_write(self.path, lambda f: f.write(text.encode("utf-8")))

    def write(self, record):
        data = self.fmt.record(record, self.count == 0).encode("utf-8")
        with signals_deferred():
            self._open()
            _write_all(self._fd, data)
            self.count += 1

    def close(self, complete=True):
        if complete:
            self._open()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class FinalFileSink(Sink):
    """Records journalled as jsonl next to the output; the output itself is written atomically at close."""

    def __init__(self, path: str, kind: str, *, resume: bool, order: Iterable[str] = (), quiet: bool = True,
                 log=None, expect: dict | None = None):
        super().__init__(expect)
        self.path, self.kind = path, kind
        self.journal = journal_path(path)
        self._order = {_norm(p): i for i, p in enumerate(order)}
        previous: list[dict] = []
        if resume:
            if os.path.exists(self.journal):
                previous, _ = _read_jsonl_whole_lines(self.journal)
            elif os.path.exists(path):
                previous = self._read_final()
        elif os.path.exists(self.journal) and log is not None and not quiet:
            log(f"note: starting over; the unfinished run in {self.journal} is discarded (--resume continues it)")
        self._remember_previous(previous)
        # The journal is rewritten to hold exactly the kept records, so it alone is the state from here on.
        text = "".join(json.dumps(jsonable(r), ensure_ascii=False) + "\n" for r in self.previous)
        atomic_write(self.journal, lambda f: f.write(text.encode("utf-8")))
        self.records: list[dict] = list(self.previous)
        self._fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)

    def _read_final(self) -> list[dict]:
        if self.kind == "json":
            try:
                with open(self.path, encoding="utf-8") as f:
                    data = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise OutputError(f"{self.path}: not valid JSON, cannot resume from it",
                                  "start over without --resume") from None
            if not isinstance(data, list):
                raise OutputError(f"{self.path}: not a vivit json array, cannot resume from it")
            return data
        return read_embedding_files(self.path)

    def write(self, record):
        data = (json.dumps(jsonable(record), ensure_ascii=False) + "\n").encode("utf-8")
        with signals_deferred():
            _write_all(self._fd, data)
            self.records.append(record)
            self.count += 1

    def _sorted(self) -> list[dict]:
        """Input order of the current run; records for paths it does not name keep their order, at the end."""
        big = len(self._order)
        keyed = [(self._order.get(_norm(r["path"]), big), i, r) for i, r in enumerate(self.records)]
        keyed.sort(key=lambda t: (t[0], t[1]))
        return [r for _, _, r in keyed]

    def close(self, complete=True):
        if self._fd is None:
            return
        with signals_deferred():
            os.close(self._fd)
            self._fd = None
            if not complete and self.count == 0:
                # Nothing new (the run died before its first result): the files stay as they were.
                if not self.previous:
                    with contextlib.suppress(OSError):
                        os.unlink(self.journal)
                return
            records = self._sorted()
            if self.kind == "json":
                fmt = JsonFormat()
                text = fmt.header() + "".join(fmt.record(r, i == 0) for i, r in enumerate(records))
                text += fmt.footer(bool(records))
                atomic_write(self.path, lambda f: f.write(text.encode("utf-8")))
            else:
                write_embedding_files(self.path, records, complete=complete)
            # The journal goes only once the output holds everything it had; an interrupted output is
            # complete=false in its sidecar and is itself what --resume reads next time.
            with contextlib.suppress(OSError):
                os.unlink(self.journal)


def open_sink(task: str, fmt: str, out: str | None, *, resume: bool, order: Iterable[str] = (),
              stdout: IO[str] | None = None, quiet: bool = True, log=None, expect: dict | None = None) -> Sink:
    """The sink for a run. `fmt` comes from `out_format`; `expect` see `Sink`."""
    if out is None:
        if resume:
            raise UsageError("--resume needs --out FILE", "stdout cannot be continued; write to a file")
        return StreamSink(stdout if stdout is not None else sys.stdout, FORMAT_CLASSES[fmt]())
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise UsageError(f"{out}: folder {parent} does not exist")
    if os.path.isdir(out):
        raise UsageError(f"{out}: is a folder", "give a file name for --out")
    try:
        if fmt in ("jsonl", "csv", "table"):
            return AppendFileSink(out, fmt, resume=resume, expect=expect)
        return FinalFileSink(out, fmt, resume=resume, order=order, quiet=quiet, log=log, expect=expect)
    except PermissionError as err:
        raise OutputError(f"{out}: cannot write ({err.strerror})") from None


def record_keys(task: str) -> tuple[str, ...]:
    """The keys every record of a task carries (failed inputs included), in output order."""
    common = ("frame_indices", "timestamps", "approximate", "error")
    if task == "classify":
        return ("path", "labels", "model", "label_source") + common
    return ("path", "dim", "pool", "embedding", "model") + common


def make_record(task: str, **values: Any) -> dict:
    """A record with every key of its task present (None where unknown), in a stable order."""
    return {key: values.get(key) for key in record_keys(task)}
