"""Records -> text (jsonl, json, csv, table), and which format a run writes.

Classify and window records have all four text formats; embed records only jsonl/json (their arrays go to
`arrays.py` or `parquet.py`). CSV is long format, one row per (record, head, rank):

    classify: path,head,rank,label,score,index,model,dtype,label_source,approximate,frame_indices,timestamps,error
    window:   path,window,start,end,head,rank,label,... (the same columns after `end`)

`head` is empty on the rows of a record's `labels` (for a multi-head model these are the top-k actions
"verb noun") and names the head ("verb", "noun") on the rows of that head's own top-k, which follow. A failed
record is one row with `error` set and the label columns empty.

Every text is valid UTF-8 whatever the file names: a name that is not (a lone surrogate in Python) is written
with `\\udcXX` escapes (`records.safe_text`: JSON's own escape in jsonl/json; in csv cells the plain form that
`records.original_text` reads back exactly). Stdlib only.
"""

from __future__ import annotations

import csv
import io
import os

from vivitcli.errors import UsageError, printable
from vivitcli.output.records import json_text, jsonable, safe_text

TEXT_FORMATS = ("table", "jsonl", "json", "csv")
ARRAY_FORMATS = ("npy", "npz", "safetensors")

# --out suffix -> format, and which formats each kind may be written as.
SUFFIX_FORMAT = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".txt": "table",
                 ".npy": "npy", ".npz": "npz", ".safetensors": "safetensors", ".parquet": "parquet"}
KIND_FORMATS = {"classify": TEXT_FORMATS + ("parquet",), "window": TEXT_FORMATS + ("parquet",),
                "embed": ("jsonl", "json") + ARRAY_FORMATS + ("parquet",)}


def dumps(record: dict) -> str:
    return json_text(jsonable(record), separators=(", ", ": "))


def joined(value) -> str:
    """Frame indices / timestamps in one csv cell: numbers space-separated, views separated by ' | '."""
    if value is None:
        return ""
    if value and isinstance(value[0], list):
        return " | ".join(joined(v) for v in value)
    return " ".join(str(v) for v in value)


class Format:
    """Turns records into text; a file in a streaming format can be appended to record by record."""

    streaming = True

    def __init__(self, kind: str = "classify"):
        self.kind = kind

    def header(self) -> str:
        return ""

    def record(self, record: dict, first: bool) -> str:
        raise NotImplementedError

    def footer(self, any_records: bool) -> str:
        return ""


class JsonlFormat(Format):
    def record(self, record, first):
        return dumps(record) + "\n"


class JsonFormat(Format):
    """One JSON array; streamed to stdout as `[`, records, `]` so that even an interrupted run closes it."""

    streaming = False

    def header(self):
        return "["

    def record(self, record, first):
        return ("\n  " if first else ",\n  ") + dumps(record)

    def footer(self, any_records):
        return "\n]\n" if any_records else "]\n"


LABEL_COLUMNS = ("head", "rank", "label", "score", "index", "model", "dtype", "label_source", "approximate",
                 "frame_indices", "timestamps", "error")
CSV_COLUMNS = {"classify": ("path",) + LABEL_COLUMNS, "window": ("path", "window", "start", "end") + LABEL_COLUMNS}


def csv_text(rows) -> str:
    # Written with "\r\n" so that the writer quotes a field holding a lone "\r" (a file name may: unquoted, every
    # CSV reader splits the row there); each row then ends in "\n" as before.
    lines = []
    for row in rows:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerow(row)
        lines.append(buf.getvalue()[:-2] + "\n")
    return "".join(lines)


class CsvFormat(Format):
    def __init__(self, kind="classify"):
        if kind not in CSV_COLUMNS:
            raise UsageError(f"csv holds classify or timeline records, not {kind}", "use jsonl or json")
        super().__init__(kind)
        self.columns = CSV_COLUMNS[kind]

    def header(self):
        return csv_text([self.columns])

    def record(self, record, first):
        rec = jsonable(record)
        common = {key: "" if rec.get(key) is None else rec[key] for key in ("path", "window", "start", "end")}
        common.update(model=rec.get("model") or "", dtype=rec.get("dtype") or "",
                      label_source=rec.get("label_source") or "",
                      approximate="" if rec.get("approximate") is None else str(bool(rec["approximate"])).lower(),
                      frame_indices=joined(rec.get("frame_indices")), timestamps=joined(rec.get("timestamps")),
                      error=rec.get("error") or "")
        groups = [("", rec.get("labels") or [])] + list((rec.get("heads") or {}).items())
        rows = []
        for head, items in groups:
            for rank, item in enumerate(items, 1):
                rows.append(dict(common, head=head, rank=rank, label=item["label"], score=item["score"],
                                 index=item["index"]))
        if not rows:  # a failed record (or one without labels) is still one row
            rows.append(dict(common, head="", rank="", label="", score="", index=""))
        cells = ([row[c] for c in self.columns] for row in rows)
        return csv_text([[safe_text(v, plain=True) if isinstance(v, str) else v for v in row] for row in cells])


def _seconds(x) -> str:
    return "?" if x is None else f"{float(x):.3f}"


class TableFormat(Format):
    """For people at a terminal: the path, then `score  label` lines (windows: with their time range)."""

    def record(self, record, first):
        lines = []
        indent = "  "
        if self.kind == "window":
            if first or record.get("window") in (0, None):
                lines.append(printable(record["path"]))  # a name holding ESC[2J must not clear the terminal
            lines.append(f"  {_seconds(record.get('start'))}-{_seconds(record.get('end'))} s")
            indent = "    "
        else:
            lines.append(printable(record["path"]) + ("  (approximate frames)" if record.get("approximate") else ""))
        if record.get("error"):
            lines.append(f"{indent}error: {printable(record['error'])}")
        for item in record.get("labels") or []:
            lines.append(f"{indent}{float(item['score']):7.4f}  {printable(item['label'])}")
        for head, items in (record.get("heads") or {}).items():
            for item in items:
                lines.append(f"{indent}{float(item['score']):7.4f}  {head}: {printable(item['label'])}")
        return "\n".join(lines) + "\n"


FORMAT_CLASSES = {"jsonl": JsonlFormat, "json": JsonFormat, "csv": CsvFormat, "table": TableFormat}


def text_format(name: str, kind: str) -> Format:
    return FORMAT_CLASSES[name](kind)


def out_format(out: str | None, fmt: str | None, *, kind: str, stdout_isatty: bool,
               extra: dict[str, str] | None = None) -> str:
    """The format a run writes: --format if given, else from --out's suffix, else table/jsonl by terminal.

    An --out suffix that names no format is a UsageError (with --format given, any suffix goes). A known
    suffix that contradicts --format is one too. `extra` maps further suffixes to formats the caller writes
    itself (e.g. timeline's {".srt": "srt"}).
    """
    suffixes = dict(SUFFIX_FORMAT, **(extra or {}))
    allowed = KIND_FORMATS[kind] + tuple((extra or {}).values())
    if out is None:
        if kind == "embed":
            if fmt not in (None, "jsonl"):
                raise UsageError(f"embed writes --format {fmt} only to a file", "add --out FILE")
            return "jsonl"
        if fmt is not None and fmt not in TEXT_FORMATS + tuple((extra or {}).values()):
            raise UsageError(f"--format {fmt} needs --out FILE")
        return fmt if fmt is not None else ("table" if stdout_isatty else "jsonl")
    suffix = os.path.splitext(out)[1].lower()
    by_suffix = suffixes.get(suffix)
    if fmt is not None:
        if fmt not in allowed:
            raise UsageError(f"--format {fmt} is not available here", f"use one of {', '.join(allowed)}")
        if by_suffix is not None and by_suffix != fmt and not (by_suffix == "table" and fmt in TEXT_FORMATS):
            raise UsageError(f"--format {fmt} contradicts --out {out} ({suffix} is {by_suffix})",
                             "drop --format, or give the file a matching suffix")
        return fmt
    if by_suffix is None or by_suffix not in allowed:
        names = " ".join(s for s, f in suffixes.items() if f in allowed)
        raise UsageError(f"--out {out}: unknown file type {suffix or '(no suffix)'} for {kind}",
                         f"use one of {names}, or give --format")
    return by_suffix
