"""Where the time of a real run goes: each stage of the pipeline timed on the user's own files.

The stages are the steps of vivitcli.video.read.read_clip (what `vivit classify` and `vivit embed` call per
file), taken one at a time, then the model:

    probe      the packet scan that gives exact frame count, timestamps and keyframes (video.scan.frame_table)
    sample     uniform frame positions for the model's frame count (video.sampling.sample_indices)
    decode     seek + decode of those frames to uint8 RGB (video.decode.decode_positions)
    preprocess resize + crop per frame (Preprocessor.resize_crop, read_clip's default), then rescale +
               normalize of the clip
    model      one forward pass of the clip (batch 1) on the model's device and dtype
    total      the sum of the stages

The clip this yields is the one read_clip returns (a test holds them equal); read_clip only interleaves
decode with resize/crop, so the stages add up to what a read costs. Each file goes through once, after `warmup` forward passes on a random clip so
the first file does not pay for one-time setup. A file listed twice reuses its scan, as within one
`vivit classify` run. A file that fails gets a row with its error.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vivitcli.benchmark.report import records_to_csv

STAGES = ("probe", "sample", "decode", "preprocess", "model")
FIELDS = ("file", "video_frames", "clip_frames", *(f"{s}_ms" for s in STAGES), "total_ms", "error")
SCHEMA = "vivitcli.benchmark.stages/1"


@dataclass
class StageRow:
    file: str
    video_frames: int | None = None
    clip_frames: int | None = None
    ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def total_ms(self) -> float | None:
        return None if self.error or not self.ms else sum(self.ms[s] for s in STAGES)

    def to_dict(self) -> dict:
        values = {"file": self.file, "video_frames": self.video_frames, "clip_frames": self.clip_frames,
                  "total_ms": self.total_ms, "error": self.error}
        values.update({f"{s}_ms": self.ms.get(s) for s in STAGES})
        return {k: values[k] for k in FIELDS}


class _Clock:
    """Accumulates per-stage wall time; `sync` makes a stage's queued device work count in that stage."""

    def __init__(self, sync: Callable[[], None]):
        self.sync = sync
        self.ms: dict[str, float] = {}

    def run(self, stage: str, fn, *args, **kwargs):
        start = time.perf_counter()
        value = fn(*args, **kwargs)
        self.sync()
        self.ms[stage] = (time.perf_counter() - start) * 1000.0
        return value


def time_stages(model, paths, *, warmup: int = 2, seed: int = 0,
                on_progress: Callable[[Path | None], None] | None = None) -> list[StageRow]:
    """One StageRow per path, in order. `model` is a VideoModel on its device and dtype (eval mode)."""
    import torch

    from vivitcli.benchmark.measure import make_inputs
    from vivitcli.benchmark.timing import synchronizer
    from vivitcli.errors import VivitError

    model.eval()
    sync = synchronizer(model.device)
    run = model if getattr(model, "has_classifier", True) else model.embed
    if model.preprocessor is None:
        from vivitcli.preprocess import Preprocessor

        # Presets carry no preprocessor_config.json: the architecture's published defaults.
        model.preprocessor = Preprocessor.from_config(None, model.model_type)
    with torch.inference_mode():
        for _ in range(warmup):
            run(make_inputs(model, 1, seed))
        sync()

    rows = []
    for path in paths:
        if on_progress is not None:
            on_progress(path)
        row = StageRow(file=str(path))
        clock = _Clock(sync)
        try:
            pixels = read_in_stages(path, model.preprocessor, model.num_frames, clock, row)
            row.clip_frames = int(pixels.shape[0])
            with torch.inference_mode():
                clock.run("model", run, pixels.unsqueeze(0))
            row.ms = clock.ms
        except (VivitError, OSError, ValueError) as exc:
            row.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        rows.append(row)
    if on_progress is not None:
        on_progress(None)
    return rows


def read_in_stages(path, preprocessor, num_frames: int, clock: _Clock, row: StageRow | None = None):
    """read_clip(path, preprocessor, num_frames) (uniform sampling), one timed stage at a time."""
    import numpy as np

    from vivitcli.errors import VideoError
    from vivitcli.video.decode import decode_positions, to_rgb
    from vivitcli.video.sampling import sample_indices
    from vivitcli.video.scan import frame_table

    table = clock.run("probe", frame_table, path)
    if table.num_frames == 0:
        raise VideoError(path, "no decodable video frames")
    if row is not None:
        row.video_frames = int(table.num_frames)
    indices = clock.run("sample", sample_indices, table.num_frames, num_frames)
    done = clock.run("decode", decode_positions, path, indices, to_rgb, table=table)

    def preprocess():
        frames = [preprocessor.resize_crop(done[int(i)]) for i in indices]
        if any(f.shape != frames[0].shape for f in frames):
            raise VideoError(path, "frame size changes mid-stream")
        return preprocessor.normalize(np.stack(frames))

    return clock.run("preprocess", preprocess)


def mean_row(rows: list[StageRow]) -> StageRow | None:
    """The per-stage mean over the files that ran (None when none did)."""
    ok = [r for r in rows if not r.error and r.ms]
    if not ok:
        return None
    return StageRow(file=f"mean of {len(ok)}", ms={s: statistics.fmean(r.ms[s] for r in ok) for s in STAGES})


def to_json(rows: list[StageRow], env: dict) -> str:
    return json.dumps({"schema": SCHEMA, "environment": env, "rows": [r.to_dict() for r in rows]},
                      indent=2) + "\n"


def to_csv(rows: list[StageRow]) -> str:
    return records_to_csv((row.to_dict() for row in rows), FIELDS)


def to_table(rows: list[StageRow], env: dict) -> str:
    """A markdown table: one line per file, a mean line, each stage's share of the mean total, errors."""
    header = ["file", "frames", *(f"{s} (ms)" for s in STAGES), "total (ms)"]
    body = []
    mean = mean_row(rows)
    for r in [*rows, *([mean] if mean and len(rows) > 1 else [])]:
        if r.error:
            body.append([r.file, "", *(["error"] * (len(STAGES) + 1))])
            continue
        body.append([r.file, "" if r.video_frames is None else str(r.video_frames),
                     *(f"{r.ms[s]:.1f}" for s in STAGES), f"{r.total_ms:.1f}"])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = [f"### where the time goes: {env.get('model')} ({env['device']}, {env.get('dtype')}, "
             f"{env['device_name']}, torch {env['torch_version']})", "",
             "| " + " | ".join(h.ljust(w) if i == 0 else h.rjust(w)
                               for i, (h, w) in enumerate(zip(header, widths))) + " |",
             "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"]
    for b in body:
        lines.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                       for i, (c, w) in enumerate(zip(b, widths))) + " |")
    if mean:
        total = mean.total_ms or 1.0
        lines += ["", "Share of the time: " + ", ".join(f"{s} {100 * mean.ms[s] / total:.0f}%" for s in STAGES)]
    errors = [f"- {r.error}" if r.file in r.error else f"- {r.file}: {r.error}" for r in rows if r.error]
    if errors:
        lines += ["", *errors]
    return "\n".join(lines) + "\n"
