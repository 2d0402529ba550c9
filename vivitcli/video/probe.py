"""probe(path) → VideoInfo: frame count, rate, duration, display size, rotation, codec, audio."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vivitcli.errors import VideoError
from vivitcli.video.container import MAX_PIXELS, open_video, video_error
from vivitcli.video.scan import frame_table

# Containers whose sample tables count every frame exactly (absent an edit list, checked below).
_INDEXED_FORMATS = ("mov", "mp4", "m4a", "3gp", "3g2", "mj2")


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, in display orientation.

    num_frames: frames a sequential decode yields (exact). fps: average frames per second
    (num_frames / duration). duration: seconds from the first frame's start to the last frame's end.
    width, height: after rotation. rotation: degrees counter-clockwise the decoded picture is turned for
    display (0, 90, 180 or 270; PyAV's `frame.rotation` modulo 360). count_source: "container" when the
    container's sample table was trusted, "packets" when counted by a packet scan.
    """

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    rotation: int
    codec: str
    has_audio: bool
    count_source: str = "packets"

    def to_dict(self) -> dict:
        return asdict(self)


def _first_frame(container, stream):
    for frame in container.decode(stream):
        return frame
    return None


def _container_count(container, stream) -> int | None:
    """The container's own frame count where it is exact: an MP4-family sample table with no edit-list lead-in."""
    names = set((container.format.name or "").split(","))
    if not names & set(_INDEXED_FORMATS) or stream.frames <= 0:
        return None
    entries = stream.index_entries
    if len(entries) != stream.frames or any(e.is_discard for e in entries):
        return None
    return int(stream.frames)


def probe(path, *, max_pixels: int | None = MAX_PIXELS, allow_images: bool = False) -> VideoInfo:
    """Probe `path`; raise VideoError naming the file if it has no decodable video stream.

    max_pixels, allow_images: as for read_clip (a file read_clip refuses is refused here too).
    """
    open_kw = dict(max_pixels=max_pixels, allow_images=allow_images)
    with open_video(path, **open_kw) as (container, stream):
        try:
            codec = stream.codec_context.name
            has_audio = bool(container.streams.audio)
            count = _container_count(container, stream)
            first = _first_frame(container, stream)
        except VideoError:
            raise
        except Exception as exc:
            raise video_error(path, exc) from exc
        if first is None:
            raise VideoError(path, "no decodable video frames")
        rotation = int(first.rotation or 0) % 360
        width, height = first.width, first.height
        if count is not None:
            num_frames, source = count, "container"
            if stream.duration:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = float(container.duration or 0) / 1e6
            rate = stream.average_rate
            fps = float(rate) if rate else (num_frames / duration if duration else 0.0)
        else:
            table = frame_table(path, **open_kw)
            num_frames, source = table.num_frames, "packets"
            duration = table.duration
            fps = num_frames / duration if duration > 0 else float(stream.average_rate or 0)
        if num_frames <= 0:
            raise VideoError(path, "no decodable video frames")
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(
        path=str(path), num_frames=num_frames, fps=fps, duration=duration, width=width, height=height,
        rotation=rotation, codec=codec, has_audio=has_audio, count_source=source,
    )
