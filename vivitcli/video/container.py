"""Opening a video with PyAV, with every failure turned into a VideoError that names the file."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import av

from vivitcli.errors import VideoError

# Frame threads + slice threads; the default (SLICE) does nothing for x264 streams.
THREAD_TYPE = "AUTO"


def video_error(path, exc: BaseException) -> VideoError:
    """A one-line VideoError for an exception raised by PyAV or the OS while reading `path`."""
    if isinstance(exc, VideoError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return VideoError(path, "no such file")
    if isinstance(exc, IsADirectoryError):
        return VideoError(path, "is a directory, not a video file")
    if isinstance(exc, PermissionError):
        return VideoError(path, "permission denied")
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return VideoError(path, f"cannot decode video ({reason})", hint="is it a complete, supported video file?")


def check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise VideoError(path, "no such file")
    if path.is_dir():
        raise VideoError(path, "is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoError(path, "empty file")
    return path


@contextlib.contextmanager
def open_video(path, threads: bool = True):
    """Yield (container, video stream); raise VideoError for a missing, unreadable or video-less file."""
    path = check_file(path)
    try:
        container = av.open(str(path), mode="r")
    except Exception as exc:  # PyAV raises a zoo of FFmpegError/OSError subclasses
        raise video_error(path, exc) from exc
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise VideoError(path, f"no video stream (found: {', '.join(kinds)})")
        stream = container.streams.video[0]
        if threads:
            stream.thread_type = THREAD_TYPE
        yield container, stream
    except VideoError:
        raise
    except (av.FFmpegError, OSError, EOFError) as exc:
        raise video_error(path, exc) from exc
    finally:
        container.close()
