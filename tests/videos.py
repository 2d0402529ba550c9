"""Test videos written with PyAV whose frames carry their own index in their pixels.

Frame ``i`` is a 2×4 grid of flat grey blocks; each block holds two bits of ``i`` as one of four grey
levels 64 apart, so the index (up to 65535) survives lossy compression, chroma subsampling and sizes as
small as 17×9. ``decode_index(frame)`` reads it back from a decoded RGB frame, which proves which frame a
decoder returned.

    from tests.videos import write_video, decode_index
    path = write_video(tmp_path / "a.mp4", num_frames=40, codec="libx264", gop=250, bframes=3)
    assert [decode_index(f) for f in vivitcli.read_frames(path, [3, 0, 39])] == [3, 0, 39]

Broken inputs: ``write_empty``, ``write_truncated``, ``write_not_video``, ``write_audio_only``,
``write_audio_with_cover``, ``write_png`` (a still picture under a video name), ``write_cut`` (a capture
that starts mid-GOP); ``write_with_ffmpeg`` encodes with the ffmpeg command line.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROWS, COLS = 2, 4
LEVELS = np.array([32, 96, 160, 224], dtype=np.uint8)
MAX_INDEX = 4 ** (ROWS * COLS) - 1

# Containers each codec can go in; the suffix of `path` picks the container.
_CODEC_OPTIONS = {
    # Low crf keeps blocks clean; the index coding tolerates far worse.
    "libx264": lambda gop, bframes: {"crf": "12", "bf": str(bframes), "g": str(gop),
                                      "keyint_min": str(min(gop, 25)), "sc_threshold": "0",
                                      "preset": "ultrafast" if bframes == 0 else "veryfast"},
    "mpeg4": lambda gop, bframes: {"qscale": "2", "g": str(gop), "bf": str(bframes)},
    "libvpx-vp9": lambda gop, bframes: {"crf": "20", "b": "0", "g": str(gop), "deadline": "realtime",
                                         "cpu-used": "8", "lag-in-frames": "0"},
    "libvpx": lambda gop, bframes: {"crf": "10", "b": "1M", "g": str(gop), "deadline": "realtime",
                                     "cpu-used": "8"},
    "mjpeg": lambda gop, bframes: {"qscale": "2"},
    "mpeg2video": lambda gop, bframes: {"qscale": "2", "g": str(gop), "bf": str(bframes)},
}


def _block_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    return [(k * n // parts, (k + 1) * n // parts) for k in range(parts)]


def index_frame(index: int, width: int, height: int) -> np.ndarray:
    """uint8 RGB (height, width, 3) frame coding `index` as grey blocks (most significant block first)."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"index {index} outside 0..{MAX_INDEX}")
    img = np.empty((height, width, 3), dtype=np.uint8)
    digits = [(index >> (2 * k)) & 3 for k in reversed(range(ROWS * COLS))]
    for r, (y0, y1) in enumerate(_block_bounds(height, ROWS)):
        for c, (x0, x1) in enumerate(_block_bounds(width, COLS)):
            img[y0:y1, x0:x1] = LEVELS[digits[r * COLS + c]]
    return img


def decode_index(frame, rotation: int = 0) -> int:
    """The index coded in a decoded frame: uint8 (H, W, 3) RGB array, or an av.VideoFrame.

    `rotation` (degrees counter-clockwise, as read_frames applies it) is undone first, so a frame returned
    in display orientation decodes only if it was turned the right way.
    """
    if isinstance(frame, av.VideoFrame):
        frame = frame.to_ndarray(format="rgb24")
    img = np.asarray(frame)
    if rotation % 360:
        img = np.rot90(img, k=-(rotation % 360) // 90)
    grey = img.astype(np.float32).mean(axis=-1) if img.ndim == 3 else img.astype(np.float32)
    h, w = grey.shape
    index = 0
    for (y0, y1) in _block_bounds(h, ROWS):
        for (x0, x1) in _block_bounds(w, COLS):
            # The block's inner half only: edges ring after DCT coding and bleed through chroma subsampling.
            bh, bw = y1 - y0, x1 - x0
            cy0, cy1 = y0 + bh // 4, y1 - bh // 4
            cx0, cx1 = x0 + bw // 4, x1 - bw // 4
            value = grey[cy0:max(cy1, cy0 + 1), cx0:max(cx1, cx0 + 1)].mean()
            index = (index << 2) | int(np.abs(LEVELS.astype(np.float32) - value).argmin())
    return index


def vfr_timestamps(num_frames: int, seed: int = 0) -> list[int]:
    """Irregular, strictly increasing timestamps in milliseconds (10..90 ms apart) used for vfr=True."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(10, 91, size=num_frames)
    steps[0] = 0
    return np.cumsum(steps).tolist()


def write_video(
    path,
    num_frames: int = 30,
    width: int = 64,
    height: int = 48,
    fps: int = 25,
    codec: str = "libx264",
    gop: int = 12,
    bframes: int = 2,
    rotation: int | None = None,
    vfr: bool = False,
    audio: bool = False,
    pix_fmt: str | None = None,
    options: dict | None = None,
) -> Path:
    """Write `num_frames` index-coded frames; the suffix of `path` picks the container (.mp4, .mkv, .ts, .webm, .avi).

    rotation: display-matrix rotation in degrees counter-clockwise (what av's frame.rotation reports).
    vfr: frame timestamps from `vfr_timestamps(num_frames)` in a 1/1000 time base (use .mkv).
    audio: add a 1 kHz AAC (Opus for .webm) tone track covering the video.
    pix_fmt: default yuv420p, or yuv444p for odd sizes (x264 refuses odd 4:2:0 sizes).
    options: extra encoder options (e.g. {"x264-params": "open-gop=1"}).
    """
    if pix_fmt is None:
        pix_fmt = "yuv444p" if (width % 2 or height % 2) else "yuv420p"
    path = Path(path)
    options = {**_CODEC_OPTIONS.get(codec, lambda g, b: {})(gop, bframes), **(options or {})}
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec in ("libx264", "mpeg4", "libvpx", "libvpx-vp9", "mpeg2video"):
            stream.codec_context.gop_size = gop
        if vfr:
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
            pts = vfr_timestamps(num_frames)
        else:
            stream.codec_context.time_base = Fraction(1, fps)
            pts = list(range(num_frames))
        if rotation:
            stream.set_display_rotation(rotation)
        astream = None
        if audio:
            acodec = "libopus" if path.suffix == ".webm" else "aac"
            astream = out.add_stream(acodec, rate=48000)
            astream.layout = "mono"
        tb = Fraction(1, 1000) if vfr else Fraction(1, fps)
        samples_done = 0
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(index_frame(i, width, height), format="rgb24")
            frame.pts, frame.time_base = pts[i], tb
            out.mux(stream.encode(frame))
            if astream is not None:
                end = int((pts[i] + (pts[i] - pts[i - 1] if i else 1)) * tb * 48000)
                samples_done = _write_tone(out, astream, samples_done, end)
        out.mux(stream.encode(None))
        if astream is not None:
            out.mux(astream.encode(None))
    return path


def _write_tone(out, astream, start: int, end: int) -> int:
    chunk = 960
    while start + chunk <= end:
        t = (np.arange(start, start + chunk) / 48000.0).astype(np.float32)
        samples = (0.2 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, start
        out.mux(astream.encode(frame))
        start += chunk
    return start


def write_trimmed(src, dst, start_frame: int) -> Path:
    """Remux `src` (MP4, H.264) so it shows frames from `start_frame` on, without re-encoding.

    Like `ffmpeg -ss T -c copy`: packets from the keyframe before `start_frame` are kept and an edit list
    hides the lead-in, so the container's frame count exceeds the frames a player shows.
    """
    dst = Path(dst)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        packets = [p for p in inp.demux(vin) if p.size]
        pts_sorted = sorted(p.pts for p in packets)
        cut = pts_sorted[start_frame]
        key_pts = max(p.pts for p in packets if p.is_keyframe and p.pts <= cut)
        keep = False
        for p in packets:  # decode order
            if p.is_keyframe and p.pts == key_pts:
                keep = True
            if not keep:
                continue
            p.pts -= cut
            p.dts -= cut
            p.stream = vout
            out.mux(p)
    return dst


def write_with_ffmpeg(path, args: list[str], num_frames: int = 120, width: int = 64, height: int = 48,
                      fps: int = 25, noise: int = 0) -> Path:
    """Index-coded frames encoded by the ffmpeg command line (`args`: codec and muxer options).

    noise: uniform ±noise grey levels on every pixel (seeded), which makes frames big enough to span
    several container packets. Callers skip when `shutil.which("ffmpeg")` is None.
    """
    import subprocess

    path = Path(path)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(num_frames):
        img = index_frame(i, width, height)
        if noise:
            img = np.clip(img.astype(np.int16) + rng.integers(-noise, noise + 1, img.shape), 0, 255)
        frames.append(img.astype(np.uint8).tobytes())
    cmd = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", *args, str(path)]
    subprocess.run(cmd, input=b"".join(frames), check=True)
    return path


def write_cut(src, dst, fraction: float = 0.3) -> Path:
    """The bytes of `src` from about `fraction` of its size on, cut at a container packet boundary (188
    bytes for MPEG-TS, 2048 for MPEG-PS): a capture that starts mid-GOP."""
    data = Path(src).read_bytes()
    block = 188 if Path(src).suffix == ".ts" else 2048
    start = int(len(data) * fraction) // block * block
    dst = Path(dst)
    dst.write_bytes(data[start:])
    return dst


def write_png(path, image: np.ndarray | None = None, width: int = 0, height: int = 0) -> Path:
    """A PNG file (under any name, e.g. photo.mp4): `image` (uint8 RGB), or, without one, a grey image whose
    header claims width×height but whose data holds one row: cheap to write at any claimed size, and a
    decoder allocates the whole picture before finding the data short."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    if image is not None:
        height, width = image.shape[:2]
        rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, -1)], axis=1)
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
        data = zlib.compress(rows.tobytes())
    else:
        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
        data = zlib.compress(bytes(width + 1))
    path = Path(path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def write_audio_with_cover(path, cover_index: int = 5) -> Path:
    """An MP3 with cover art: an index-coded MJPEG picture in a video stream flagged attached_pic."""
    path = Path(path)
    with av.open(str(path), "w", format="mp3") as out:
        astream = out.add_stream("libmp3lame", rate=48000)
        astream.layout = "mono"
        vstream = out.add_stream("mjpeg", rate=1)
        vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuvj420p"
        vstream.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(index_frame(cover_index, 64, 48), format="rgb24")
        picture = picture.reformat(format="yuvj420p")
        picture.pts = 0
        out.mux(vstream.encode(picture))
        out.mux(vstream.encode(None))
        t = np.arange(48000) / 48000.0
        frame = av.AudioFrame.from_ndarray((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                           format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(astream.encode(frame))
        out.mux(astream.encode(None))
    return path


def write_empty(path) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_not_video(path) -> Path:
    path = Path(path)
    path.write_text("this is not a video\n" * 20)
    return path


def write_truncated(src, dst, fraction: float = 0.3) -> Path:
    """The first `fraction` of `src`'s bytes (for an MP4 with its index at the end: no index at all)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: max(1, int(len(data) * fraction))])
    return dst


def write_audio_only(path, seconds: float = 1.0) -> Path:
    """An audio file with no video stream (.m4a → AAC, .wav → PCM)."""
    path = Path(path)
    codec = "pcm_s16le" if path.suffix == ".wav" else "aac"
    with av.open(str(path), "w") as out:
        astream = out.add_stream(codec, rate=48000)
        astream.layout = "mono"
        if codec == "pcm_s16le":
            astream.format = "s16"
        n = int(seconds * 48000)
        t = np.arange(n) / 48000.0
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        if codec == "pcm_s16le":
            samples = (samples * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        else:
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(astream.encode(frame))
        out.mux(astream.encode(None))
    return path
