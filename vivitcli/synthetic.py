"""Synthetic motion clips: the six demo classes, a seeded sampler over the whole clip range, and PyAV writing.

A clip shows one object (a filled disc or square) over a solid or static-noise background. Every
foreground channel differs from every background pixel's channel by at least 100 levels.

- "moving left/right/up/down": constant velocity along one axis, travelling 30–70% of the frame's width
  (left/right) or height (up/down); radius 5–12.5% of the shorter side; the object stays inside the frame.
- "growing"/"shrinking": the object stays near the centre; its radius changes linearly in time by a
  factor of 2 to 4.

Frames are 96–640 px on the long side with aspect 4:3, 16:9, 9:16 or 1:1, 12–60 fps, 1–6 s, written
as H.264, MPEG-4 Part 2 or VP9. `sample_spec(seed)` draws a `ClipSpec` from that range; `render_frames`
draws frames of a spec with numpy; `write_clip` encodes one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from vivitcli.demo.names import BACKGROUNDS, CLASSES, CODECS, CONTAINERS, SHAPES  # noqa: F401 - re-exported

ASPECTS = {"4:3": (4, 3), "16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
COMMON_FPS = (Fraction(12), Fraction(15), Fraction(24000, 1001), Fraction(24), Fraction(25),
              Fraction(30000, 1001), Fraction(30), Fraction(50), Fraction(60000, 1001), Fraction(60))

LONG_SIDE = (96, 640)
FPS = (12, 60)
DURATION = (1.0, 6.0)
MIN_CONTRAST = 100


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to draw and encode one clip; positions and radii in pixels (float)."""

    label: str
    width: int
    height: int
    fps: Fraction
    num_frames: int
    codec: str
    quality: float  # 0 (worst allowed) .. 1 (best): maps to each encoder's CRF / bit rate
    shape: str
    color: tuple[int, int, int]
    background: str
    background_color: tuple[int, int, int]
    noise_amplitude: int  # background channel values lie in background_color ± this
    noise_block: int  # side of one noise cell in pixels
    noise_seed: int
    start: tuple[float, float]  # object centre (x, y) at the first frame
    end: tuple[float, float]  # ... and at the last frame
    radius_start: float
    radius_end: float

    @property
    def duration(self) -> float:
        return float(self.num_frames / self.fps)

    def at(self, index: float) -> tuple[float, float, float]:
        """(x, y, radius) at frame `index` (fractional allowed): linear in time."""
        t = index / max(self.num_frames - 1, 1)
        x = self.start[0] + t * (self.end[0] - self.start[0])
        y = self.start[1] + t * (self.end[1] - self.start[1])
        return x, y, self.radius_start + t * (self.radius_end - self.radius_start)

    def describe(self) -> str:
        fps = float(self.fps)
        fps_text = f"{fps:g}" if fps == int(fps) else f"{fps:.3f}"
        return (f"{self.label}: {self.shape} on {self.background} background, {self.width}x{self.height}, "
                f"{fps_text} fps, {self.num_frames} frames ({self.duration:.2f} s), {self.codec}")


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def frame_size(aspect: str, long_side: float) -> tuple[int, int]:
    """(width, height), both even, for an aspect name ("16:9") and a long side in pixels."""
    a_w, a_h = ASPECTS[aspect]
    if a_w >= a_h:
        return _even(long_side), _even(long_side * a_h / a_w)
    return _even(long_side * a_w / a_h), _even(long_side)


def _colors(rng: np.random.Generator, amplitude: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(object colour, background base colour), per channel at least MIN_CONTRAST apart from base ± amplitude."""
    fg, bg = [], []
    gap = MIN_CONTRAST + amplitude
    for _ in range(3):
        b = int(rng.integers(amplitude, 255 - gap - amplitude + 1))
        f = int(rng.integers(b + gap, 256))
        if rng.random() < 0.5:  # mirror: object darker than the background
            b, f = 255 - b, 255 - f
        fg.append(f)
        bg.append(b)
    return tuple(fg), tuple(bg)


def sample_spec(
    seed,
    *,
    label: str | None = None,
    width: int | None = None,
    height: int | None = None,
    aspect: str | None = None,
    long_side: int | None = None,
    fps: Fraction | float | None = None,
    duration: float | None = None,
    codec: str | None = None,
    shape: str | None = None,
    background: str | None = None,
) -> ClipSpec:
    """Draw a clip from the whole range with `seed` (int, sequence, or np.random.Generator).

    Keyword arguments pin a field; the others are drawn. `width`/`height` must both be given (even numbers
    are safest for yuv420p); they need not be one of the four aspects. Or pin `aspect` (a key of ASPECTS)
    and/or `long_side` instead.
    """
    rng = _rng(seed)
    # Draw every random field in a fixed order, pinned or not, so that pinning one field leaves the
    # others as the same seed would draw them.
    draw_label = CLASSES[int(rng.integers(len(CLASSES)))]
    draw_aspect = list(ASPECTS)[int(rng.integers(len(ASPECTS)))]
    draw_long_side = float(rng.uniform(*LONG_SIDE))
    draw_fps = (COMMON_FPS[int(rng.integers(len(COMMON_FPS)))] if rng.random() < 0.5
                else Fraction(int(rng.integers(FPS[0], FPS[1] + 1))))
    draw_duration = float(rng.uniform(*DURATION))
    draw_codec = list(CODECS)[int(rng.integers(len(CODECS)))]
    quality = float(rng.uniform(0.0, 1.0))
    draw_shape = SHAPES[int(rng.integers(len(SHAPES)))]
    draw_background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    amplitude = int(rng.integers(8, 41))
    noise_block = int(rng.choice([1, 1, 2, 3, 4, 6, 8]))
    noise_seed = int(rng.integers(2**31))
    u = rng.uniform(0.0, 1.0, size=6)

    label = draw_label if label is None else label
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}; expected one of {', '.join(CLASSES)}")
    if (width is None) != (height is None):
        raise ValueError("give both width and height, or neither")
    if aspect is not None and aspect not in ASPECTS:
        raise ValueError(f"unknown aspect {aspect!r}; expected one of {', '.join(ASPECTS)}")
    if width is None:
        width, height = frame_size(draw_aspect if aspect is None else aspect,
                                   draw_long_side if long_side is None else long_side)
    fps = draw_fps if fps is None else Fraction(fps).limit_denominator(1001)
    duration = draw_duration if duration is None else float(duration)
    codec = draw_codec if codec is None else codec
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {', '.join(CODECS)}")
    shape = draw_shape if shape is None else shape
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    background = draw_background if background is None else background
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; expected one of {', '.join(BACKGROUNDS)}")
    if background == "solid":
        amplitude = 0
    color, background_color = _colors(rng, amplitude)
    num_frames = max(2, int(round(duration * fps)))

    w, h = float(width), float(height)
    short = min(w, h)
    if label.startswith("moving"):
        radius = (0.05 + 0.075 * u[0]) * short
        radius_start = radius_end = radius
        horizontal = label in ("moving left", "moving right")
        extent, other = (w, h) if horizontal else (h, w)
        travel = (0.3 + 0.4 * u[1]) * extent
        # Both ends stay inside the frame: centre in [radius, extent - radius].
        a = radius + u[2] * max(extent - 2 * radius - travel, 0.0)
        b = a + travel
        if label in ("moving left", "moving up"):
            a, b = extent - a, extent - b
        cross = radius + u[3] * (other - 2 * radius)
        start, end = ((a, cross), (b, cross)) if horizontal else ((cross, a), (cross, b))
    else:
        factor = 2.0 + 2.0 * u[0]
        big = (0.2 + 0.25 * u[1]) * short
        small = big / factor
        radius_start, radius_end = (small, big) if label == "growing" else (big, small)
        # "Near the centre": within 5% of each side, and the largest object still fits.
        cx = w / 2 + (u[2] - 0.5) * min(0.1 * w, max(w - 2 * big, 0.0))
        cy = h / 2 + (u[3] - 0.5) * min(0.1 * h, max(h - 2 * big, 0.0))
        start = end = (cx, cy)

    return ClipSpec(
        label=label, width=int(width), height=int(height), fps=fps, num_frames=num_frames, codec=codec,
        quality=quality, shape=shape, color=color, background=background,
        background_color=background_color, noise_amplitude=amplitude, noise_block=noise_block,
        noise_seed=noise_seed, start=(float(start[0]), float(start[1])), end=(float(end[0]), float(end[1])),
        radius_start=float(radius_start), radius_end=float(radius_end),
    )


def render_background(spec: ClipSpec) -> np.ndarray:
    """uint8 (H, W, 3): the static background."""
    base = np.asarray(spec.background_color, dtype=np.int16)
    if spec.background == "solid" or spec.noise_amplitude == 0:
        return np.broadcast_to(base.astype(np.uint8), (spec.height, spec.width, 3)).copy()
    rng = np.random.default_rng(spec.noise_seed)
    block = spec.noise_block
    cells = rng.integers(-spec.noise_amplitude, spec.noise_amplitude + 1,
                         size=(-(-spec.height // block), -(-spec.width // block), 3), dtype=np.int16)
    noise = np.repeat(np.repeat(cells, block, axis=0), block, axis=1)[: spec.height, : spec.width]
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def draw_object(frame: np.ndarray, spec: ClipSpec, x: float, y: float, radius: float) -> None:
    """Blend the object into `frame` (uint8 H, W, 3) in place, with a one-pixel anti-aliased edge."""
    h, w = frame.shape[:2]
    x0, x1 = max(int(np.floor(x - radius - 1)), 0), min(int(np.ceil(x + radius + 2)), w)
    y0, y1 = max(int(np.floor(y - radius - 1)), 0), min(int(np.ceil(y + radius + 2)), h)
    if x0 >= x1 or y0 >= y1:
        return
    # Pixel centres sit at integer + 0.5.
    dx = np.arange(x0, x1, dtype=np.float32) + 0.5 - x
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - y
    if spec.shape == "disc":
        dist = np.sqrt(dx[None, :] ** 2 + dy**2)
    else:
        dist = np.maximum(np.abs(dx)[None, :], np.abs(dy))
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0)[..., None]
    patch = frame[y0:y1, x0:x1].astype(np.float32)
    color = np.asarray(spec.color, dtype=np.float32)
    frame[y0:y1, x0:x1] = np.rint(patch + alpha * (color - patch)).astype(np.uint8)


def render_frames(spec: ClipSpec, indices=None, background: np.ndarray | None = None) -> np.ndarray:
    """uint8 (len(indices), H, W, 3) for frame `indices` (fractional allowed; default: every frame)."""
    if indices is None:
        indices = np.arange(spec.num_frames)
    if background is None:
        background = render_background(spec)
    out = np.empty((len(indices), spec.height, spec.width, 3), dtype=np.uint8)
    for k, index in enumerate(indices):
        out[k] = background
        draw_object(out[k], spec, *spec.at(float(index)))
    return out


def _encoder_options(spec: ClipSpec) -> tuple[dict, int | None]:
    """(codec options, bit rate) for the spec's codec and quality."""
    q = min(max(spec.quality, 0.0), 1.0)
    if spec.codec == "h264":
        return {"crf": str(int(round(32 - 14 * q))), "preset": "veryfast"}, None
    if spec.codec == "vp9":
        return {"crf": str(int(round(45 - 20 * q))), "b:v": "0", "deadline": "realtime", "cpu-used": "8",
                "row-mt": "1"}, None
    # MPEG-4 Part 2 is rate-controlled: 0.05–0.4 bits per pixel.
    bpp = 0.05 + 0.35 * q
    return {}, int(max(spec.width * spec.height * float(spec.fps) * bpp, 50_000))


def write_clip(spec: ClipSpec, path: str | os.PathLike) -> str:
    """Encode `spec` to `path` (container from the extension: .mp4 .mov .mkv .webm .avi); returns the path.

    Raises ValueError when the codec cannot go into that container.
    """
    import av

    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in CONTAINERS:
        raise ValueError(f"{path}: unsupported extension {ext or '(none)'}; use one of {', '.join(CONTAINERS)}")
    if spec.codec not in CONTAINERS[ext]:
        raise ValueError(f"{path}: {spec.codec} cannot be written into a {ext} file; "
                         f"use one of {', '.join(CONTAINERS[ext])}")
    options, bit_rate = _encoder_options(spec)
    background = render_background(spec)
    with av.open(path, mode="w") as container:
        stream = container.add_stream(CODECS[spec.codec][0], rate=spec.fps, options=options)
        stream.width, stream.height = spec.width, spec.height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1  # threaded encoders may give different bytes run to run
        if bit_rate:
            stream.bit_rate = bit_rate
        for index in range(spec.num_frames):
            frame = background.copy()
            draw_object(frame, spec, *spec.at(float(index)))
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = index
            video_frame.time_base = Fraction(1) / spec.fps
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path

