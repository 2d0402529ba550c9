"""A packet-only scan of the video stream: exact frame count, timestamps and keyframes, without decoding.

`stream.frames` is 0 for WebM and MPEG-TS and over-counts MP4s trimmed with an edit list, and
`average_rate` is wrong for variable-frame-rate files, so frame positions come from packet timestamps:
frame i is the packet with the i-th smallest presentation timestamp among the packets a player shows.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vivitcli.video.container import MAX_PIXELS, check_file, open_video


@dataclass(frozen=True)
class FrameTable:
    """What a packet scan knows about the frames of a video stream.

    pts: int64 (N,) presentation timestamps of the shown frames, ascending (frame i ↔ pts[i]).
    key_positions: int64 (K,) positions of the first frame a seek to each keyframe makes decodable.
    key_pts: int64 (K,) the keyframes' presentation timestamps (what a seek aims at in indexed containers).
    key_dts: int64 (K,) their decode timestamps (what MPEG-TS/PS seeks compare against; pts where unknown).
    exact: False when timestamps are missing or repeated; frames are then found by counting decoded output.
    """

    pts: np.ndarray
    key_positions: np.ndarray
    key_pts: np.ndarray
    key_dts: np.ndarray
    time_base: Fraction
    frame_duration: int  # of the last frame, in time_base units
    exact: bool

    @property
    def num_frames(self) -> int:
        return len(self.pts)

    @property
    def times(self) -> np.ndarray:
        """float64 (N,) seconds from the first shown frame."""
        return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)

    @property
    def duration(self) -> float:
        if not len(self.pts):
            return 0.0
        return float((int(self.pts[-1]) - int(self.pts[0]) + self.frame_duration) * self.time_base)

    def positions_of(self, pts) -> np.ndarray:
        """Positions of the given timestamps, -1 where a timestamp is not a shown frame's."""
        pts = np.asarray(pts, dtype=np.int64)
        pos = np.searchsorted(self.pts, pts)
        pos = np.minimum(pos, len(self.pts) - 1)
        return np.where(self.pts[pos] == pts, pos, -1)

    def keyframe_before(self, position: int) -> int:
        """Index into key_positions of the last keyframe at or before `position` (-1 if none)."""
        return int(np.searchsorted(self.key_positions, position, side="right")) - 1


def scan_stream(container, stream, head=None) -> FrameTable:
    """Demux (no decoding) every packet of `stream` and build its FrameTable.

    head: head(first_key_pts) → what a decode from the file start outputs around the first keyframe (see
    `output_head`); asked only for a stream that starts mid-GOP or whose first GOP is open, where pictures
    near the first keyframe may reference frames the file does not hold.
    """
    rows = []  # (pts, is_keyframe, duration) of shown packets, in decode order
    hidden_keys = []
    key_dts = {}
    for packet in container.demux(stream):
        if not packet.size:  # flush marker
            continue
        if packet.is_discard:
            # Edit-list lead-in: decoded but never shown; a keyframe there still starts a decodable run.
            if packet.is_keyframe and packet.pts is not None:
                hidden_keys.append(packet.pts)
                key_dts[packet.pts] = packet.dts if packet.dts is not None else packet.pts
            continue
        if packet.is_keyframe and packet.pts is not None:
            key_dts[packet.pts] = packet.dts if packet.dts is not None else packet.pts
        rows.append((packet.pts, bool(packet.is_keyframe), packet.duration or 0))
    # A stream cut mid-GOP (MPEG-TS captures) shows nothing before its first keyframe; in an open GOP the
    # leading pictures after it (earlier timestamps, decoded later) reference the missing previous GOP and
    # are dropped too; and a recovery point that is not an intra frame (x264 intra-refresh) shows only once
    # the picture has been rebuilt, a few frames later. Only a decode of the head says what comes out.
    first_key = next((i for i, r in enumerate(rows) if r[1]), None)
    if first_key is None and not hidden_keys:
        rows = []
    elif not hidden_keys:
        key_pts = rows[first_key][0]
        leading = key_pts is not None and any(
            r[0] is not None and r[0] < key_pts for i, r in enumerate(rows) if i != first_key)
        found = head(key_pts) if ((leading or first_key > 0) and key_pts is not None and head is not None) else None
        if found is None:
            rows = rows[first_key:]
            if leading:
                rows = [r for r in rows if r[0] is None or r[0] >= key_pts]
        else:
            shown, first_out = found
            rows = [r for r in rows if r[0] is None or r[0] >= first_out or r[0] in shown]
    shown_pts = [r[0] for r in rows]
    exact = bool(rows) and all(p is not None for p in shown_pts) and len(set(shown_pts)) == len(shown_pts)
    if exact:
        order = np.argsort(np.asarray(shown_pts, dtype=np.int64), kind="stable")
        table_pts = np.asarray(shown_pts, dtype=np.int64)[order]
        key_pts = sorted({r[0] for r in rows if r[1]} | set(hidden_keys))
        key_pts = np.asarray(key_pts, dtype=np.int64)
        key_positions = np.searchsorted(table_pts, key_pts)
        # Two keyframes mapping to one position (hidden lead-in): the later one is the better seek target.
        keep = np.append(key_positions[1:] != key_positions[:-1], True)
        key_pts, key_positions = key_pts[keep], key_positions[keep]
        key_dts_arr = np.asarray([key_dts.get(int(p), int(p)) for p in key_pts], dtype=np.int64)
        last = rows[int(order[-1])][2] if rows else 0
        if not last and len(table_pts) > 1:
            last = int(np.median(np.diff(table_pts)))
        if not last:
            rate = stream.average_rate or stream.guessed_rate
            last = int(round(1 / (rate * stream.time_base))) if rate else 1
    else:
        # No usable timestamps (raw elementary streams): frames are counted, and timed at the nominal rate.
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        time_base = Fraction(1, 1) / Fraction(rate) if rate else Fraction(1, 25)
        table_pts = np.arange(len(rows), dtype=np.int64)
        key_positions = np.asarray([i for i, r in enumerate(rows) if r[1]], dtype=np.int64)
        key_pts = key_positions.copy()
        key_dts_arr = key_pts
        last = 1
    if exact:
        time_base = stream.time_base or Fraction(1, 1)
    return FrameTable(
        pts=table_pts, key_positions=key_positions.astype(np.int64), key_pts=key_pts, key_dts=key_dts_arr,
        time_base=time_base, frame_duration=int(last), exact=exact,
    )


# Packets a head decode reads before it gives up: an intra-refresh recovery spans up to a keyint (x264's
# default 250), the leading pictures of an open GOP a few.
_HEAD_PACKETS = 600


def output_head(path, key_pts: int, **open_kw) -> tuple[set, int] | None:
    """(timestamps of the frames a decode from the file start outputs before one at or after `key_pts`,
    that frame's timestamp); None when that cannot be told (no such frame within _HEAD_PACKETS, or the
    decoder fails)."""
    import av

    shown = set()
    n = 0
    try:
        with open_video(path, threads=False, **open_kw) as (container, stream):
            for packet in container.demux(stream):
                # Pictures before the first keyframe are never counted: not decoding them saves up to a GOP.
                if not n and not packet.is_keyframe:
                    continue
                n += 1
                if n > _HEAD_PACKETS:
                    return None
                try:
                    frames = stream.decode(packet)
                except av.error.InvalidDataError:
                    continue
                for frame in frames:
                    if frame.pts is None:
                        continue
                    if frame.pts >= key_pts:
                        return shown, int(frame.pts)
                    shown.add(int(frame.pts))
    except (av.FFmpegError, OSError, EOFError):
        return None
    return None


_CACHE: "OrderedDict[tuple, FrameTable]" = OrderedDict()
_LOCK = threading.Lock()
_CACHE_SIZE = 64


def _key(path) -> tuple:
    st = os.stat(path)
    return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def frame_table(path, *, max_pixels: int | None = MAX_PIXELS, allow_images: bool = False) -> FrameTable:
    """The FrameTable of `path`, scanned once per (file, size, mtime) and cached.

    max_pixels, allow_images: see `open_video` (they refuse a file before its first scan).
    """
    key = _key(check_file(path))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    # A container of its own: seeking back to the start after a scan is unreliable (MPEG-TS).
    open_kw = dict(max_pixels=max_pixels, allow_images=allow_images)
    with open_video(path, threads=False, **open_kw) as (container, stream):
        table = scan_stream(container, stream, head=lambda key_pts: output_head(path, key_pts, **open_kw))
    with _LOCK:
        _CACHE[key] = table
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return table
