"""read_frames(path, indices): exactly the frames a sequential decode yields at those positions.

How: a packet scan (video/scan.py) maps every shown frame's position to its timestamp and knows the
keyframes. Targets are served in ascending order; before each, the reader seeks to the keyframe at or
before it only when that skips more frames than a seek costs, and otherwise decodes forward. Every
decoded frame is identified by its timestamp, so a seek that lands late (MPEG-TS) is detected and
retried from an earlier keyframe. Packets of H.264/HEVC frames nobody asked for are decoded with
`skip_frame="NONREF"`, which drops only frames no other frame references, so the frames that are
decoded come out bit-identical. Files whose timestamps cannot identify frames are decoded sequentially,
counting the output. Only asked-for frames are kept (after `convert`), so memory stays bounded by the
output plus the decoder's own few frames.

PyAV never applies rotation metadata; frames are turned here (`np.rot90` by `frame.rotation`), which
matches ffmpeg's auto-rotation. `av.logging.set_level` is never called: with frame threads it deadlocks.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable

import av
import numpy as np

from vivitcli.errors import ShortVideoError, VideoError
from vivitcli.video.container import MAX_PIXELS, open_video, video_error
from vivitcli.video.scan import FrameTable, frame_table

# Codecs where skip_frame="NONREF" drops only unreferenced frames (checked by tests/test_video_decode.py).
_NONREF_CODECS = {"h264", "hevc"}
# How many frames a seek costs: the frame-thread pipeline refills and the reorder delay is paid again.
SEEK_COST_FRAMES = 4 + (os.cpu_count() or 2)
# Threads converting (resizing) decoded frames while the decoder goes on.
CONVERT_WORKERS = min(4, os.cpu_count() or 1)
# Earlier keyframes tried after a seek lands past its target, before decoding from the very start.
_MAX_STEP_BACK = 6


def to_rgb(frame: "av.VideoFrame") -> np.ndarray:
    """uint8 (H, W, 3) RGB in display orientation (rotation metadata applied)."""
    rgb = frame.to_ndarray(format="rgb24")
    k = (int(frame.rotation or 0) % 360) // 90
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


@dataclass
class _Plan:
    """The distinct positions asked for, how to convert each frame, and the converted frames so far."""

    targets: np.ndarray  # sorted unique positions
    convert: Callable
    done: dict
    pool: ThreadPoolExecutor | None = None
    pending: deque = field(default_factory=deque)
    sink: Callable | None = None  # sink(pos, converted) instead of keeping the result

    def _task(self, pos: int, frame):
        value = self.convert(frame)
        if self.sink is not None:
            self.sink(pos, value)
            return True
        return value

    def add(self, pos: int, frame) -> None:
        """Convert `frame` (on the pool when there is one: PIL and libswscale release the GIL, so resizing
        overlaps decoding) and keep it as position `pos`. At most 2 × workers frames wait in flight."""
        if self.pool is None:
            self.done[pos] = self._task(pos, frame)
            return
        future = self.pool.submit(self._task, pos, frame)
        # With a sink nothing is kept: holding every Future made memory grow with the video (an hour: +20 MiB).
        self.done[pos] = True if self.sink is not None else future
        self.pending.append(future)
        while len(self.pending) > 2 * self.pool._max_workers:
            self.pending.popleft().result()

    def results(self) -> dict:
        while self.pending:  # conversions still in flight (the only Futures a sink run keeps)
            self.pending.popleft().result()
        return {p: (v.result() if isinstance(v, Future) else v) for p, v in self.done.items()}


_STATS = threading.local()


def last_read_stats() -> dict:
    """Counters of this thread's last decode: seeks, overshoots (seeks that landed past their target and
    were retried earlier), frames (frames the decoder returned), sequential (True if it fell back to a
    counting decode from the start). For tests and benchmarks."""
    return dict(getattr(_STATS, "value", {}))


class _Restart(Exception):
    """Frames cannot be identified by timestamp: decode again from the start, counting."""


def _decode_packet(stream, packet, path):
    try:
        return stream.decode(packet)
    except av.error.InvalidDataError:
        # A corrupt packet: ffmpeg's own tools skip it and go on, and so does a sequential decode.
        return []
    except av.FFmpegError as exc:
        raise video_error(path, exc) from exc


# Containers without an index, where libavformat seeks by bisecting on decode timestamps: aiming at a
# keyframe's pts lands on the keyframe after it.
_DTS_SEEK_FORMATS = {"mpegts", "mpeg", "mpegvideo", "h264", "hevc"}


# MPEG program streams (.mpg, .vob): after a seek, FFmpeg's parser can stamp the first frame or two (the
# keyframe first) with the timestamp of a later frame, which then comes out with the same stamp again, or
# with a time no frame has. Positions there are counted from the first two frames whose stamps are
# consecutive, and every later stamp is checked.
_RECOUNT_FORMATS = {"mpeg"}
# Frames held back while looking for that anchor; stamps that stay inconsistent longer mean a restart.
_MAX_UNANCHORED = 4


class _Recount:
    """Positions of the frames of one forward run (from a seek or the file start) in an MPEG-PS stream.

    feed(frame, stamped) takes frames in output order with the position their timestamp names (None if
    none) and returns the (frame, position) pairs now known: none until two consecutive stamps anchor the
    count, whose start must be a keyframe (or the first frame); raises _Restart when stamps disagree.
    """

    def __init__(self, starts: set):
        self.starts = starts
        self.pending: list = []
        self.cur: int | None = None

    def feed(self, frame, stamped):
        if self.cur is not None:
            if stamped != self.cur + 1:
                raise _Restart()
            self.cur = stamped
            return [(frame, stamped)]
        if self.pending and stamped is not None and self.pending[-1][1] == stamped - 1:
            base = stamped - len(self.pending)
            if base not in self.starts:
                raise _Restart()
            out = [(f, base + k) for k, (f, _) in enumerate(self.pending)] + [(frame, stamped)]
            self.pending, self.cur = [], stamped
            return out
        self.pending.append((frame, stamped))
        if len(self.pending) > _MAX_UNANCHORED:
            raise _Restart()
        return []


def _seek(container, stream, table: FrameTable, key_index: int):
    formats = set((container.format.name or "").split(","))
    keys = table.key_dts if formats & _DTS_SEEK_FORMATS else table.key_pts
    container.seek(int(keys[key_index]), stream=stream, backward=True, any_frame=False)


def _read_exact(path, container, stream, table: FrameTable, plan: _Plan, keyframes_only: bool):
    """Serve plan.targets in order, seeking where it pays; identify frames by timestamp."""
    pos_of = {int(p): i for i, p in enumerate(table.pts)}
    targets = plan.targets
    is_target = np.zeros(table.num_frames, dtype=bool)
    is_target[targets] = True
    ctx = stream.codec_context
    recount = bool(set((container.format.name or "").split(",")) & _RECOUNT_FORMATS)
    # Counting needs every frame out of the decoder: no skipping in program streams.
    nonref = (not keyframes_only) and ctx.name in _NONREF_CODECS and not recount
    starts = set(table.key_positions.tolist()) | {0}
    if keyframes_only:
        ctx.skip_frame = "NONKEY"
    state = {"skipping": False}
    first_pts = int(table.pts[0])
    stats = _STATS.value

    def _positions(frames, counter):
        """(frame, position) for each decoded frame: by timestamp, or counted in program streams."""
        for frame in frames:
            stamped = pos_of.get(frame.pts) if frame.pts is not None else None
            if counter is None:
                if recount and stamped is not None:
                    # Keyframes only: a keyframe stamped with a later frame's time is the keyframe before it.
                    stamped = int(table.key_positions[max(table.keyframe_before(stamped), 0)])
                yield frame, stamped
            else:
                yield from counter.feed(frame, stamped)

    def run(packets, verify_target: int | None, cur: int, ti: int):
        """Decode forward. Returns (outcome, cur, ti); outcome: "done" | "seek" | "overshoot" | "eof"."""
        served_from = ti
        counter = _Recount(starts) if recount and not keyframes_only else None
        for packet in packets:
            if nonref and packet.pts is not None:
                p = pos_of.get(packet.pts)
                skip = p is not None and not is_target[p]
                if skip != state["skipping"]:
                    ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                    state["skipping"] = skip
            for frame, pos in _positions(_decode_packet(stream, packet, path), counter):
                stats["frames"] += 1
                if pos is None:
                    if frame.pts is not None and frame.pts < first_pts:
                        continue  # edit-list lead-in that a decoder showed anyway: never a position
                    raise _Restart()
                if verify_target is not None:
                    if pos > verify_target:
                        stats["overshoots"] += 1
                        return "overshoot", pos, ti
                    verify_target = None
                cur = pos
                if is_target[pos] and pos not in plan.done:
                    plan.add(pos, frame)
                    while ti < len(targets) and int(targets[ti]) in plan.done:
                        ti += 1
            if ti >= len(targets):
                return "done", cur, ti
            if ti > served_from:
                # Keep decoding forward unless the next target is better reached by a seek.
                if _should_seek(table, cur, int(targets[ti]), keyframes_only):
                    return "seek", cur, ti
                served_from = ti
        # Nothing decoded after a seek (MPEG-TS seeks past the last keyframe): treat as an overshoot.
        return ("overshoot" if verify_target is not None else "eof"), cur, ti

    ti, cur, step_back, first, tried_start = 0, -1, 0, True, False
    while ti < len(targets):
        t = int(targets[ti])
        if first and not _should_seek(table, -1, t, keyframes_only):
            verify = None  # a fresh container is at the file start
        else:
            j = table.keyframe_before(t) - step_back
            if j < 0 or step_back > _MAX_STEP_BACK:
                if tried_start:
                    raise _Restart()
                tried_start = True
                container.seek(0, backward=True)
                stats["seeks"] += 1
            else:
                stats["seeks"] += 1
                _seek(container, stream, table, j)
            verify = t
        first = False
        outcome, cur, ti = run(container.demux(stream), verify, cur, ti)
        if outcome == "overshoot":
            step_back += 1
            continue
        step_back, tried_start = 0, False
        if outcome == "eof" and ti < len(targets):
            raise _Restart()


def _should_seek(table: FrameTable, cur: int, t: int, keyframes_only: bool) -> bool:
    """Whether reaching position `t` from decoder position `cur` is cheaper by a seek than decoding forward."""
    j = table.keyframe_before(t)
    if j < 0:
        return False
    if keyframes_only:
        # Forward decoding skips non-keyframes anyway; seek only past at least one unwanted keyframe.
        return j - table.keyframe_before(cur) > 1 if cur >= 0 else j > 0
    return int(table.key_positions[j]) - cur > SEEK_COST_FRAMES


def _read_sequential(path, container, stream, plan: _Plan):
    """Decode from the start and count output frames: correct for any file, slow for late targets."""
    last = int(plan.targets[-1])
    wanted = set(int(t) for t in plan.targets)
    pos = -1
    _STATS.value["sequential"] = True
    for packet in container.demux(stream):
        for frame in _decode_packet(stream, packet, path):
            _STATS.value["frames"] += 1
            pos += 1
            if pos in wanted:
                plan.add(pos, frame)
            if pos >= last:
                return
    missing = sorted(wanted - set(plan.done))
    if missing:
        raise ShortVideoError(path, f"frame {missing[0]} could not be decoded (the video yields {pos + 1} frames)",
                              available=pos + 1)


def decode_positions(path, positions: Iterable[int], convert: Callable = to_rgb, *,
                     keyframes_only: bool = False, table: FrameTable | None = None,
                     sink: Callable | None = None, max_pixels: int | None = MAX_PIXELS,
                     allow_images: bool = False) -> dict:
    """{position: convert(frame)} for each distinct position; raise VideoError naming the file.

    With `sink`, each converted frame is handed to sink(position, value) (possibly from a worker thread)
    and not kept. max_pixels, allow_images: see `open_video`. Running out of memory while decoding one
    file is that file's VideoError.
    """
    # sorted(set()) rather than np.unique, whose first call imports numpy.ma (0.4 s here).
    targets = np.asarray(sorted({int(p) for p in np.asarray(list(positions), dtype=np.int64).reshape(-1)}),
                         dtype=np.int64)
    _STATS.value = {"seeks": 0, "overshoots": 0, "frames": 0, "sequential": False}
    if not len(targets):
        return {}
    open_kw = dict(max_pixels=max_pixels, allow_images=allow_images)
    out_of_memory = None
    with open_video(path, **open_kw) as (container, stream):
        if table is None:
            table = frame_table(path, **open_kw)
        n = table.num_frames
        if n == 0:
            raise VideoError(path, "no decodable video frames")
        if targets[0] < 0 or targets[-1] >= n:
            bad = int(targets[0] if targets[0] < 0 else targets[-1])
            raise VideoError(path, f"frame {bad} is out of range: the video has {n} frames")
        pool = ThreadPoolExecutor(CONVERT_WORKERS) if CONVERT_WORKERS > 1 and len(targets) > 1 else None
        plan = _Plan(targets=targets, convert=convert, done={}, pool=pool, sink=sink)
        try:
            if table.exact:
                try:
                    _read_exact(path, container, stream, table, plan, keyframes_only)
                except _Restart:
                    plan.results()  # let conversions in flight finish before starting over
                    plan.done.clear()
                    plan.pending.clear()
                    with open_video(path, **open_kw) as (container2, stream2):
                        _read_sequential(path, container2, stream2, plan)
            else:
                _read_sequential(path, container, stream, plan)
            return plan.results()
        except VideoError:
            raise
        except MemoryError:  # also FFmpeg's ENOMEM (av.error.MemoryError)
            # Raised outside this block, so the frames its traceback holds are freed first.
            out_of_memory = f"{stream.codec_context.width}x{stream.codec_context.height}"
        except (av.FFmpegError, OSError, EOFError) as exc:
            raise video_error(path, exc) from exc
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    if out_of_memory:
        plan = None  # the frames decoded so far go before the error travels up
        raise VideoError(path, f"out of memory decoding its {out_of_memory} frames",
                         hint="free memory, or read fewer frames at a time")


def read_frames(path, indices, *, return_timestamps: bool = False, keyframes_only: bool = False,
                max_pixels: int | None = MAX_PIXELS, allow_images: bool = False):
    """uint8 (len(indices), H, W, 3) RGB frames at the given positions, in the order given (repeats allowed).

    With return_timestamps=True, also float64 (len(indices),) seconds from the first frame.
    keyframes_only=True decodes only keyframes: every index must then be a keyframe's position
    (see `keyframe_positions`). max_pixels: frames above this many pixels are refused before decoding
    (default MAX_PIXELS = 8192×8192; None: no budget). allow_images: read a still picture as one frame.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    open_kw = dict(max_pixels=max_pixels, allow_images=allow_images)
    table = frame_table(path, **open_kw) if return_timestamps or keyframes_only else None
    if keyframes_only:
        keys = set(table.key_positions.tolist())
        bad = [int(i) for i in idx if int(i) not in keys]
        if bad:
            raise ValueError(f"keyframes_only: frame {bad[0]} is not a keyframe")
    # Each decoded frame goes straight into its output slots: memory is the output plus a few frames.
    slots: dict[int, list[int]] = {}
    for slot, i in enumerate(idx.tolist()):
        slots.setdefault(i, []).append(slot)
    holder: dict = {}
    lock = threading.Lock()

    def sink(pos: int, frame: np.ndarray) -> None:
        with lock:
            if "out" not in holder:
                holder["out"] = np.empty((len(idx),) + frame.shape, dtype=np.uint8)
        out = holder["out"]
        if frame.shape != out.shape[1:]:
            raise VideoError(path, f"frame size changes mid-stream ({out.shape[2]}x{out.shape[1]} "
                                   f"→ {frame.shape[1]}x{frame.shape[0]})")
        for slot in slots[pos]:
            out[slot] = frame

    decode_positions(path, idx, to_rgb, keyframes_only=keyframes_only, table=table, sink=sink, **open_kw)
    out = holder.get("out", np.zeros((0, 0, 0, 3), dtype=np.uint8))
    if return_timestamps:
        table = table or frame_table(path)
        return out, table.times[idx] if len(idx) else np.zeros(0)
    return out


def keyframe_positions(path) -> np.ndarray:
    """int64 positions of the keyframes (frames a keyframes-only decode can return)."""
    return frame_table(path).key_positions.copy()
