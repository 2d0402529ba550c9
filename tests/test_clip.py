"""read_clip(): the sampled frames, preprocessed in one pass, equal to the step-by-step path and to the HF recipe."""

from __future__ import annotations

import warnings

import av
import numpy as np
import pytest
import torch

import vivitcli
from vivitcli.video.read import read_clip, snap_to_keyframes
from vivitcli.errors import VideoError
from vivitcli.preprocess import Preprocessor
from tests.videos import vfr_timestamps, write_video
from bench.docs_recipe import read_video_pyav, sample_frame_indices

PRE = Preprocessor.from_config({"size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 32}}, "vivit")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clip") / "v.mp4", num_frames=200, width=80, height=48,
                       gop=50, bframes=3)


@pytest.mark.parametrize("sampling,kwargs", [
    ("uniform", {}), ("stride", {"frame_step": 3}), ("stride", {"seed": 5}), ("clips", {"clips": 3}),
])
def test_equals_sample_then_read_then_preprocess(video, sampling, kwargs):
    clip, info = read_clip(video, PRE, 8, sampling=sampling, return_info=True, **kwargs)
    strategy = sampling
    expected_idx = vivitcli.sample_indices(200, 8, strategy, **kwargs)
    assert np.array_equal(info.indices, expected_idx) and not info.approximate
    frames = vivitcli.read_frames(video, expected_idx.reshape(-1))
    expected = PRE(frames).reshape(clip.shape)
    # The default resizes only the cropped columns: within one grey level of the plain path, rarely off.
    step = 1 / 127.5 / 0.5
    diff = (clip - expected).abs()
    assert diff.max().item() <= step + 1e-6 and (diff > 1e-6).float().mean().item() < 0.01
    exact = read_clip(video, PRE, 8, sampling=sampling, exact=True, **kwargs)
    assert torch.equal(exact, expected)
    assert clip.dtype == torch.float32
    assert clip.shape == ((3, 8, 3, 32, 32) if sampling == "clips" else (8, 3, 32, 32))
    np.testing.assert_allclose(info.timestamps, expected_idx / 25.0, atol=1e-9)


def test_matches_the_hf_docs_recipe(video):
    """The transformers docs: sample_frame_indices + read_video_pyav + the image processor."""
    transformers = pytest.importorskip("transformers")

    np.random.seed(3)
    indices = sample_frame_indices(clip_len=8, frame_sample_rate=4, seg_len=200)
    with av.open(str(video)) as container:
        frames = read_video_pyav(container, indices)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        processor = transformers.VivitImageProcessor(size={"shortest_edge": 40}, crop_size=32)
        reference = processor(list(frames), return_tensors="pt")["pixel_values"][0]
    ours, info = read_clip(video, Preprocessor.from_config(processor.to_dict(), "vivit"), 8, sampling="stride",
                           frame_step=4, seed=3, return_info=True)
    assert info.indices.tolist() == indices.tolist()
    diff = (ours - reference).abs()
    assert diff.max().item() <= 1 / 127.5 / 0.5 + 1e-6 and diff.mean().item() < 1e-4


def test_accepts_a_config_dict_and_an_hf_processor(video):
    a = read_clip(video, PRE.to_config(), 4)
    assert torch.equal(a, read_clip(video, PRE, 4))


def test_keyframes_mode_is_marked_approximate(video):
    clip, info = read_clip(video, PRE, 6, sampling="keyframes", return_info=True)
    assert info.approximate and set(info.indices.tolist()) <= {0, 50, 100, 150}
    uniform = vivitcli.sample_indices(200, 6)
    assert info.indices.tolist() == snap_to_keyframes(uniform, np.array([0, 50, 100, 150])).tolist()
    exact = read_clip(video, PRE, 6, sampling="keyframes", exact=True)
    assert torch.equal(exact, PRE(vivitcli.read_frames(video, info.indices)))


def test_snap_to_keyframes_prefers_earlier_on_ties():
    assert snap_to_keyframes(np.array([0, 24, 25, 26, 99]), np.array([0, 50])).tolist() == [0, 0, 0, 50, 50]


def test_start_end_in_seconds_on_vfr(tmp_path):
    path = write_video(tmp_path / "vfr.mkv", num_frames=60, vfr=True)
    ts = np.array(vfr_timestamps(60)) / 1000
    clip, info = read_clip(path, PRE, 4, start=0.5, end=1.5, return_info=True)
    inside = np.flatnonzero((ts >= 0.5) & (ts < 1.5))
    assert info.indices.min() >= inside[0] and info.indices.max() <= inside[-1]
    np.testing.assert_allclose(info.timestamps, ts[info.indices], atol=1e-9)


def test_fewer_frames_than_asked(tmp_path):
    path = write_video(tmp_path / "short.mp4", num_frames=5)
    for sampling in ("uniform", "stride"):
        clip, info = read_clip(path, PRE, 16, sampling=sampling, return_info=True)
        assert clip.shape == (16, 3, 32, 32)
        assert sorted(set(info.indices.tolist())) == [0, 1, 2, 3, 4]


def test_one_frame_video(tmp_path):
    path = write_video(tmp_path / "one.mp4", num_frames=1)
    clip, info = read_clip(path, PRE, 8, return_info=True)
    assert clip.shape == (8, 3, 32, 32) and info.indices.tolist() == [0] * 8


def test_errors_name_the_file(tmp_path, video):
    with pytest.raises(VideoError, match="missing.mp4"):
        read_clip(tmp_path / "missing.mp4", PRE, 8)
    with pytest.raises(VideoError, match="v.mp4.*no frames between"):
        read_clip(video, PRE, 8, start=3.0, end=2.0)
    with pytest.raises(VideoError, match="past the end"):
        read_clip(video, PRE, 8, start=100.0)
    with pytest.raises(ValueError):
        read_clip(video, PRE, 8, sampling="random")


@pytest.mark.parametrize("codec,suffix", [("libx264", ".mp4"), ("libvpx-vp9", ".webm"), ("mpeg4", ".avi")])
def test_colour_channels_arrive_in_rgb_order(tmp_path, codec, suffix):
    # Red, green and blue vertical thirds: a BGR mix-up anywhere between the decoder and the tensor swaps
    # channels 0 and 2, which the grey index blocks of the other tests cannot show.
    w, h = 96, 32
    frame = np.zeros((h, w, 3), np.uint8)
    for c in range(3):
        frame[:, c * w // 3:(c + 1) * w // 3, c] = 255
    path = tmp_path / f"rgb{suffix}"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for _ in range(4):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    pre = Preprocessor.from_config({"do_center_crop": False, "size": {"height": h, "width": w},
                                    "do_normalize": False}, "videomae")
    clip = read_clip(path, pre, 2)                                  # (T, C, H, W) in [0, 1]
    for third in range(3):
        region = clip[:, :, 4:-4, third * w // 3 + 6:(third + 1) * w // 3 - 6].mean(dim=(0, 2, 3))
        assert region.argmax().item() == third, (third, region.tolist())
        assert region[third] > 0.8 and region.sum() - region[third] < 0.3
