"""Sliding windows over a video, planned from frame timestamps and served by one forward decode pass.

Planning (pure, numpy only): windows of `window` seconds every `stride` seconds over [start, end) of the
video's own clock (seconds from the first shown frame, from the packet scan: VFR- and edit-list-safe).
The last window is clamped to the end of the span, never dropped. Inside each window the model's
`num_frames` positions are taken as `uniform` sampling takes them inside a range, so window k holds the
frames `read_clip(path, pre, num_frames, start=w.start, end=w.end)` would read.

Decoding: the distinct positions of all windows, in ascending order, go to one `decode_positions` call
(seeks only where a keyframe jump skips more frames than a seek costs), so a frame shared by overlapping
windows is decoded once. Each decoded frame is resized and cropped exactly as read_clip does
(`Preprocessor.resize_crop`), kept only until the last window that uses it is assembled, and each window
is normalised (`Preprocessor.normalize`) and handed on through a bounded queue: memory depends on the
window and batch sizes, never on the video's length.
"""

from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from vivitcli.errors import VideoError
from vivitcli.video.sampling import uniform_indices

# The frame step each architecture's Kinetics checkpoints were trained with (ViViT-B 32 frames at step 2,
# VideoMAE 16 frames at step 4): the default window is num_frames x step frames at NOMINAL_FPS.
USUAL_FRAME_STEP = {"vivit": 2, "videomae": 4}
NOMINAL_FPS = 30.0
# Never shorter than this: the shipped demo model (8 frames) was trained on whole 1-6 s clips.
MIN_DEFAULT_WINDOW = 2.0
# Float slack when comparing seconds (timestamps are exact rationals turned into float64).
_EPS = 1e-9


def default_window(num_frames: int, model_type: str | None) -> float:
    """Seconds one window covers by default: the span the checkpoint's frames cover at its usual sampling
    (num_frames x usual frame step at 30 fps: 2.133 s for ViViT-B and VideoMAE-B), at least 2 s."""
    step = USUAL_FRAME_STEP.get(model_type or "", 2)
    return max(round(num_frames * step / NOMINAL_FPS, 3), MIN_DEFAULT_WINDOW)


@dataclass(frozen=True)
class Window:
    """One window: `index` (0-based), [start, end) in seconds from the first frame, and the frame
    positions (int64 (num_frames,)) the model sees."""

    index: int
    start: float
    end: float
    positions: np.ndarray

    @property
    def distinct(self) -> list[int]:
        return sorted({int(p) for p in self.positions})


def span_of(path, times: np.ndarray, duration: float, start: float | None, end: float | None) -> tuple[float, float]:
    """[lo, hi) seconds the windows cover; VideoError when start is past the video or the span is empty."""
    lo = 0.0 if start is None else float(start)
    hi = duration if end is None else min(float(end), duration)
    if lo < 0:
        raise ValueError(f"start must be >= 0, not {lo:g}")
    if not len(times) or lo > float(times[-1]) + _EPS:
        last = f"last frame at {times[-1]:.3f}s" if len(times) else "no frames"
        raise VideoError(path, f"start {lo:g}s is past the end of the video ({last})")
    if hi <= lo + _EPS:
        raise VideoError(path, f"no frames between {lo:g}s and {hi:g}s")
    return lo, hi


def window_count(span: float, window: float, stride: float) -> int:
    """How many windows cover `span` seconds: enough that the last one reaches the end (it may be partial)."""
    if span <= window + _EPS:
        return 1
    return int(math.ceil((span - window) / stride - _EPS)) + 1


def plan_windows(times: np.ndarray, duration: float, num_frames: int, window: float, stride: float, *,
                 start: float | None = None, end: float | None = None, path: str = "video") -> list[Window]:
    """The windows of one video. times: float64 (N,) seconds of each shown frame (FrameTable.times);
    duration: seconds to the end of the last frame."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive (got {window:g}, {stride:g})")
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, not {num_frames}")
    times = np.asarray(times, dtype=np.float64)
    lo, hi = span_of(path, times, duration, start, end)
    windows = []
    for k in range(window_count(hi - lo, window, stride)):
        s = lo + k * stride
        e = min(s + window, hi)
        a = int(np.searchsorted(times, s - _EPS, side="left"))
        b = int(np.searchsorted(times, e - _EPS, side="left"))
        if b > a:
            positions = uniform_indices(b - a, num_frames, start=a)
        else:
            # No frame starts inside (a VFR stall): the frame on screen at `s` is what the window shows.
            shown = max(int(np.searchsorted(times, s + _EPS, side="right")) - 1, 0)
            positions = np.full(num_frames, shown, dtype=np.int64)
        windows.append(Window(index=k, start=s, end=e, positions=positions))
    return windows


# ----------------------------------------------------------------------------------------------------------


class _Cancelled(Exception):
    """The consumer went away: stop decoding."""


class WindowDecoder:
    """Decode the frames of `windows` (ascending index) in one pass on a daemon thread; iterate to get
    (window, clip) in order, clip float32 (T, C, S, S) as read_clip gives it.

    At most `ahead` finished windows wait in the queue; frames wait only until their last window is built.
    After iteration `stats` holds the decoder's counters (seeks, frames decoded, ...) and `peak_frames`
    the most frames held at once.
    """

    def __init__(self, path, windows: list[Window], preprocessor, *, table=None, ahead: int = 8, exact: bool = False,
                 crops: int = 1):
        self.path, self.windows, self.pre = str(path), list(windows), preprocessor
        self.table, self.exact, self.crops = table, exact, crops
        self.stats: dict = {}
        self.peak_frames = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, ahead))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- producer side (decode thread and the converter threads it uses) --

    def _put(self, item) -> None:
        while True:
            if self._stop.is_set():
                raise _Cancelled()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        from vivitcli.video.decode import decode_positions, last_read_stats, to_rgb

        wins = self.windows
        uses: dict[int, int] = {}  # position -> windows still to build that need it
        for w in wins:
            for p in w.distinct:
                uses[p] = uses.get(p, 0) + 1
        frames: dict[int, np.ndarray] = {}
        lock = threading.Lock()
        state = {"next": 0, "shape": None}
        pre, exact, path, crops = self.pre, self.exact, self.path, self.crops

        def convert(frame):
            if self._stop.is_set():
                raise _Cancelled()
            if crops > 1:  # the whole resized frame: the three views are cut per window (as read_clip does)
                return pre.resize_frame(to_rgb(frame))
            return pre.resize_crop(to_rgb(frame), exact=exact)

        def window_clip(w):
            stacked = np.stack([frames[int(p)] for p in w.positions])
            if crops > 1:
                from vivitcli.video.read import three_crop_views

                return three_crop_views(path, pre, stacked, (len(w.positions),))  # (3, T, C, S, S)
            return pre.normalize(stacked)

        def sink(pos: int, frame: np.ndarray) -> None:
            # Windows are built under the lock, in index order, so the queue receives them in order.
            with lock:
                if not uses.get(pos):
                    return  # served already (a decoder restarting from the start delivers frames again)
                if state["shape"] is None:
                    state["shape"] = frame.shape
                elif frame.shape != state["shape"]:
                    raise VideoError(path, "frame size changes mid-stream")
                frames[pos] = frame
                self.peak_frames = max(self.peak_frames, len(frames))
                while state["next"] < len(wins):
                    w = wins[state["next"]]
                    if any(p not in frames for p in w.distinct):
                        break
                    clip = window_clip(w)
                    for p in w.distinct:
                        uses[p] -= 1
                        if not uses[p]:
                            del frames[p]
                    state["next"] += 1
                    self._put(("window", w, clip))

        try:
            if wins:
                decode_positions(path, sorted(uses), convert, table=self.table, sink=sink)
                self.stats = last_read_stats()
                if state["next"] < len(wins):  # pragma: no cover - decode_positions raises first
                    raise VideoError(path, f"window {state['next']} could not be decoded")
            self._put(("end", None, None))
        except _Cancelled:
            return
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            self.stats = last_read_stats()
            try:
                self._put(("error", None, err))
            except _Cancelled:
                return

    # -- consumer side --

    def start(self) -> "WindowDecoder":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="vivit-window-decode", daemon=True)
            self._thread.start()
        return self

    def __iter__(self) -> Iterator[tuple[Window, object]]:
        self.start()
        try:
            while True:
                try:
                    kind, window, value = self._queue.get(timeout=0.25)  # timeout: Ctrl-C stays responsive
                except queue.Empty:
                    continue
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield window, value
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        # Unblock a producer waiting on a full queue.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
