"""Labels over time: slide a window along each video and classify (or embed) every window.

`vivitcli.timeline` and `vivitcli.embed_windows` live here (a module named timeline.py would shadow the
function: importing a submodule sets the package attribute of the same name).

    import vivitcli
    for rec in vivitcli.timeline("match.mp4", model="demo", window=2.0, stride=1.0, top_k=3):
        print(f"{rec.start:7.2f}-{rec.end:7.2f}  {rec.error or rec.labels[0].label}")

Per file: the packet scan gives every frame's timestamp; `plan_windows` lays the windows on that clock;
one `WindowDecoder` decodes the distinct frames of all windows in one forward pass on a daemon thread
(bounded queue, so memory does not grow with the video), while this thread batches the finished windows
through the model. Batches never mix files and start at window indices that are multiples of the batch
size, so a resumed run (`skip={path: windows_done}`) computes every window in the same batch as an
uninterrupted run and its records are bit-identical. Records come in input order, windows in order; a file
that fails is one record with `error` set (after any windows it already produced), and the run goes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from vivitcli.errors import UsageError
from vivitcli.records import EmbedRecord, WindowRecord
from vivitcli.tasks import ClassifyJob, EmbedJob, labels_from_logits


@dataclass
class WindowEmbedRecord(EmbedRecord):
    """One embedding per window (vivit embed --window): the embed keys with window/start/end after path."""

    window: int | None = None
    start: float | None = None
    end: float | None = None

    def to_dict(self) -> dict:
        d = super().to_dict()
        head = {"path": d.pop("path"), "window": self.window, "start": self.start, "end": self.end}
        return {**head, **d}


@dataclass
class FilePlan:
    """What one file needs: its windows, which of them to compute, and which to report."""

    path: str
    windows: list = field(default_factory=list)
    first_computed: int = 0  # batch-aligned start: windows from here are decoded and computed
    first_reported: int = 0  # windows before this were done by an earlier run
    times: Any = None
    error: BaseException | None = None


def _skip_map(skip) -> tuple[dict[str, int], set[str]]:
    """skip -> ({normalised path: windows done}, {normalised paths done entirely})."""
    if not skip:
        return {}, set()
    if isinstance(skip, Mapping):
        return {os.path.normpath(str(p)): int(n) for p, n in skip.items()}, set()
    return {}, {os.path.normpath(str(p)) for p in skip}


class _WindowsMixin:
    """run() over windows instead of whole files, for a Job subclass (classify or embed): listed before the job
    class, so its __init__ and task_settings wrap the job's."""

    def __init__(self, inputs, model=None, *, window: float | None = None, stride: float | None = None, **kwargs):
        super().__init__(inputs, model, **kwargs)
        self._init_windows(window, stride)

    def task_settings(self) -> dict:
        return {**super().task_settings(), **self.window_settings()}

    def _init_windows(self, window: float | None, stride: float | None) -> None:
        for name, value in (("window", window), ("stride", stride)):
            if value is not None and not (0 < value < float("inf")):
                raise UsageError(f"--{name} {value} must be a positive number of seconds")
        s = self.sampling
        if s.resolved() != "uniform":
            raise UsageError(f"--sampling {s.resolved()} does not apply to windows",
                             "frames are taken uniformly inside each window")
        self.window_arg, self.stride_arg = window, stride
        self.stats: list[dict] = []  # per file: decoder counters (frames decoded, seeks, peak frames held)

    @property
    def window(self) -> float:
        from vivitcli.video.windows import default_window

        if self.window_arg is not None:
            return float(self.window_arg)
        model = self.load()
        return default_window(self.num_frames, getattr(getattr(model, "cfg", None), "model_type", None))

    @property
    def stride(self) -> float:
        return float(self.stride_arg) if self.stride_arg is not None else self.window / 2

    @property
    def num_frames(self) -> int:
        return int(self.sampling.frames or self.load().num_frames)

    def window_settings(self) -> dict:
        return {"window": self.window, "stride": self.stride}

    def plan(self, path: str, done: int = 0) -> FilePlan:
        """Plan one file's windows (VideoError for a file that cannot be scanned or is out of --start)."""
        from vivitcli.errors import VideoError
        from vivitcli.video.scan import frame_table
        from vivitcli.video.windows import plan_windows

        table = frame_table(path)
        if table.num_frames == 0:
            raise VideoError(path, "no decodable video frames")
        windows = plan_windows(table.times, table.duration, self.num_frames, self.window, self.stride,
                               start=self.sampling.start, end=self.sampling.end, path=path)
        done = min(max(int(done), 0), len(windows))
        aligned = done - done % self.batch_size
        return FilePlan(path=path, windows=windows, first_computed=aligned, first_reported=done, times=table.times)

    def run(self, skip=None) -> Iterator[Any]:
        """Window records of every input in order (see the module docstring). skip: {path: windows done}
        (their first N windows are not reported again), or paths to leave out entirely."""
        from vivitcli.video.windows import WindowDecoder

        model = self.load()
        partly, whole = _skip_map(skip)
        paths = [p for p in self.paths if os.path.normpath(p) not in whole]
        pre = model.preprocessor
        # Enough finished windows to fill the next batch while the current one computes.
        ahead = 2 * self.batch_size

        def start(path: str):
            """(plan, decoder started) for one file; the plan carries the error when planning failed."""
            try:
                if not os.path.lexists(path):  # a broken link or a loop: the probe says which
                    from vivitcli.errors import VideoError

                    raise VideoError(path, "no such file")
                plan = self.plan(path, partly.get(os.path.normpath(path), 0))
            except Exception as err:  # noqa: BLE001 - becomes the file's error record
                return FilePlan(path=path, error=err), None
            todo = plan.windows[plan.first_computed:]
            from vivitcli.video.scan import frame_table

            return plan, WindowDecoder(path, todo, pre, table=frame_table(path), ahead=ahead,
                                       crops=self.sampling.crops).start()

        ahead_of = {"next": start(paths[0]) if paths else None}  # the next file's (plan, decoder), started early
        try:
            yield from self._files(paths, ahead_of, start)
        finally:
            if ahead_of["next"] is not None and ahead_of["next"][1] is not None:
                ahead_of["next"][1].close()

    def _files(self, paths, ahead_of: dict, start):
        import torch

        from vivitcli.pipeline import describe_error

        for i, path in enumerate(paths):
            plan, decoder = ahead_of["next"]
            ahead_of["next"] = None
            if plan.error is not None:
                ahead_of["next"] = start(paths[i + 1]) if i + 1 < len(paths) else None
                yield self.error_record(path, plan.error, describe_error(plan.error))
                continue
            pending: list = []
            failure = None

            def flush():
                # A window is one clip, or several views (--crops 3) whose outputs are averaged.
                views = [clip if clip.ndim == 5 else clip[None] for _, clip in pending]
                with torch.inference_mode():
                    out = self.compute(torch.cat(views))
                rows = out.detach().float().cpu().split([len(v) for v in views])
                done = [(w, row.mean(0).numpy()) for (w, _), row in zip(pending, rows)]
                pending.clear()
                return done

            try:
                for w, clip in decoder:
                    pending.append((w, clip))
                    if len(pending) == self.batch_size:
                        for w_, row in flush():
                            if w_.index >= plan.first_reported:
                                yield self.window_record(path, w_, row, plan)
            except Exception as err:  # noqa: BLE001 - the file's error record, after its finished windows
                failure = err
            finally:
                decoder.close()
            self.stats.append({"path": path, "peak_frames": decoder.peak_frames, **decoder.stats})
            # The next file decodes while this one's last batch computes.
            ahead_of["next"] = start(paths[i + 1]) if i + 1 < len(paths) else None
            if failure is None and pending:
                for w_, row in flush():
                    if w_.index >= plan.first_reported:
                        yield self.window_record(path, w_, row, plan)
            pending.clear()
            if failure is not None:
                yield self.error_record(path, failure, describe_error(failure))

    # ---- records ----
    @staticmethod
    def _frame_fields(w, plan: FilePlan) -> dict:
        return {"frame_indices": [int(p) for p in w.positions],
                "timestamps": [round(float(plan.times[int(p)]), 6) for p in w.positions],
                "approximate": False}


class TimelineJob(_WindowsMixin, ClassifyJob):
    """Top-k labels for every window of every input (vivit timeline)."""

    task = "timeline"

    def window_record(self, path, w, row, plan) -> WindowRecord:
        labels, heads = labels_from_logits(row, self.names, self.top_k, self.splits, self.head_labels)
        return WindowRecord(path=path, window=w.index, start=round(w.start, 6), end=round(w.end, 6), labels=labels,
                            heads=heads, model=self.model.name, dtype=self.dtype_name,
                            label_source=self.label_source, **self._frame_fields(w, plan))

    def error_record(self, path, err, text) -> WindowRecord:
        return WindowRecord(path=path, window=None, labels=[], model=self.model.name, dtype=self.dtype_name,
                            label_source=self.label_source, error=text, exception=err)


class EmbedWindowsJob(_WindowsMixin, EmbedJob):
    """One embedding per window of every input (vivit embed --window)."""

    task = "embed"

    def window_record(self, path, w, row, plan) -> WindowEmbedRecord:
        return WindowEmbedRecord(path=path, window=w.index, start=round(w.start, 6), end=round(w.end, 6),
                                 dim=int(row.shape[-1]), pool=self.pool, embedding=row, model=self.model.name,
                                 dtype=self.dtype_name, **self._frame_fields(w, plan))

    def error_record(self, path, err, text) -> WindowEmbedRecord:
        return WindowEmbedRecord(path=path, pool=self.pool, model=self.model.name, dtype=self.dtype_name, error=text,
                                 exception=err)


def timeline(inputs, model=None, *, window: float | None = None, stride: float | None = None, top_k: int = 5,
             labels: str | None = None, skip: Mapping[str, int] | Iterable[str] | None = None,
             **kwargs) -> Iterator[WindowRecord]:
    """Window records (vivitcli.records.WindowRecord) for every input video, in input and window order.

    window/stride: seconds (default: the checkpoint's usual span, see video.windows.default_window; stride
    window/2). sampling=vivitcli.Sampling(start=..., end=..., frames=...) bounds the span and sets frames per
    window. skip: {path: windows already done} continues each file after its Nth window (resume).
    Other keywords as vivitcli.classify (device, dtype, attn, batch_size, ext, ...).
    """
    return TimelineJob(inputs, model, window=window, stride=stride, top_k=top_k, labels=labels, **kwargs).run(skip)


def embed_windows(inputs, model=None, *, window: float | None = None, stride: float | None = None,
                  pool: str = "default", skip: Mapping[str, int] | Iterable[str] | None = None,
                  **kwargs) -> Iterator[WindowEmbedRecord]:
    """One embedding per window of every input video (the embed keys plus window/start/end), in order."""
    return EmbedWindowsJob(inputs, model, window=window, stride=stride, pool=pool, **kwargs).run(skip)


def windows_done(records: Iterable[Mapping]) -> dict[str, int]:
    """{path: N} from the window records a previous run wrote: N = windows 0..N-1 all present (a resume
    continues from window N). Records with an error or without a window index are ignored."""
    seen: dict[str, set[int]] = {}
    for rec in records:
        if rec.get("error") or rec.get("window") is None:
            continue
        seen.setdefault(os.path.normpath(str(rec["path"])), set()).add(int(rec["window"]))
    done = {}
    for path, idx in seen.items():
        n = 0
        while n in idx:
            n += 1
        done[path] = n
    return done
