"""`vivit timeline`: labels over time for long videos (windows, segments, subtitles, an HTML page)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, List, Optional

import typer

from vivitcli.commands import options as o

SEGMENT_PANEL = "Segments, subtitles, page"


class SubtitleSource(str, Enum):
    segments = "segments"
    windows = "windows"


def command(
    inputs: o.Inputs,
    model: o.Model = None,
    window: o.Window = None,
    stride: o.Stride = None,
    start: o.Start = None,
    end: o.End = None,
    frames: o.Frames = None,
    crops: o.Crops = 1,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels per window.",
                                       rich_help_panel=o.OUTPUT_PANEL)] = 5,
    fmt: Annotated[Optional[o.OutputFormat], typer.Option(
        "--format", "-f", help="Format of the per-window records. (default: from --out's suffix; else table on a "
        "terminal, jsonl when piped)", show_default=False, rich_help_panel=o.OUTPUT_PANEL)] = None,
    out: Annotated[Optional[str], typer.Option(
        "--out", "-o", help="Write the per-window records to this file (.jsonl, .json, .csv, .txt); needed for "
        "--resume.", show_default=False, rich_help_panel=o.OUTPUT_PANEL)] = None,
    labels: Annotated[Optional[str], typer.Option(
        "--labels", help="Class names (a dataset name or a file) replacing the checkpoint's.", show_default=False,
        rich_help_panel=o.OUTPUT_PANEL)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue an interrupted run into the same --out file, from each video's last finished "
        "window.", rich_help_panel=o.OUTPUT_PANEL)] = False,
    force: o.Force = False,
    segments: Annotated[Optional[str], typer.Option(
        "--segments", help="Write labelled segments of all videos to FILE (.json or .csv).", show_default=False,
        rich_help_panel=SEGMENT_PANEL)] = None,
    smooth: Annotated[int, typer.Option(
        "--smooth", min=1, help="Average the scores over N consecutive windows before segmenting.",
        rich_help_panel=SEGMENT_PANEL)] = 1,
    threshold: Annotated[float, typer.Option(
        "--threshold", min=0.0, max=1.0, help="A window whose best score is below this gets no label.",
        rich_help_panel=SEGMENT_PANEL)] = 0.0,
    min_segment: Annotated[Optional[float], typer.Option(
        "--min-segment", min=0.0, help="Merge segments shorter than this (seconds) into their neighbours. "
        "(default: one window length, which removes the windows that straddle a change)", show_default=False,
        rich_help_panel=SEGMENT_PANEL)] = None,
    srt: Annotated[Optional[str], typer.Option(
        "--srt", help="Write SubRip subtitles to FILE ({stem} = the video's name, needed for several videos).",
        show_default=False, rich_help_panel=SEGMENT_PANEL)] = None,
    vtt: Annotated[Optional[str], typer.Option(
        "--vtt", help="Write WebVTT subtitles to FILE ({stem} as for --srt).", show_default=False,
        rich_help_panel=SEGMENT_PANEL)] = None,
    subtitles: Annotated[SubtitleSource, typer.Option(
        "--subtitles", help="Subtitle cues from the segments, or one per window.",
        rich_help_panel=SEGMENT_PANEL)] = SubtitleSource.segments,
    html: Annotated[Optional[str], typer.Option(
        "--html", help="Write a page with the video, its timeline and segments to FILE ({stem} as for --srt).",
        show_default=False, rich_help_panel=SEGMENT_PANEL)] = None,
    ext: o.Ext = None,
    null: o.NullSeparated = False,
    device: o.Device = "auto",
    dtype: o.Dtype = "auto",
    attn: o.Attn = o.AttnImpl.sdpa,
    backend: o.BackendOpt = o.Backend.torch,
    batch_size: o.BatchSize = 4,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Labels over time: slide a window along each video and classify every window.

    Each window record holds the path, the window index, start/end seconds (from frame timestamps), the frame
    indices and timestamps, and the top-k labels. Frames are decoded in one forward pass per video, each once
    even where windows overlap, at constant memory. --segments, --srt, --vtt and --html turn the windows into
    labelled segments, subtitles and a page to watch them in. Exit codes as for classify.

    \b
    Examples:
      vivit timeline match.mp4 --model demo --segments seg.json --vtt match.vtt --html match.html
      vivit timeline long.mp4 -o windows.jsonl --resume
      vivit timeline videos/ -o windows.jsonl --srt 'subs/{stem}.srt' -q
    """
    _run(Options(
        inputs=inputs, model=model, window=window, stride=stride, start=start, end=end, frames=frames, crops=crops,
        top_k=top_k,
        fmt=fmt.value if fmt else None, out=out, labels=labels, resume=resume, force=force, segments=segments,
        smooth=smooth, threshold=threshold, min_segment=min_segment, srt=srt, vtt=vtt, subtitles=subtitles.value,
        html=html,
        ext=ext, null=null, device=device, dtype=dtype, attn=getattr(attn, "value", attn),
        backend=getattr(backend, "value", backend), batch_size=batch_size, quiet=quiet, debug=debug))


@dataclass
class Options:
    inputs: List[str]
    model: Optional[str]
    window: Optional[float]
    stride: Optional[float]
    start: Optional[float]
    end: Optional[float]
    frames: Optional[int]
    crops: int
    top_k: int
    fmt: Optional[str]
    out: Optional[str]
    labels: Optional[str]
    resume: bool
    force: bool
    segments: Optional[str]
    smooth: int
    threshold: float
    min_segment: Optional[float]
    srt: Optional[str]
    vtt: Optional[str]
    subtitles: str
    html: Optional[str]
    ext: Optional[List[str]]
    null: bool
    device: str
    dtype: str
    attn: str
    backend: str
    batch_size: int
    quiet: bool
    debug: bool


def _per_video(template: Optional[str], option: str, paths: list[str]) -> None:
    """A per-video output (--srt/--vtt/--html) needs {stem} when there are several videos."""
    from vivitcli.errors import UsageError

    if template is None:
        return
    if len(paths) > 1 and "{stem}" not in template:
        raise UsageError(f"{option} {template}: several videos would overwrite one file",
                         f"put {{stem}} in the name, e.g. {option} 'out/{{stem}}{os.path.splitext(template)[1]}'")
    targets = [os.path.abspath(_target(template, p)) for p in paths]
    if len(set(targets)) < len(targets):
        twice = next(t for t in targets if targets.count(t) > 1)
        raise UsageError(f"{option} {template}: two videos would both write {twice}",
                         "videos with the same name in different folders need separate runs or folders")
    folder = os.path.dirname(os.path.abspath(template.replace("{stem}", "x")))
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {template}: folder {folder} does not exist")


def _target(template: str, path: str) -> str:
    return template.replace("{stem}", os.path.splitext(os.path.basename(path))[0])


def _check(opts: Options, paths: list[str]) -> None:
    from vivitcli.errors import UsageError

    if opts.segments is not None and os.path.splitext(opts.segments)[1].lower() not in (".json", ".csv"):
        raise UsageError(f"--segments {opts.segments}: use a .json or .csv file name")
    if opts.resume and opts.out is None:
        raise UsageError("--resume needs --out FILE", "stdout cannot be continued; write to a file")
    for option, value in (("--srt", opts.srt), ("--vtt", opts.vtt), ("--html", opts.html)):
        _per_video(value, option, paths)
    if opts.segments is not None:
        _per_video(opts.segments, "--segments", paths[:1])
    for option, value in (("--segments", opts.segments), ("--srt", opts.srt), ("--vtt", opts.vtt),
                          ("--html", opts.html)):
        existing = [t for t in dict.fromkeys(_target(value, p) for p in paths) if os.path.exists(t)] if value else []
        if existing and not (opts.force or opts.resume):
            raise UsageError(f"{option} {existing[0]}: the file exists", "add --force to replace it")
    inputs = {os.path.abspath(p) for p in paths}
    # (--out is checked by output.check_output, with every other output rule.)
    for option, value in (("--segments", opts.segments), ("--srt", opts.srt), ("--vtt", opts.vtt),
                          ("--html", opts.html)):
        if value is not None and any(os.path.abspath(_target(value, p)) in inputs for p in paths):
            raise UsageError(f"{option} {value}: that is one of the input videos", "pick another file name")


class TimelineHooks:
    """run_job's hooks for timeline: resume inside a video, and per finished video its segments, subtitles
    and page (videos an earlier run finished get them too); the segments file at the end."""

    def __init__(self, opts: Options, paths: list[str]):
        from vivitcli.commands.batch import WindowHooks

        self.opts, self.paths = opts, paths
        self.windows = WindowHooks()
        self.per_file: dict[str, list[dict]] = {}  # normalised path -> its window dicts (as written)
        self.segments: list = []
        self.min_segment = None

    def skip(self, sink):
        return self.windows.skip(sink)

    def todo(self, paths, sink):
        return self.windows.todo(paths, sink)

    def resume_note(self, paths, todo, sink):
        return self.windows.resume_note(paths, todo, sink)

    def start(self, job, sink) -> None:
        # A resume with another --window/--stride/--start is refused by the output's settings check.
        self.min_segment = job.window if self.opts.min_segment is None else self.opts.min_segment
        for rec in sink.previous:
            self.record(rec)

    def record(self, record: dict) -> None:
        from vivitcli import output

        if not record.get("error") and record.get("window") is not None:
            self.per_file.setdefault(os.path.normpath(record["path"]), []).append(output.jsonable(record))

    def file_done(self, path: str) -> None:
        windows = self.per_file.pop(os.path.normpath(path), [])
        self.segments.extend(_write_video_outputs(self.opts, path, windows, self.min_segment))

    def finish(self) -> None:
        for key in list(self.per_file):  # videos an earlier run finished entirely
            self.file_done(self.per_file[key][0]["path"])
        if self.opts.segments is not None:
            _write_segments(self.opts.segments, self.segments, self.paths)


def _run(opts: Options) -> None:
    from vivitcli.commands.batch import announce_stdin, run_job
    from vivitcli.tasks import Sampling
    from vivitcli.window_tasks import TimelineJob

    announce_stdin(opts.inputs, opts.quiet)
    job = TimelineJob(opts.inputs, opts.model or o.default_model(), window=opts.window, stride=opts.stride,
                      top_k=opts.top_k,
                      labels=opts.labels, sampling=Sampling(start=opts.start, end=opts.end, frames=opts.frames,
                                                           crops=opts.crops),
                      batch_size=opts.batch_size, device=opts.device, dtype=opts.dtype, attn=opts.attn,
                      backend=opts.backend, ext=opts.ext, null_separated=opts.null)
    _check(opts, job.paths)
    run_job(job, out=opts.out, fmt=opts.fmt, resume=opts.resume, force=opts.force, quiet=opts.quiet,
            debug=opts.debug, hooks=TimelineHooks(opts, job.paths))


def _write_text(path: str, text: str) -> None:
    from vivitcli.output import atomic_write

    from vivitcli.output.records import safe_text

    # A video name that is not valid UTF-8 (lone surrogates) is written as \udcXX escapes, never a crash.
    atomic_write(path, lambda f: f.write(safe_text(text, plain=True).encode("utf-8")))


def _write_video_outputs(opts: Options, path: str, windows: list[dict], min_segment: float) -> list:
    """Segments of one finished video, and its --srt/--vtt/--html files (written atomically)."""
    from vivitcli import subtitles
    from vivitcli.segments import make_segments

    windows = sorted(windows, key=lambda w: int(w["window"]))
    segs = make_segments(windows, smooth=opts.smooth, threshold=opts.threshold, min_segment=min_segment)
    if not windows:
        return segs
    cues = subtitles.window_cues(windows) if opts.subtitles == "windows" else subtitles.segment_cues(segs)
    if opts.srt is not None:
        _write_text(_target(opts.srt, path), subtitles.to_srt(cues))
    vtt = subtitles.to_vtt(cues)
    if opts.vtt is not None:
        _write_text(_target(opts.vtt, path), vtt)
    if opts.html is not None:
        from vivitcli.html_page import render_page

        page = _target(opts.html, path)
        _write_text(page, render_page(path, page, windows, segs, vtt))
    return segs


def _write_segments(target: str, segs: list, paths: list[str]) -> None:
    from vivitcli.segments import segments_text

    order = {os.path.normpath(p): i for i, p in enumerate(paths)}
    segs = sorted(segs, key=lambda s: (order.get(os.path.normpath(s.path), len(order)), s.segment))
    kind = "csv" if target.lower().endswith(".csv") else "json"
    _write_text(target, segments_text(segs, kind))
