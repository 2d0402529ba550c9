"""Where a run's records go: stdout, a file appended record by record, or a file written whole at the end.

- `StreamSink` (stdout): table, jsonl, json, csv; each record written and flushed in one piece while
  SIGINT/SIGTERM wait, so an interrupted run leaves whole lines (and a closed json array).
- `AppendFileSink` (.jsonl, .csv, .txt): records appended as they finish, one write call per record (or per
  group, e.g. all windows of one file), so the file is valid after Ctrl-C and at worst loses a torn last line
  after `kill -9`.
- `FinalFileSink` (.json, .npy, .npz, .safetensors, .parquet): records go to the journal `OUT.partial`; the
  output is written from it atomically when the run ends, also on Ctrl-C/SIGTERM (then `"complete": false` in
  the sidecar). The output is therefore never half written.

Every file output gets the sidecar `OUT.json`: {"format", "file", "kind", "complete", "settings", ...}
(embed outputs: the row index of `arrays.py`). Nothing on disk changes until the first record arrives (or the
run completes with none), so a run that dies early leaves an existing output as it was. A resumed output is
put back in input order at the end (a retried failed file takes its input position).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from typing import IO, Iterable

from vivitcli.errors import UsageError
from vivitcli.output import arrays
from vivitcli.output.durable import (OutputError, OutputLock, atomic_write, check_path, file_mode, journal_path,
                                     lock_path, os_error, sidecar_path, signals_deferred, write_all)
from vivitcli.output.formats import ARRAY_FORMATS, CSV_COLUMNS, JsonFormat, csv_text, text_format
from vivitcli.output.records import KINDS, json_text, jsonable, record_kind
from vivitcli.output.resume import JOURNAL_FORMAT, Previous, compare_settings, norm, read_previous

OUTPUT_SIDECAR_FORMAT = "vivitcli.output/1"
APPEND_FORMATS = ("jsonl", "csv", "table")
FINAL_FORMATS = ("json", "parquet") + ARRAY_FORMATS


@dataclass
class OutputTarget:
    """An --out that passed `check_output`; holds the output's lock until `release()` (or the sink's close)."""

    out: str  # as given
    path: str  # the file written (a symlink's target)
    fmt: str
    kind: str
    resume: bool
    force: bool
    existing: list  # which of path / sidecar / journal existed
    previous: Previous | None
    mode: int | None  # permission bits of the existing output (kept; its sidecar and journal get them too)
    lock: OutputLock | None

    @property
    def sidecar(self) -> str:
        return sidecar_path(self.path)

    @property
    def journal(self) -> str:
        return journal_path(self.path)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def check_output(out: str | None, *, kind: str, fmt: str, inputs: Iterable[str] = (), force: bool = False,
                 resume: bool = False, settings: dict | None = None) -> OutputTarget | None:
    """Every check on --out that must come before any work; takes the output's lock.

    Refused (one line each): see `durable.check_path`; an existing output (or its sidecar/journal) without
    `force` or `resume`; both flags; `resume` into an output that is corrupt, of another kind, or (when
    `settings` is given here) made with other settings; another run holding the lock.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    if out is None:
        if resume:
            raise UsageError("--resume needs --out FILE", "stdout cannot be continued; write to a file")
        return None
    if force and resume:
        raise UsageError("--force and --resume contradict each other", "--force replaces OUT, --resume continues it")
    if fmt == "parquet":
        from vivitcli.output.parquet import require_pyarrow

        require_pyarrow()
    path, existing = check_path(out, inputs)
    if existing and not (force or resume):
        name = out if existing[0] == path else existing[0]
        raise UsageError(f"{name} exists; pass --force to replace it or --resume to continue it")
    lock = OutputLock(lock_path(path), out)
    try:
        previous = read_previous(path, fmt, kind) if resume else None
        if previous is not None:
            compare_settings(out, previous.settings, settings)
    except BaseException:
        lock.release()
        raise
    return OutputTarget(out, path, fmt, kind, resume, force, existing, previous, file_mode(path), lock)


# ------------------------------------------------------------------------------------------------ sinks


class Sink:
    """Where a run's records go. `done`: normalised paths an earlier run finished (skip them)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.done: set[str] = set()
        self.previous: list[dict] = []
        self.count = 0

    def write(self, record: dict) -> None:
        self.write_group([record])

    def write_group(self, records: list[dict]) -> None:
        raise NotImplementedError

    def close(self, complete: bool = True) -> None:
        raise NotImplementedError

    def _check(self, records: list[dict]) -> None:
        for r in records:
            if record_kind(r) != self.kind:
                raise ValueError(f"a {record_kind(r)} record given to a {self.kind} sink: {r.get('path')!r}")


class StreamSink(Sink):
    """Records to a text stream (stdout), each written and flushed in one piece."""

    def __init__(self, stream: IO[str], fmt: str, kind: str):
        super().__init__(kind)
        self.stream, self.fmt = stream, text_format(fmt, kind)
        self._started = False

    def _emit(self, text: str) -> None:
        if text:
            self.stream.write(text)
            self.stream.flush()

    def write_group(self, records):
        self._check(records)
        with signals_deferred():
            text = ""
            for record in records:
                if not self._started:
                    self._started = True
                    text += self.fmt.header()
                text += self.fmt.record(record, self.count == 0)
                self.count += 1
            self._emit(text)

    def close(self, complete=True):
        with signals_deferred():
            if not self._started:
                self._started = True
                if isinstance(self.fmt, JsonFormat):  # an empty run still prints a valid (empty) array
                    self._emit(self.fmt.header())
                else:
                    return
            self._emit(self.fmt.footer(self.count > 0))


class _FileSink(Sink):
    def __init__(self, target: OutputTarget, kind: str, settings: dict | None, order: Iterable[str],
                 dim: int | None):
        super().__init__(kind)
        self.target, self.path, self.settings, self.dim = target, target.path, settings, dim
        self._order = {}
        for i, p in enumerate(order):
            self._order.setdefault(norm(p), i)
        prev = target.previous
        if prev is not None:
            self.previous = prev.records
            self.done = prev.done
        self._materialised = False
        self._closed = False

    def _key(self, path: str, seq: int) -> tuple[int, int]:
        """Input order of the current run; paths it does not name keep their order, at the end."""
        return (self._order.get(norm(path), len(self._order)), seq)

    def _sorted(self, records: list[dict]) -> list[dict]:
        return [r for _, r in sorted(((self._key(r["path"], i), r) for i, r in enumerate(records)),
                                     key=lambda t: t[0])]

    def _sidecar(self, records: list[dict], complete: bool) -> dict:
        if self.kind == "embed":
            return arrays.embedding_sidecar(self.path, records, dim=self.dim or 0, complete=complete,
                                            settings=self.settings)
        return {"format": OUTPUT_SIDECAR_FORMAT, "file": os.path.basename(self.path), "kind": self.kind,
                "complete": complete, "settings": self.settings, "records": len(records),
                "errors": [{"path": r["path"], "error": r["error"]} for r in records if r.get("error")]}

    def _write_sidecar(self, records: list[dict], complete: bool) -> None:
        arrays.write_sidecar(self.path, self._sidecar(records, complete), mode=self.target.mode)

    def close(self, complete=True):
        if self._closed:
            return
        try:
            with signals_deferred():
                self._finish(complete)
        finally:
            self._closed = True
            self._close_fd()
            self.target.release()

    def _close_fd(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)

    def _append(self, data: bytes, what: str) -> None:
        """Append one record or group whole; a write that fails part-way (disk full) is cut back off, so the
        file never ends in part of a group whose first records a resume would count as done."""
        pos = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            write_all(self._fd, data)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, pos)
            raise os_error(what, err) from None


class AppendFileSink(_FileSink):
    """jsonl / csv / table records appended to the output, one os.write per record or group."""

    def __init__(self, target, fmt, kind, settings=None, order=(), dim=None):
        super().__init__(target, kind, settings, order, dim)
        self.fmt_name, self.fmt = fmt, text_format(fmt, kind)
        self._fd = None
        prev = target.previous
        # Summaries for the sidecar (embed: the row info); records of an earlier run first.
        self._summaries = [self._summary(r) for r in (prev.records if prev else [])]

    def _summary(self, record: dict) -> dict:
        if self.kind == "embed":
            return {k: v for k, v in record.items() if k != "embedding"}
        return {"path": record["path"], "error": record.get("error")}

    def _materialise(self) -> None:
        if self._materialised:
            return
        prev = self.target.previous
        text = self.fmt.header() + "".join(prev.raw if prev else [])
        # The output first, then the sidecar: a kill between the two leaves a sidecar of the run before
        # (whose settings a resume compares) next to an output without its records, never the reverse.
        atomic_write(self.path, lambda f: f.write(text.encode("utf-8")))
        self._write_sidecar(self._summaries, complete=False)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as err:
            raise os_error(self.target.out, err) from None
        self._materialised = True

    def write_group(self, records):
        self._check(records)
        data = "".join(self.fmt.record(r, self.count + i == 0 and not self.previous)
                       for i, r in enumerate(records)).encode("utf-8")
        with signals_deferred():
            self._materialise()
            self._append(data, self.target.out)
            self.count += len(records)
            self._summaries.extend(self._summary(r) for r in records)

    def _finish(self, complete: bool) -> None:
        if complete:
            self._materialise()
        if not self._materialised:
            return
        if self.previous and self.count and self.fmt_name in ("jsonl", "csv"):
            self._restore_order()
        self._write_sidecar(self._sorted(self._summaries) if self.previous else self._summaries, complete)

    def _restore_order(self) -> None:
        """After a resume, put the records back in input order (retried files were appended at the end)."""
        with open(self.path, encoding="utf-8", newline="") as f:
            data = f.read()
        if self.fmt_name == "jsonl":
            items = [(json.loads(line)["path"], line + "\n") for line in data.splitlines() if line.strip()]
            head = ""
        else:
            from vivitcli.output.resume import read_csv_records

            records, raw = read_csv_records(self.path, self.kind)
            items = [(r["path"], text) for r, text in zip(records, raw)]
            head = csv_text([CSV_COLUMNS[self.kind]])
        order = sorted(range(len(items)), key=lambda i: self._key(items[i][0], i))
        if order != list(range(len(items))):
            text = head + "".join(items[i][1] for i in order)
            self._close_fd()
            atomic_write(self.path, lambda f: f.write(text.encode("utf-8")))


class FinalFileSink(_FileSink):
    """Records journalled as jsonl next to the output; the output itself is written atomically at close."""

    def __init__(self, target, fmt, kind, settings=None, order=(), dim=None):
        super().__init__(target, kind, settings, order, dim)
        self.fmt_name = fmt
        self.records: list[dict] = list(self.previous)
        self._fd = None

    def _materialise(self) -> None:
        if self._materialised:
            return
        head = {"format": JOURNAL_FORMAT, "kind": self.kind, "settings": self.settings, "dim": self.dim}
        lines = [json_text(head) + "\n"]
        lines += [json_text(jsonable(r)) + "\n" for r in self.previous]
        text = "".join(lines)
        # The journal (header + kept records) is from here on the whole state of the run.
        atomic_write(self.target.journal, lambda f: f.write(text.encode("utf-8")), mode=self.target.mode)
        try:
            self._fd = os.open(self.target.journal, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as err:
            raise os_error(self.target.journal, err) from None
        self._materialised = True

    def write_group(self, records):
        self._check(records)
        data = "".join(json_text(jsonable(r)) + "\n" for r in records).encode("utf-8")
        with signals_deferred():
            self._materialise()
            self._append(data, self.target.journal)
            self.records.extend(records)
            self.count += len(records)

    def _finish(self, complete: bool) -> None:
        if not self._materialised and not complete:
            return  # nothing new: every file stays as it was
        records = self._sorted(self.records)
        mode = self.target.mode
        if self.fmt_name == "json":
            fmt = JsonFormat(self.kind)
            text = fmt.header() + "".join(fmt.record(r, i == 0) for i, r in enumerate(records))
            text += fmt.footer(bool(records))
            atomic_write(self.path, lambda f: f.write(text.encode("utf-8")), mode=mode)
        elif self.fmt_name == "parquet":
            from vivitcli.output.parquet import write_parquet

            write_parquet(self.path, records, kind=self.kind, dim=self.dim)
        else:
            array = arrays.embedding_matrix(records, self.dim, self.target.out)
            arrays.write_array_file(self.path, self.fmt_name, array,
                                    [r["path"] for r in records if not r.get("error")])
        self._write_sidecar(records, complete)
        # The journal goes only once output and sidecar hold everything it had.
        self._close_fd()
        with contextlib.suppress(OSError):
            os.unlink(self.target.journal)


def open_sink(fmt: str, out: str | None, *, kind: str, target: OutputTarget | None = None,
              settings: dict | None = None, resume: bool = False, force: bool = False, order: Iterable[str] = (),
              dim: int | None = None, stdout: IO[str] | None = None) -> Sink:
    """The sink for a run. `fmt` from `out_format`; `target` from `check_output` (done here when None).

    `settings`: the options that shape results, stored in the sidecar/journal and compared on resume.
    `order`: the run's inputs in order (a resumed output is sorted back into it). `dim`: the embedding width,
    required for embed file outputs (an all-failed run still writes shape (0, D)).
    """
    if out is None:
        if resume:
            raise UsageError("--resume needs --out FILE", "stdout cannot be continued; write to a file")
        return StreamSink(stdout if stdout is not None else sys.stdout, fmt, kind)
    order = list(order)
    if target is None:
        target = check_output(out, kind=kind, fmt=fmt, inputs=order, force=force, resume=resume, settings=settings)
    try:
        if target.previous is not None:
            compare_settings(out, target.previous.settings, settings)
        if kind == "embed":
            if dim is None:
                raise ValueError("open_sink(kind='embed', out=...) needs dim (the model's embedding width)")
            for r in (target.previous.records if target.previous else [])[:1]:
                width = len(r["embedding"]) if r.get("embedding") is not None else dim
                if width != dim:
                    raise UsageError(f"cannot resume {out}: it holds {width}-wide embeddings, this model gives "
                                     f"{dim}", "use the same model and --pool, or start over with --force")
        if fmt in APPEND_FORMATS:
            return AppendFileSink(target, fmt, kind, settings, order, dim)
        if fmt in FINAL_FORMATS:
            return FinalFileSink(target, fmt, kind, settings, order, dim)
        raise ValueError(f"no file sink for format {fmt!r}")
    except BaseException:
        target.release()
        raise


__all__ = ["OutputTarget", "check_output", "open_sink", "Sink", "StreamSink", "AppendFileSink", "FinalFileSink",
           "OutputError"]
