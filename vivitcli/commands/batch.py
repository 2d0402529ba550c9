"""The shell around a library batch job (vivitcli.tasks): output checks, sink, progress, summary, exit code.

Commands build a Job from their options and hand it here. Order matters for the user: every check that can
refuse the run (options, output path, lock) happens before the model loads, so a mistake costs no time and
touches no file.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import typer

from vivitcli.errors import UsageError, printable


def debug_wanted(debug: bool) -> bool:
    return debug or os.environ.get("VIVIT_DEBUG", "") not in ("", "0")


class Reporter:
    """stderr for people: per-file error lines always; a progress bar only on a terminal without --quiet.

    The ETA is the mean time per finished input so far times the inputs left: batches finish several files
    at once, and rich's own short-window speed estimate then swings (it read 1 s with 10 s left).
    """

    def __init__(self, total: int, *, quiet: bool, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.total = total
        self.done = 0
        self.progress = None
        self._task = None
        self._t0 = time.perf_counter()
        self._clips = 0
        isatty = getattr(self.stream, "isatty", lambda: False)()
        if not quiet and isatty and total > 0:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(file=self.stream, stderr=True)
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta {task.fields[eta]}"),
                console=console, transient=True,
            )
            self._task = self.progress.add_task("vivit", total=total, rate="", eta="-:--:--")
            self.progress.start()

    def log(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(message, markup=False, highlight=False, soft_wrap=True)
        else:
            print(message, file=self.stream, flush=True)

    def note(self, message: str) -> None:
        if not self.quiet:
            self.log(message)

    def eta_seconds(self) -> float | None:
        if self.done == 0:
            return None
        elapsed = time.perf_counter() - self._t0
        return elapsed / self.done * (self.total - self.done)

    def advance(self, clips: int = 1) -> None:
        self.done += 1
        self._clips += clips
        if self.progress is not None:
            elapsed = max(time.perf_counter() - self._t0, 1e-9)
            eta = self.eta_seconds()
            text = "-:--:--" if eta is None else time.strftime("%H:%M:%S", time.gmtime(round(eta)))
            self.progress.update(self._task, advance=1, rate=f"{self._clips / elapsed:.1f} clips/s", eta=text)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def announce_stdin(inputs, quiet: bool) -> None:
    """Say that the command waits for paths when `-` reads a terminal (it would otherwise look hung)."""
    if "-" in inputs and sys.stdin.isatty() and not quiet:
        print("vivit: reading paths from stdin, one per line (end with Ctrl-D)", file=sys.stderr, flush=True)


def summary(done: int, total: int, failed: int, *, interrupted: bool, out: str | None) -> str | None:
    """The last stderr line of a run: how far it got and what to do next (None when there is nothing to say)."""
    if interrupted:
        tail = "; rerun with --resume to finish" if out else ""
        return f"vivit: {done}/{total} done{tail}"
    if failed:
        return f"vivit: {total - failed}/{total} done, {failed} failed" + (
            "; rerun with --resume to retry the failed ones" if out else "")
    return None


def records_source(job, cluster: dict | None):
    """skip -> iterator of (record dict, exception or None): the local pipeline, or Ray with `cluster`."""
    if cluster is None:
        def local(skip):
            for rec in job.run(skip=skip):
                yield rec.to_dict(), rec.exception
        return local

    from vivitcli.distributed import ray as on_ray

    on_ray.require_ray()  # a missing extra is one line before the model loads
    address = cluster.pop("address")

    def distributed(skip):
        done = {os.path.normpath(p) for p in skip}
        todo = [p for p in job.paths if os.path.normpath(p) not in done]
        with on_ray.session(address):
            for record in on_ray.run_on_ray(job, todo, **cluster):
                yield record, None
    return distributed


class Hooks:
    """What a command adds around run_job's loop. The default: one record per input, resume skips the
    inputs an earlier run finished. Timeline (and windowed embed) resume inside a video and write more
    files per finished video."""

    def skip(self, sink):
        """What job.run(skip=...) takes: the paths (or, for windows, {path: windows done}) to leave out."""
        return sink.done

    def todo(self, paths: list[str], sink) -> list[str]:
        """The inputs this run still works on (the progress bar's total)."""
        return [p for p in paths if os.path.normpath(p) not in sink.done]

    def resume_note(self, paths: list[str], todo: list[str], sink) -> str:
        return f"resume: {len(paths) - len(todo)} of {len(paths)} inputs already done"

    def start(self, job, sink) -> None:
        """After the sink opened (a resumed run's records are in sink.previous)."""

    def record(self, record: dict) -> None:
        """After each record is written."""

    def file_done(self, path: str) -> None:
        """After the last record of one input (windows: when the next input starts, and at the end)."""

    def finish(self) -> None:
        """After the last record, when the run was not interrupted."""


class WindowHooks(Hooks):
    """Records per window: resume continues each video after its last finished window."""

    def skip(self, sink):
        from vivitcli.window_tasks import windows_done

        return windows_done(sink.previous)

    def todo(self, paths, sink):
        return list(paths)  # a video with some windows done still has work left

    def resume_note(self, paths, todo, sink):
        done = self.skip(sink)
        return f"resume: {sum(done.values())} windows of {len(done)} videos already done"


def run_job(job, *, out: str | None, fmt: str | None, resume: bool, force: bool, quiet: bool,
            debug: bool, cluster: dict | None = None, hooks: Hooks | None = None) -> None:
    """Run a vivitcli.tasks Job into stdout or --out (on Ray when `cluster` is given: address, concurrency,
    decoders, gpus_per_worker); raise typer.Exit with the exit code."""
    from vivitcli import output

    hooks = hooks or Hooks()
    if cluster is not None and out is not None and (out.endswith(("/", os.sep)) or os.path.isdir(out)):
        return run_to_dataset(job, out, cluster, quiet=quiet)
    kind = "window" if job.task == "timeline" else job.task
    fmt = output.out_format(out, fmt, kind=kind, stdout_isatty=sys.stdout.isatty())
    if resume and out is None:
        raise UsageError("--resume needs --out FILE", "stdout cannot be continued; write to a file")
    target = output.check_output(out, kind=kind, fmt=fmt, inputs=job.paths, force=force, resume=resume)
    source = records_source(job, dict(cluster) if cluster else None)
    sink = None
    try:
        job.load()
        sink = output.open_sink(fmt, out, kind=kind, target=target, settings=job.settings, order=job.paths,
                                dim=getattr(job, "dim", None), stdout=sys.stdout)
        hooks.start(job, sink)
    finally:
        if sink is None and target is not None:
            target.release()
    todo = hooks.todo(job.paths, sink)
    complete, failed, records, current = False, 0, None, None
    reporter = Reporter(len(todo), quiet=quiet)
    try:
        if resume:
            reporter.note(hooks.resume_note(job.paths, todo, sink))
        records = source(hooks.skip(sink))
        # Results printed to the terminal that shows the bar would be torn by its redraws.
        shares_screen = out is None and reporter.progress is not None and sys.stdout.isatty()
        for record, exception in records:
            if current is not None and record["path"] != current:
                hooks.file_done(current)
                reporter.advance(1)
                current = None
            if record["error"] is not None:
                failed += 1
                reporter.log(f"error: {printable(record['path'])}: {record['error']}")
                if debug_wanted(debug) and exception is not None:
                    reporter.log("".join(traceback.format_exception(exception)).rstrip())
            if shares_screen:
                reporter.progress.stop()
            sink.write(record)
            if shares_screen:
                reporter.progress.start()
            hooks.record(record)
            if "window" in record and record["error"] is None:
                current = record["path"]  # more windows of it may follow
            else:  # one record per input (or a failed video): it is done
                hooks.file_done(record["path"])
                reporter.advance(_views(record))
                current = None
        if current is not None:
            hooks.file_done(current)
            reporter.advance(1)
        hooks.finish()
        complete = True
    except KeyboardInterrupt:
        reporter.close()
        line = summary(reporter.done, len(todo), failed, interrupted=True, out=out)
        if line and not quiet:
            print(line, file=sys.stderr, flush=True)
        raise
    finally:
        if records is not None:
            records.close()
        reporter.close()
        sink.close(complete=complete)
    line = summary(reporter.done, len(todo), failed, interrupted=False, out=out)
    if line and not quiet and len(todo) > 1:
        print(line, file=sys.stderr, flush=True)
    raise typer.Exit(1 if failed else 0)


def run_to_dataset(job, folder: str, cluster: dict, *, quiet: bool) -> None:
    """`--ray ... --out FOLDER/`: a Parquet dataset written by the workers; errors listed afterwards."""
    from vivitcli.distributed import ray as on_ray

    on_ray.require_ray()
    cluster = dict(cluster)
    address = cluster.pop("address")
    job.load()
    with on_ray.session(address):
        failed = on_ray.write_dataset(job, job.paths, folder, **cluster)
    for path, error in failed:
        print(f"error: {printable(path)}: {error}", file=sys.stderr)
    line = summary(len(job.paths), len(job.paths), len(failed), interrupted=False, out=None)
    if line and not quiet:
        print(line, file=sys.stderr, flush=True)
    raise typer.Exit(1 if failed else 0)


def _views(record: dict) -> int:
    """Clips computed for a record: K with --sampling clips (frame_indices is K lists), else 1."""
    indices = record.get("frame_indices")
    if indices is not None and len(indices) > 0 and hasattr(indices[0], "__len__"):
        return len(indices)
    return 1
