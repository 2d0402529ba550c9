"""What `classify` and `embed` share: option checks, the run loop, progress, per-file errors, exit codes.

Imported by the command functions only when they run (it pulls in numpy, torch and rich lazily anyway).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import typer

from vivitcli.errors import UsageError


@dataclass
class RunOptions:
    """Everything a classify/embed run needs, as given on the command line."""

    task: str  # "classify" | "embed"
    inputs: list[str]
    ext: Optional[list[str]] = None
    model: Optional[str] = None
    device: str = "auto"
    dtype: str = "auto"
    attn: str = "sdpa"
    batch_size: int = 4
    workers: Optional[int] = None
    sampling: Optional[str] = None
    frames: Optional[int] = None
    frame_step: int = 4
    clips: Optional[int] = None
    start: Optional[float] = None
    end: Optional[float] = None
    seed: Optional[int] = None
    out: Optional[str] = None
    fmt: Optional[str] = None
    resume: bool = False
    quiet: bool = False
    debug: bool = False
    extra: dict = field(default_factory=dict)  # task-specific: top_k, labels_file, pool


def debug_wanted(debug: bool) -> bool:
    return debug or os.environ.get("VIVIT_DEBUG", "") not in ("", "0")


def sampling_kwargs(opts: RunOptions) -> dict:
    """read_clip keyword arguments from the sampling options; catches contradictions before any loading."""
    sampling = opts.sampling
    if sampling is None:
        sampling = "clips" if (opts.clips or 1) > 1 else "uniform"
    if opts.clips is not None and opts.clips > 1 and sampling != "clips":
        raise UsageError(f"--clips {opts.clips} needs --sampling clips (got --sampling {sampling})")
    if opts.start is not None and opts.end is not None and opts.end <= opts.start:
        raise UsageError(f"--end {opts.end} must be after --start {opts.start}")
    kw: dict[str, Any] = {"sampling": sampling, "frame_step": opts.frame_step, "start": opts.start,
                          "end": opts.end, "seed": opts.seed}
    if sampling == "clips":
        kw["clips"] = opts.clips or 3
    return kw


class Reporter:
    """stderr for people: per-file error lines always; a progress bar only on a terminal without --quiet."""

    def __init__(self, total: int, *, quiet: bool, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.total = total
        self.progress = None
        self._task = None
        self._t0 = time.perf_counter()
        self._clips = 0
        isatty = getattr(self.stream, "isatty", lambda: False)()
        if not quiet and isatty and total > 0:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            console = Console(file=self.stream, stderr=True)
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                console=console, transient=True,
            )
            self._task = self.progress.add_task("vivit", total=total, rate="")
            self.progress.start()

    def log(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(message, markup=False, highlight=False, soft_wrap=True)
        else:
            print(message, file=self.stream, flush=True)

    @contextlib.contextmanager
    def paused(self):
        """Take the bar off the screen while something else (results on a terminal stdout) is printed."""
        if self.progress is None:
            yield
            return
        self.progress.stop()
        try:
            yield
        finally:
            self.progress.start()

    def note(self, message: str) -> None:
        if not self.quiet:
            self.log(message)

    def advance(self, clips: int) -> None:
        self._clips += clips
        if self.progress is not None:
            elapsed = max(time.perf_counter() - self._t0, 1e-9)
            self.progress.update(self._task, advance=1, rate=f"{self._clips / elapsed:.1f} clips/s")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def read_labels_file(path: str, expected: int) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            labels = [line.strip() for line in f if line.strip()]
    except OSError as err:
        raise UsageError(f"{path}: cannot read labels file ({err.strerror})") from None
    if len(labels) != expected:
        raise UsageError(f"{path}: {len(labels)} labels, but the model has {expected} classes",
                         "one class name per line, in index order")
    return labels


def run(opts: RunOptions, make_record: Callable, prepare: Callable) -> None:
    """Collect inputs, load the model, stream records to the sink; raise typer.Exit with the exit code.

    prepare(model, opts) -> (compute, meta): compute(batch) -> (B, X) and the metadata records share.
    make_record(result, meta) -> record dict for one FileResult.
    """
    from vivitcli import writers
    from vivitcli.inputs import collect_paths, parse_extensions

    # Everything that can be a usage error is checked before the (slow) model load.
    read_kw = sampling_kwargs(opts)
    fmt = writers.out_format(opts.out, opts.fmt, task=opts.task, stdout_isatty=sys.stdout.isatty())
    if opts.resume and opts.out is None:
        raise UsageError("--resume needs --out FILE", "stdout cannot be continued; write to a file")
    if "-" in opts.inputs and sys.stdin.isatty() and not opts.quiet:
        print("vivit: reading paths from stdin, one per line (end with Ctrl-D)", file=sys.stderr)
    paths = collect_paths(opts.inputs, parse_extensions(opts.ext))

    from vivitcli import load_model
    from vivitcli.video.read import read_clip
    from vivitcli.pipeline import Pipeline

    model = load_model(opts.model or _default_model(), device=opts.device, dtype=opts.dtype, attn=opts.attn)
    compute, meta = prepare(model, opts)

    reporter = Reporter(0, quiet=True)  # replaced below; keeps `log` usable while the sink opens
    sink = writers.open_sink(opts.task, fmt, opts.out, resume=opts.resume, order=paths, quiet=opts.quiet,
                             log=reporter.log, expect=meta.get("resume_keys"))
    complete = False
    failed = 0
    results = None
    try:
        todo = [p for p in paths if os.path.normpath(p) not in sink.done] if opts.resume else paths
        reporter = Reporter(len(todo), quiet=opts.quiet)
        if opts.resume and not opts.quiet:
            reporter.log(f"resume: {len(paths) - len(todo)} of {len(paths)} inputs already done")
        num_frames = opts.frames or model.num_frames

        def read(path):
            return read_clip(path, model.preprocessor, num_frames=num_frames, return_info=True, **read_kw)

        pipeline = Pipeline(read, compute, batch_size=opts.batch_size, workers=opts.workers)
        # Results printed to the same terminal as the bar would be torn by its redraws.
        shares_screen = opts.out is None and reporter.progress is not None and sys.stdout.isatty()
        results = pipeline.run(todo)
        for res in results:
            if res.error is not None:
                failed += 1
                reporter.log(f"error: {res.path}: {res.error}")
                if debug_wanted(opts.debug) and res.exception is not None:
                    reporter.log("".join(traceback.format_exception(res.exception)).rstrip())
            if shares_screen:
                with reporter.paused():
                    sink.write(make_record(res, meta))
            else:
                sink.write(make_record(res, meta))
            reporter.advance(res.views)
        complete = True
    finally:
        if results is not None:
            results.close()
        reporter.close()
        sink.close(complete=complete)
    if failed and not opts.quiet and len(todo) > 1:
        print(f"vivit: {failed} of {len(todo)} inputs failed", file=sys.stderr)
    raise typer.Exit(1 if failed else 0)


def _default_model() -> str:
    from vivitcli.commands.options import default_model

    return default_model()


def info_fields(info) -> dict:
    """frame_indices / timestamps / approximate from a ClipInfo (or a plain dict, for tests)."""
    if info is None:
        return {"frame_indices": None, "timestamps": None, "approximate": None}
    get = info.get if isinstance(info, dict) else lambda k, d=None: getattr(info, k, d)
    return {"frame_indices": get("indices"), "timestamps": get("timestamps"),
            "approximate": bool(get("approximate", False))}
