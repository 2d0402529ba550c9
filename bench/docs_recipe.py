"""The transformers docs' video-classification recipe (VideoMAE/ViViT model docs), in one place: the
reference side of bench_decode.py and bench_e2e.py, and what tests/test_clip.py and
tests/test_video_sampling.py check vivitcli against. The two functions are verbatim from the docs; keep them
so (a fix here would measure something users do not run).
"""

from __future__ import annotations

import numpy as np


def sample_frame_indices(clip_len, frame_sample_rate, seg_len):
    """Verbatim from the transformers docs."""
    converted_len = int(clip_len * frame_sample_rate)
    end_idx = np.random.randint(converted_len, seg_len)
    start_idx = end_idx - converted_len
    indices = np.linspace(start_idx, end_idx, num=clip_len)
    indices = np.clip(indices, start_idx, end_idx - 1).astype(np.int64)
    return indices


def read_video_pyav(container, indices):
    """Verbatim from the transformers docs."""
    frames = []
    container.seek(0)
    start_index = indices[0]
    end_index = indices[-1]
    for i, frame in enumerate(container.decode(video=0)):
        if i > end_index:
            break
        if i >= start_index and i in indices:
            frames.append(frame)
    return np.stack([x.to_ndarray(format="rgb24") for x in frames])
