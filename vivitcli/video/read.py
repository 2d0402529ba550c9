"""read_clip: sample, decode and preprocess one video in a single pass, as a model wants it.

Each decoded frame is resized and cropped (uint8, the HF processors' PIL bilinear) on a worker thread as
soon as it leaves the decoder, so only model-sized frames are ever held; rescale and normalize run once
on the stacked clip through a lookup table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vivitcli.errors import ShortVideoError, VideoError
from vivitcli.preprocess import Preprocessor
from vivitcli.video.container import MAX_PIXELS
from vivitcli.video.decode import decode_positions, to_rgb
from vivitcli.video.sampling import sample_indices
from vivitcli.video.scan import frame_table

SAMPLINGS = ("uniform", "stride", "clips", "keyframes")


@dataclass
class ClipInfo:
    """Which frames a clip holds. indices: positions (shape (T,) or (K, T) for clips); timestamps: seconds
    from the first frame, same shape; approximate: True when frames were snapped to keyframes."""

    path: str
    indices: np.ndarray
    timestamps: np.ndarray
    approximate: bool
    sampling: str
    num_video_frames: int
    duration: float
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "path": self.path, "indices": np.asarray(self.indices).tolist(),
            "timestamps": np.round(np.asarray(self.timestamps, dtype=np.float64), 6).tolist(),
            "approximate": self.approximate, "sampling": self.sampling,
            "num_video_frames": self.num_video_frames, "duration": self.duration,
        }


def _as_preprocessor(preprocessor) -> Preprocessor:
    if isinstance(preprocessor, Preprocessor):
        return preprocessor
    if isinstance(preprocessor, dict):
        return Preprocessor.from_config(preprocessor)
    if hasattr(preprocessor, "to_dict"):  # a transformers image processor
        return Preprocessor.from_config(preprocessor.to_dict())
    raise TypeError(f"expected a vivitcli Preprocessor or a preprocessor_config dict, not {type(preprocessor).__name__}")


def _range(path, times: np.ndarray, start, end) -> tuple[int | None, int | None]:
    """Seconds → frame positions: frames whose timestamp t satisfies start ≤ t < end."""
    lo = None if start is None else int(np.searchsorted(times, float(start) - 1e-9, side="left"))
    hi = None if end is None else int(np.searchsorted(times, float(end) - 1e-9, side="left"))
    if lo is not None and lo >= len(times):
        raise VideoError(path, f"start {start:g}s is past the end of the video ({len(times)} frames, "
                               f"last at {times[-1]:.3f}s)")
    if hi is not None and hi <= (lo or 0):
        raise VideoError(path, f"no frames between {start or 0:g}s and {end:g}s")
    return lo, hi


def snap_to_keyframes(indices: np.ndarray, key_positions: np.ndarray) -> np.ndarray:
    """Each index replaced by the nearest keyframe position (the earlier one on a tie)."""
    keys = np.asarray(key_positions, dtype=np.int64)
    j = np.clip(np.searchsorted(keys, indices, side="right") - 1, 0, len(keys) - 1)
    after = np.minimum(j + 1, len(keys) - 1)
    use_after = (keys[after] - indices) < (indices - keys[j])
    return np.where(use_after, keys[after], keys[j]).astype(np.int64)


def read_clip(path, preprocessor, num_frames: int, sampling: str = "uniform", frame_step: int = 4,
              clips: int = 1, start: float | None = None, end: float | None = None, seed: int | None = None,
              return_info: bool = False, exact: bool = False, max_pixels: int | None = MAX_PIXELS,
              allow_images: bool = False, crops: int = 1):
    """Float32 (T, C, S, S) clip (or (K, T, C, S, S) for sampling="clips"), preprocessed like the HF processors.

    crops=3: three spatial views along the long side after the resize (vivitcli.crops, as the ViViT paper
    evaluates) instead of the centre crop: (3, T, C, S, S), or (K*3, T, C, S, S) with sampling="clips"
    (clip-major: the three crops of clip 0 first).
    sampling: "uniform" | "stride" | "clips" (see vivitcli.video.sampling) or "keyframes" (uniform positions
    snapped to the nearest keyframes and decoded keyframes-only: fast, approximate).
    start/end: seconds from the first frame bounding the sampled range. seed: random stride placement
    reproducing the HF docs' sample_frame_indices. exact: resize whole frames then crop (bit-identical to
    `preprocessor(read_frames(...))`); by default only the cropped columns are resized, which is faster
    and stays within one grey level (see Preprocessor.resize_crop). max_pixels: frames above this many
    pixels are refused before decoding (default MAX_PIXELS = 8192×8192; None: no budget). allow_images:
    read a still picture (PNG, JPEG...) as a one-frame video instead of refusing it.
    Raises VideoError naming the file (also when memory runs out while reading it).
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, not {sampling!r}")
    pre = _as_preprocessor(preprocessor)
    open_kw = dict(max_pixels=max_pixels, allow_images=allow_images)
    try:
        return _read_clip(path, pre, num_frames, sampling, frame_step, clips, start, end, seed, return_info,
                          exact, open_kw, crops)
    except MemoryError:
        pass  # raised below, outside the handler, so the arrays its traceback holds are freed first
    raise VideoError(path, "out of memory reading a clip from it", hint="free memory, or use fewer frames")


def three_crop_views(path, pre, frames: np.ndarray, shape: tuple):
    """Resized uint8 frames (N, H, W, 3) in sampling order -> float (views, T, C, S, S), 3 crops per clip."""
    import torch

    from vivitcli.crops import take_crops, three_crop_boxes

    if not pre.do_center_crop:
        raise VideoError(path, "--crops 3 needs a checkpoint whose preprocessor centre-crops (crop_size)")
    size = (pre.crop_size["height"], pre.crop_size["width"])
    boxes = three_crop_boxes(frames.shape[1], frames.shape[2], size)
    per_clip = frames.reshape((-1, shape[-1]) + frames.shape[1:])  # (K, T, H, W, 3)
    views = [pre.normalize(np.ascontiguousarray(view)) for clip in per_clip for view in take_crops(clip, boxes)]
    return torch.stack(views)


def _read_clip(path, pre, num_frames, sampling, frame_step, clips, start, end, seed, return_info, exact,
               open_kw, crops=1):
    try:
        return _read_clip_once(path, pre, num_frames, sampling, frame_step, clips, start, end, seed, return_info,
                               exact, open_kw, crops)
    except ShortVideoError as err:
        if err.available < 1:
            raise
        # A file cut short behind an intact index (a partial download of a faststart MP4): the decoder gave
        # fewer frames than the index lists. Sample again among the frames that exist.
        return _read_clip_once(path, pre, num_frames, sampling, frame_step, clips, start, end, seed, return_info,
                               exact, open_kw, crops, available=err.available)


def _read_clip_once(path, pre, num_frames, sampling, frame_step, clips, start, end, seed, return_info, exact,
                    open_kw, crops=1, available=None):
    table = frame_table(path, **open_kw)
    if table.num_frames == 0:
        raise VideoError(path, "no decodable video frames")
    times = table.times if available is None else table.times[:available]
    lo, hi = _range(path, times, start, end)
    if available is not None:
        hi = min(hi if hi is not None else available, available)
    strategy = "uniform" if sampling == "keyframes" else sampling
    indices = sample_indices(len(times), num_frames, strategy, frame_step=frame_step, clips=clips,
                             start=lo, end=hi, seed=seed)
    approximate = False
    if sampling == "keyframes" and table.exact:
        snapped = snap_to_keyframes(indices, table.key_positions)
        approximate = bool(np.any(snapped != indices))
        indices = snapped
    flat = indices.reshape(-1)

    if crops not in (1, 3):
        raise ValueError(f"crops must be 1 or 3, not {crops!r}")

    def convert(frame):
        if crops > 1:  # keep the whole resized frame: the three views are cut from it below
            return pre.resize_frame(to_rgb(frame))
        return pre.resize_crop(to_rgb(frame), exact=exact)

    done = decode_positions(path, flat, convert, keyframes_only=(sampling == "keyframes" and table.exact),
                            table=table, **open_kw)
    first = done[int(flat[0])]
    frames = np.empty((len(flat),) + first.shape, dtype=np.uint8)
    for slot, i in enumerate(flat):
        frame = done[int(i)]
        if frame.shape != first.shape:
            raise VideoError(path, "frame size changes mid-stream")
        frames[slot] = frame
    if crops > 1:
        clip = three_crop_views(path, pre, frames, indices.shape)
    else:
        clip = pre.normalize(frames)
        if sampling == "clips":
            clip = clip.reshape(indices.shape + tuple(clip.shape[1:]))
    if not return_info:
        return clip
    info = ClipInfo(path=str(path), indices=indices, timestamps=times[indices], approximate=approximate,
                    sampling=sampling, num_video_frames=len(times), duration=table.duration)
    return clip, info
