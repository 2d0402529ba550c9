"""read_frames(): exactly the frames a sequential decode yields, found by seeking only where it pays."""

from __future__ import annotations

import av
import numpy as np
import pytest

import vivitcli
from vivitcli.errors import VideoError
from vivitcli.video import decode
from vivitcli.video.decode import keyframe_positions, last_read_stats
from tests.videos import decode_index, vfr_timestamps, write_trimmed, write_video


def sequential(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


VIDEOS = {
    "h264_longgop.mp4": dict(num_frames=300, codec="libx264", gop=250, bframes=3),
    "h264_gop20.mp4": dict(num_frames=200, codec="libx264", gop=20, bframes=3),
    "vp9.webm": dict(num_frames=120, codec="libvpx-vp9", gop=30),
    "mpeg4.avi": dict(num_frames=90, codec="mpeg4", gop=15, bframes=2),
    "vfr.mkv": dict(num_frames=150, codec="libx264", gop=25, bframes=2, vfr=True),
    "gop25.ts": dict(num_frames=150, codec="libx264", gop=25, bframes=2),
    "odd.mp4": dict(num_frames=40, width=17, height=9, gop=10),
    "audio.mp4": dict(num_frames=60, gop=15, audio=True),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("decode")
    return {name: write_video(root / name, **kw) for name, kw in VIDEOS.items()}


@pytest.mark.parametrize("name", list(VIDEOS))
def test_random_positions_in_any_order_with_repeats(videos, name):
    path = videos[name]
    n = VIDEOS[name]["num_frames"]
    reference = sequential(path)
    assert len(reference) == n
    rng = np.random.default_rng(len(name))
    for _ in range(3):
        idx = rng.integers(0, n, size=9)
        idx[3] = idx[7]  # a repeat
        frames = vivitcli.read_frames(path, idx)
        assert frames.dtype == np.uint8 and frames.shape == (9,) + reference[0].shape
        assert [decode_index(f) for f in frames] == idx.tolist()
        # Bit-identical to the sequential decode, not merely the same index.
        for f, i in zip(frames, idx):
            np.testing.assert_array_equal(f, reference[i])


def test_long_gop_seeks_and_skips_unreferenced_frames(videos):
    path = videos["h264_longgop.mp4"]
    idx = [260, 5, 290]
    frames = vivitcli.read_frames(path, idx)
    assert [decode_index(f) for f in frames] == idx
    stats = last_read_stats()
    assert stats["seeks"] == 1 and not stats["sequential"]  # to the keyframe at 250 after serving 5
    # B-frames nobody asked for were dropped undecoded: fewer frames out than a forward decode to 290.
    assert stats["frames"] < 6 + 41


def test_dense_targets_decode_forward_without_seeking(videos):
    frames = vivitcli.read_frames(videos["h264_gop20.mp4"], [1, 3, 5, 7])
    assert [decode_index(f) for f in frames] == [1, 3, 5, 7]
    assert last_read_stats()["seeks"] == 0


def test_overshooting_seeks_are_detected_and_retried(videos, monkeypatch):
    # Aiming MPEG-TS seeks at presentation timestamps lands one GOP late; the landing check must catch it.
    monkeypatch.setattr(decode, "_DTS_SEEK_FORMATS", set())
    path = videos["gop25.ts"]
    idx = [140, 60, 110, 30]
    frames = vivitcli.read_frames(path, idx)
    assert [decode_index(f) for f in frames] == idx
    assert last_read_stats()["overshoots"] > 0


def test_mpegts_seeks_land_without_retries(videos):
    frames = vivitcli.read_frames(videos["gop25.ts"], [30, 80, 130])
    assert [decode_index(f) for f in frames] == [30, 80, 130]
    stats = last_read_stats()
    assert stats["seeks"] >= 2 and stats["overshoots"] == 0 and not stats["sequential"]


def test_vfr_positions_and_timestamps(videos):
    path = videos["vfr.mkv"]
    ts = vfr_timestamps(150)
    idx = [149, 0, 77, 78]
    frames, times = vivitcli.read_frames(path, idx, return_timestamps=True)
    assert [decode_index(f) for f in frames] == idx
    np.testing.assert_allclose(times, [ts[i] / 1000 for i in idx], atol=1e-9)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_is_applied(tmp_path, rotation):
    path = write_video(tmp_path / "rot.mp4", num_frames=12, width=64, height=32, rotation=rotation)
    frames = vivitcli.read_frames(path, [0, 11, 5])
    k = (rotation % 360) // 90
    assert frames.shape[1:3] == ((64, 32) if k % 2 else (32, 64))
    assert [decode_index(f, rotation=rotation % 360) for f in frames] == [0, 11, 5]
    # Turned the way ffmpeg's auto-rotation turns it: rot90 counter-clockwise by the display angle.
    raw = sequential(path)
    np.testing.assert_array_equal(frames[1], np.rot90(raw[11], k=k))


def test_one_frame_video(tmp_path):
    path = write_video(tmp_path / "one.mp4", num_frames=1)
    frames = vivitcli.read_frames(path, [0, 0, 0])
    assert frames.shape == (3, 48, 64, 3) and {decode_index(f) for f in frames} == {0}


def test_edit_listed_file_starts_at_the_first_shown_frame(tmp_path):
    src = write_video(tmp_path / "src.mp4", num_frames=60, gop=250, bframes=3)
    path = write_trimmed(src, tmp_path / "trim.mp4", start_frame=20)
    frames = vivitcli.read_frames(path, [0, 39, 10])
    assert [decode_index(f) for f in frames] == [20, 59, 30]


def test_keyframes_only(videos):
    path = videos["h264_gop20.mp4"]
    keys = keyframe_positions(path)
    assert keys.tolist() == list(range(0, 200, 20))
    frames = vivitcli.read_frames(path, keys[[7, 2, 9]], keyframes_only=True)
    assert [decode_index(f) for f in frames] == [140, 40, 180]
    assert last_read_stats()["frames"] <= 4
    with pytest.raises(ValueError):
        vivitcli.read_frames(path, [5], keyframes_only=True)


def test_out_of_range_and_bad_files(videos, tmp_path):
    path = videos["odd.mp4"]
    with pytest.raises(VideoError, match="frame 40 is out of range: the video has 40 frames"):
        vivitcli.read_frames(path, [0, 40])
    with pytest.raises(VideoError) as err:
        vivitcli.read_frames(tmp_path / "nope.mp4", [0])
    assert "nope.mp4" in str(err.value)
    bad = tmp_path / "text.webm"
    bad.write_text("hello")
    with pytest.raises(VideoError, match="text.webm"):
        vivitcli.read_frames(bad, [0])
    assert vivitcli.read_frames(path, []).shape[0] == 0


def test_streams_without_timestamps_are_decoded_by_counting(tmp_path):
    # A raw H.264 elementary stream carries no timestamps: frames are found by counting decoder output.
    path = write_video(tmp_path / "raw.h264", num_frames=40, gop=10, bframes=2)
    info = vivitcli.probe(path)
    assert info.num_frames == 40 and info.fps == pytest.approx(25)
    frames = vivitcli.read_frames(path, [30, 5, 12, 5])
    assert [decode_index(f) for f in frames] == [30, 5, 12, 5]
    assert last_read_stats()["sequential"]


def test_memory_holds_only_the_frames_asked_for(tmp_path):
    import tracemalloc

    path = write_video(tmp_path / "m.mp4", num_frames=120, width=320, height=240, gop=250, bframes=3)
    frame_bytes = 320 * 240 * 3
    tracemalloc.start()
    try:
        frames = vivitcli.read_frames(path, [119, 3, 60, 3])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [decode_index(f) for f in frames] == [119, 3, 60, 3]
    # The output (4 frames) plus the few in conversion, never the ~120 frames decoded on the way.
    assert peak < 12 * frame_bytes
