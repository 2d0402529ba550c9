"""Which frames to read: pure functions of the frame count (numpy only, no I/O).

Rules, all in frame positions (0 = first frame a sequential decode yields), over the range [start, end):

- uniform: the frame at the centre of each of `num_frames` equal segments: floor((k + 0.5) · n / T).
- stride: the docs recipe's clip (`sample_frame_indices`): `num_frames` frames spread over a span of
  num_frames × frame_step frames, `linspace(s, s + span, T)` clipped to s + span − 1 and floored, so
  consecutive frames are frame_step or frame_step + 1 apart. The span starts at the range start
  (position="start"), is centred (position="center", the default without a seed) or starts at a random
  offset drawn from `seed` exactly as the recipe draws it (`np.random.seed(seed)` then
  `sample_frame_indices(T, frame_step, n)`; the default when a seed is given).
- clips: K stride clips whose spans start at the centres of K equal segments of the room left for them
  (mmaction2's test-time rule), shape (K, T).

Short videos never raise. When the range holds fewer frames than a stride span, the span shrinks to the
whole range (the same linspace rule with span = n, so stride falls below frame_step); when it holds fewer
frames than `num_frames`, frames repeat in order, each as evenly as the floor rule gives.
"""

from __future__ import annotations

import numpy as np

STRATEGIES = ("uniform", "stride", "clips")


def _span_indices(start: int, span: int, num_frames: int) -> np.ndarray:
    """The recipe's rule: num_frames floored points of linspace(start, start+span), clipped to the span."""
    idx = np.linspace(start, start + span, num=num_frames)
    return np.clip(idx, start, start + span - 1).astype(np.int64)


def uniform_indices(n: int, num_frames: int, start: int = 0) -> np.ndarray:
    """Centres of `num_frames` equal segments of [start, start + n)."""
    k = np.arange(num_frames, dtype=np.float64)
    return (start + np.floor((k + 0.5) * n / num_frames)).astype(np.int64)


def stride_indices(n: int, num_frames: int, frame_step: int = 4, *, start: int = 0,
                   position: str | None = None, seed: int | None = None) -> np.ndarray:
    """One stride clip inside [start, start + n); see the module docstring."""
    if position is None:
        position = "random" if seed is not None else "center"
    span = int(num_frames * frame_step)
    if n <= span:
        # Too short for the span (the recipe raises here): cover the whole range instead.
        return _span_indices(start, n, num_frames)
    if position == "start":
        offset = 0
    elif position == "center":
        offset = (n - span) // 2
    elif position == "random":
        # np.random.seed(s); np.random.randint(...) draws from RandomState(s): the recipe's exact draw.
        rng = np.random.RandomState(seed)
        offset = int(rng.randint(span, n)) - span
    else:
        raise ValueError(f"position must be 'start', 'center' or 'random', not {position!r}")
    return _span_indices(start + offset, span, num_frames)


def clip_indices(n: int, num_frames: int, frame_step: int = 4, clips: int = 1, *, start: int = 0) -> np.ndarray:
    """(clips, num_frames): K stride clips spread evenly over [start, start + n)."""
    span = int(num_frames * frame_step)
    if n <= span:
        one = _span_indices(start, n, num_frames)
        return np.tile(one, (clips, 1))
    room = n - span + 1
    offsets = (np.arange(clips) * room / clips + room / (2 * clips)).astype(np.int64)
    return np.stack([_span_indices(start + int(o), span, num_frames) for o in offsets])


def sample_indices(num_video_frames: int, num_frames: int, strategy: str = "uniform", *,
                   frame_step: int = 4, clips: int = 1, start: int | None = None, end: int | None = None,
                   seed: int | None = None, position: str | None = None) -> np.ndarray:
    """Frame positions to read: int64 (num_frames,), or (clips, num_frames) for strategy="clips".

    start/end (frame positions, end exclusive) restrict the range; they are clamped to the video.
    """
    n_total = int(num_video_frames)
    if n_total <= 0:
        raise ValueError("the video has no frames")
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, not {num_frames}")
    if frame_step <= 0:
        raise ValueError(f"frame_step must be positive, not {frame_step}")
    lo = 0 if start is None else min(max(int(start), 0), n_total - 1)
    hi = n_total if end is None else min(max(int(end), lo + 1), n_total)
    n = hi - lo
    if strategy == "uniform":
        return uniform_indices(n, num_frames, start=lo)
    if strategy == "stride":
        return stride_indices(n, num_frames, frame_step, start=lo, position=position, seed=seed)
    if strategy == "clips":
        if clips <= 0:
            raise ValueError(f"clips must be positive, not {clips}")
        return clip_indices(n, num_frames, frame_step, clips, start=lo)
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
