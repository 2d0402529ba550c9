"""sample_indices(): the documented rules, the HF docs recipe reproduced, and short videos never failing."""

from __future__ import annotations

import numpy as np
import pytest

from bench.docs_recipe import sample_frame_indices as docs_sample_frame_indices
from vivitcli import sample_indices


def test_uniform_takes_segment_centres():
    idx = sample_indices(100, 4)
    assert idx.dtype == np.int64
    assert idx.tolist() == [12, 37, 62, 87]
    assert sample_indices(300, 32).tolist() == [int((k + 0.5) * 300 / 32) for k in range(32)]


def test_uniform_within_a_range():
    idx = sample_indices(1000, 5, start=100, end=200)
    assert idx.tolist() == [110, 130, 150, 170, 190]


@pytest.mark.parametrize("seed", [0, 1, 7, 1234])
@pytest.mark.parametrize("seg_len,clip_len,rate", [(300, 16, 4), (1800, 32, 4), (200, 8, 2)])
def test_seeded_stride_reproduces_the_docs_recipe(seed, seg_len, clip_len, rate):
    np.random.seed(seed)
    expected = docs_sample_frame_indices(clip_len, rate, seg_len)
    got = sample_indices(seg_len, clip_len, "stride", frame_step=rate, seed=seed)
    assert got.tolist() == expected.tolist()


def test_stride_centred_and_from_start():
    centred = sample_indices(1000, 8, "stride", frame_step=4)
    span_start = (1000 - 32) // 2
    assert centred[0] == span_start and centred[-1] == span_start + 31
    assert np.all(np.diff(centred) >= 4) and np.all(np.diff(centred) <= 5)
    at = sample_indices(1000, 8, "stride", frame_step=4, start=500, position="start")
    assert at[0] == 500 and at[-1] == 531


def test_clips_are_evenly_spread_stride_clips():
    clips = sample_indices(1000, 8, "clips", frame_step=4, clips=3)
    assert clips.shape == (3, 8)
    starts = clips[:, 0]
    assert starts[0] > 0 and clips[-1, -1] < 999
    gaps = np.diff(starts)
    assert abs(int(gaps[0]) - int(gaps[1])) <= 1
    for row in clips:
        assert np.all(np.diff(row) >= 4)


@pytest.mark.parametrize("n", [1, 3, 10, 31])
def test_short_videos_repeat_frames_instead_of_failing(n):
    for strategy in ("uniform", "stride", "clips"):
        idx = sample_indices(n, 16, strategy, frame_step=4, clips=2)
        assert idx.min() >= 0 and idx.max() < n
        flat = idx.reshape(-1, 16)
        for row in flat:
            assert np.all(np.diff(row) >= 0)  # in order, repeats allowed
            # Every frame of a short video is used (the whole video is covered).
            if n <= 16:
                assert set(row.tolist()) == set(range(n))


def test_stride_shorter_than_span_covers_whole_video():
    idx = sample_indices(50, 16, "stride", frame_step=4)
    assert idx[0] == 0 and idx[-1] == 49


def test_invalid_arguments():
    with pytest.raises(ValueError):
        sample_indices(0, 8)
    with pytest.raises(ValueError):
        sample_indices(10, 0)
    with pytest.raises(ValueError):
        sample_indices(10, 4, "random")
