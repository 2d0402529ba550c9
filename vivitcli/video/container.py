"""Opening a video with PyAV, with every failure turned into a VideoError that names the file."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

import av

from vivitcli.errors import VideoError

# Frame threads + slice threads; the default (SLICE) does nothing for x264 streams.
THREAD_TYPE = "AUTO"

# Default pixel budget per frame: 8192×8192 = 67.1 Mpx, twice 8K UHD (7680×4320 = 33.2 Mpx) and above
# 11K 360° video (11520×5760 = 66.4 Mpx), so every camera format passes; one RGB frame that size is
# 201 MB and a frame-threaded decoder holds several, so a 15000×15000 picture (225 Mpx, 4.5 GB peak)
# is refused before anything is decoded. FFmpeg's own limit (max_pixels) is INT_MAX.
MAX_PIXELS = 8192 * 8192
_FFMPEG_MAX_PIXELS = 2**31 - 1

# Demuxers of single pictures (a PNG or JPEG under any name): FFmpeg calls them image2 or <codec>_pipe.
_IMAGE_FORMATS = {"image2", "image2pipe"}
# Picture codecs: a stream of one such frame is a still image, not a video.
_IMAGE_CODECS = {"png", "mjpeg", "jpeg2000", "jpegls", "bmp", "tiff", "webp", "gif", "ppm", "pgm", "pam",
                 "qoi", "jpegxl", "dpx", "exr", "sgi", "targa", "pcx", "xbm", "xwd", "hdr", "photocd"}

_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


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
    """`path` as a Path if it is a non-empty regular file (through symlinks); a VideoError otherwise.

    Checked before FFmpeg opens it: opening a FIFO blocks forever and /dev/zero never ends.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise VideoError(path, "symbolic link loop (too many levels of symbolic links)") from None
        if exc.errno == errno.ENOENT and os.path.islink(path):
            raise VideoError(path, "broken symbolic link (its target does not exist)") from None
        raise video_error(path, exc) from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoError(path, "is a directory, not a video file")
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(st.st_mode)), "a special file")
        raise VideoError(path, f"not a regular file ({kind})")
    if st.st_size == 0:
        raise VideoError(path, "empty file")
    return path


def _is_attached_picture(stream) -> bool:
    """Cover art in an audio file: a one-picture "video" stream flagged attached_pic."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _check_stream(path, container, stream, max_pixels: int | None, allow_images: bool) -> None:
    """Refuse still images (unless allowed) and frames above the pixel budget, before decoding any."""
    codec = stream.codec_context.name
    formats = set((container.format.name or "").split(","))
    still = bool(formats & _IMAGE_FORMATS) or any(f.endswith("_pipe") for f in formats) or (
        codec in _IMAGE_CODECS and stream.frames == 1)
    if still and not allow_images:
        raise VideoError(path, f"a still image ({codec}), not a video",
                         hint="--allow-images reads it as a one-frame video")
    if max_pixels is None:
        return
    width, height = stream.codec_context.width, stream.codec_context.height
    budget = f"the budget of {max_pixels:,} pixels per frame"
    if width * height > max_pixels:
        raise VideoError(path, f"frames are {width}x{height} ({width * height:,} pixels), above {budget}",
                         hint="raise it with --max-pixels if this file is wanted")
    if not width or not height:
        # The header does not give the size and the probing decoder refused the frame (or could not decode it).
        raise VideoError(path, f"frame size unknown: no frame decodes within {budget}",
                         hint="a broken stream, or larger frames: raise --max-pixels if so")


@contextlib.contextmanager
def open_video(path, threads: bool = True, *, max_pixels: int | None = MAX_PIXELS, allow_images: bool = False):
    """Yield (container, video stream); raise VideoError for a missing, unreadable or video-less file.

    max_pixels: frames above this many pixels are refused before any is decoded (None: no budget; FFmpeg's
    decoders enforce it too, also while probing). allow_images: accept a still picture (PNG, JPEG...) as a
    one-frame video; refused by default, since a photo named .mp4 is rarely what was meant.
    """
    path = check_file(path)
    options = {}
    if max_pixels is not None:
        if int(max_pixels) < 1:
            raise ValueError(f"max_pixels must be a positive number of pixels, not {max_pixels!r}")
        options["max_pixels"] = str(min(int(max_pixels), _FFMPEG_MAX_PIXELS))
    try:
        container = av.open(str(path), mode="r", options=options)
    except Exception as exc:  # PyAV raises a zoo of FFmpegError/OSError subclasses
        raise video_error(path, exc) from exc
    try:
        videos = [s for s in container.streams.video if not _is_attached_picture(s)]
        if not videos:
            kinds = sorted({("attached picture" if s.type == "video" else s.type) for s in container.streams})
            raise VideoError(path, f"no video stream (found: {', '.join(kinds or ['no streams'])})")
        stream = videos[0]
        _check_stream(path, container, stream, max_pixels, allow_images)
        if options:
            stream.codec_context.options = dict(options)
        if threads:
            stream.thread_type = THREAD_TYPE
        yield container, stream
    except VideoError:
        raise
    except (av.FFmpegError, OSError, EOFError) as exc:
        raise video_error(path, exc) from exc
    finally:
        container.close()
