"""Reading what an earlier run left, for --resume: its records, its kind and the settings it was made with.

Where the state lives (first found wins):
- final-file formats (.json, .npy, .npz, .safetensors, .parquet): the journal `OUT.partial` while a run is
  unfinished (first line: {"format": "vivitcli.journal/1", "kind": ..., "settings": {...}}, then one jsonl
  record per line), else the output itself plus its sidecar `OUT.json`;
- append formats (.jsonl, .csv): the output itself plus its sidecar `OUT.json` (settings, kind).
A torn last line (a run killed mid-write) is dropped; any other unreadable line, a sidecar that is not ours, or
records of another kind (embed into a classify output) are one-line OutputErrors. Failed records are not
kept: their inputs are done again.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field

from vivitcli.errors import UsageError
from vivitcli.output.arrays import read_embedding_files, read_sidecar
from vivitcli.output.durable import OutputError, journal_path, sidecar_path
from vivitcli.output.formats import CSV_COLUMNS, csv_text
from vivitcli.output.records import original_text, record_kind

JOURNAL_FORMAT = "vivitcli.journal/1"


def norm(path: str) -> str:
    return os.path.normpath(path)


@dataclass
class Previous:
    """The successful records an earlier run left, and how it was made."""

    source: str  # the file they were read from
    settings: dict | None
    records: list[dict] = field(default_factory=list)  # kept records, file order
    raw: list[str] = field(default_factory=list)  # append formats: each kept record's text, to write back
    dropped: int = 0  # failed records (and their paths' other records) that are done again

    @property
    def done(self) -> set[str]:
        return {norm(r["path"]) for r in self.records}


def read_jsonl(path: str) -> list[tuple[dict, str]]:
    """(record, line) for each whole line; a torn last line is dropped, a bad whole line is an OutputError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise OutputError(f"{path}: cannot read it to resume ({err.strerror})") from None
    out = []
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], 1):  # the last piece has no newline: torn or empty
        if not line.strip():
            continue
        try:
            out.append((json.loads(line), line.decode("utf-8") + "\n"))
        except (ValueError, UnicodeDecodeError):
            raise OutputError(f"{path}: line {number} is not a vivit record (corrupt or foreign file), "
                              "cannot resume", "start over with --force, or choose another --out") from None
    return out


def _check_kind(path: str, found: str | None, kind: str) -> None:
    if found != kind:
        what = f"{found} records" if found else "records vivit did not write"
        raise OutputError(f"{path}: holds {what}, not {kind}; cannot resume into it",
                          "choose another --out, or start over with --force")


def _keep(source: str, settings, records: list[dict], raw: list[str] | None, kind: str) -> Previous:
    for rec in records:
        _check_kind(source, record_kind(rec), kind)
    failed = {norm(r["path"]) for r in records if r.get("error")}
    keep = [i for i, r in enumerate(records) if norm(r["path"]) not in failed]
    return Previous(source, settings, [records[i] for i in keep], [raw[i] for i in keep] if raw else [],
                    len(records) - len(keep))


def _sidecar_settings(out: str, kind: str, *, required: bool) -> dict | None:
    if not required and not os.path.exists(sidecar_path(out)):
        return None
    meta = read_sidecar(out)
    if meta.get("kind") not in (None, kind):
        _check_kind(out, meta.get("kind"), kind)
    return meta


def read_journal(path: str, kind: str) -> Previous:
    journal = journal_path(path)
    items = read_jsonl(journal)
    if not items or not isinstance(items[0][0], dict) or items[0][0].get("format") != JOURNAL_FORMAT:
        raise OutputError(f"{journal}: corrupt journal (no vivit header), cannot resume",
                          "start over with --force")
    head = items[0][0]
    if head.get("kind") != kind:
        _check_kind(journal, head.get("kind"), kind)
    records = [r for r, _ in items[1:]]
    for r in records:
        if "embedding" in r and r["embedding"] is not None:
            import numpy as np

            r["embedding"] = np.asarray(r["embedding"], dtype=np.float32)
    return _keep(journal, head.get("settings"), records, None, kind)


def _csv_number(text: str, to):
    return None if text == "" else to(text)


def read_csv_records(path: str, kind: str) -> tuple[list[dict], list[str]]:
    """Records and their rows' text, grouping consecutive rows of one record (one file, or one window).

    The records hold what the rows do: path, window/start/end, labels and heads (label, score, index), model,
    error (a timeline resume rebuilds segments and subtitles of finished videos from them).
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            data = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise OutputError(f"{path}: cannot read it to resume ({type(err).__name__})", "start over with --force") \
            from None
    if data and not data.endswith("\n"):
        data = data[: data.rfind("\n") + 1]  # a torn last row
    try:
        rows = list(csv.reader(io.StringIO(data)))
    except csv.Error as err:
        raise OutputError(f"{path}: not a readable csv ({err}), cannot resume", "start over with --force") from None
    if not rows:
        return [], []
    header = tuple(rows[0])
    if header != CSV_COLUMNS.get(kind):
        found = next((k for k, cols in CSV_COLUMNS.items() if cols == header), None)
        _check_kind(path, found, kind)
    records, raw = [], []
    for number, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            raise OutputError(f"{path}: a row with {len(row)} columns, not {len(header)} (corrupt csv), "
                              "cannot resume", "start over with --force")
        # Cells hold names in `safe_text`'s plain form; records get the str the run had (lone surrogates back).
        values = {name: original_text(cell) for name, cell in zip(header, row)}
        try:
            key = (values["path"], _csv_number(values.get("window", ""), int))
            if not records or (records[-1]["path"], records[-1].get("window")) != key:
                rec = {"path": values["path"]}
                if kind == "window":
                    rec.update(window=key[1], start=_csv_number(values["start"], float),
                               end=_csv_number(values["end"], float))
                rec.update(labels=[], heads=None, model=values["model"] or None, error=None)
                records.append(rec)
                raw.append("")
            rec = records[-1]
            raw[-1] += csv_text([row])
            rec["error"] = rec["error"] or values["error"] or None
            if values["rank"]:
                item = {"label": values["label"], "score": float(values["score"]), "index": int(values["index"])}
                if values["head"]:
                    rec["heads"] = rec["heads"] or {}
                    rec["heads"].setdefault(values["head"], []).append(item)
                else:
                    rec["labels"].append(item)
        except ValueError:
            raise OutputError(f"{path}: row {number} holds a value that is not a number (corrupt csv), "
                              "cannot resume", "start over with --force") from None
    return records, raw


def read_previous(out: str, fmt: str, kind: str) -> Previous | None:
    """What an earlier run left at `out` (the resolved output file), or None when there is nothing."""
    journal = journal_path(out)
    if fmt == "table":
        raise UsageError("--resume needs a machine-readable --out (jsonl, json or csv)")
    if fmt in ("jsonl", "csv"):
        if not os.path.exists(out):
            return None
        if fmt == "jsonl":
            items = read_jsonl(out)
            records, raw = [r for r, _ in items], [line for _, line in items]
        else:
            records, raw = read_csv_records(out, kind)
        for rec in records:  # the records' own keys first: the clearest message for another task's output
            _check_kind(out, record_kind(rec), kind)
        meta = _sidecar_settings(out, kind, required=bool(records))
        return _keep(out, (meta or {}).get("settings"), records, raw, kind)
    if os.path.exists(journal):
        return read_journal(out, kind)
    if not os.path.exists(out):
        return None
    meta = _sidecar_settings(out, kind, required=True)
    if fmt == "json":
        try:
            with open(out, encoding="utf-8") as f:
                records = json.load(f)
        except (ValueError, UnicodeDecodeError):
            raise OutputError(f"{out}: not valid JSON, cannot resume from it", "start over with --force") from None
        if not isinstance(records, list):
            raise OutputError(f"{out}: not a vivit json array, cannot resume from it", "start over with --force")
    elif fmt == "parquet":
        from vivitcli.output.parquet import read_parquet

        records = read_parquet(out, kind=kind)
    else:
        records = read_embedding_files(out, meta)
        records += [{"path": e.get("path"), "error": e.get("error") or "failed", "embedding": None}
                    for e in meta.get("errors", []) if isinstance(e, dict)]
    return _keep(out, meta.get("settings"), records, None, kind)


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _canon(value):
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def compare_settings(out: str, old: dict | None, new: dict | None) -> None:
    """UsageError naming the first option whose value differs from the run being resumed."""
    if new is None:
        return
    if old is None:
        raise UsageError(f"cannot resume {out}: it does not record the options it was made with "
                         "(written by an older vivit)", "start over with --force")
    old, new = _canon(old), _canon(new)
    for key in list(new) + [k for k in old if k not in new]:
        if old.get(key) != new.get(key):
            was = "no " + _flag(key) if old.get(key) is None else f"{_flag(key)} {json.dumps(old.get(key))}"
            now = "none" if new.get(key) is None else json.dumps(new.get(key))
            raise UsageError(f"cannot resume {out}: it was made with {was}, not {now}",
                             "use the same options, or start over with --force")
