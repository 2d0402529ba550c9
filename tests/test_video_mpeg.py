"""MPEG-2 program streams and streams that start mid-GOP: the frames read are the ones the ffmpeg command
line (a sequential decode) yields, and the counted total is the number it outputs."""

from __future__ import annotations

import shutil

import av
import numpy as np
import pytest

import vivitcli
from vivitcli.video.decode import last_read_stats
from vivitcli.video.scan import frame_table
from tests.videos import decode_index, write_cut, write_video, write_with_ffmpeg

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg command line is not installed")


def sequential(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def assert_reads_match(path, reference, index_sets):
    for idx in index_sets:
        frames = vivitcli.read_frames(path, idx)
        for f, i in zip(frames, idx):
            np.testing.assert_array_equal(f, reference[i], err_msg=f"{path.name}: frame {i} of {idx}")


# Encoded by the ffmpeg CLI's MPEG-PS muxer: after a seek its parser stamps the keyframe with a later
# frame's time (or none) and that frame follows with the same stamp (issue 11 item 6: asked 93, got 90).
MPG = {
    "bframes.mpg": dict(width=640, height=480, args=["-bf", "2", "-g", "15"]),
    "closed_gop.mpg": dict(width=176, height=144, args=["-bf", "2", "-g", "15", "-flags", "+cgop",
                                                        "-sc_threshold", "1000000000"]),
    "no_bframes.mpg": dict(width=176, height=144, noise=20, args=["-bf", "0", "-g", "15"]),
}


@pytest.fixture(scope="module")
def mpg(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpg")
    return {name: write_with_ffmpeg(root / name, ["-c:v", "mpeg2video", "-q:v", "2", *kw["args"], "-f", "mpeg"],
                                    width=kw["width"], height=kw["height"], noise=kw.get("noise", 0))
            for name, kw in MPG.items()}


@needs_ffmpeg
@pytest.mark.parametrize("name", list(MPG))
def test_mpeg_ps_seeks_return_the_asked_frame(mpg, name):
    path = mpg[name]
    reference = sequential(path)
    table = frame_table(path)
    assert table.num_frames == len(reference) == 120
    # Just after each keyframe (where a misstamped keyframe stands in for the frame asked), one per read
    # so that each is reached by a seek; then pairs, as sampling asks.
    singles = [[int(k) + d] for k in table.key_positions[1:] for d in (1, 3) if k + d < 120]
    assert_reads_match(path, reference, singles + [[18], [93], [18, 93], [40, 110], [5, 60, 93]])
    assert [decode_index(f) for f in vivitcli.read_frames(path, [93, 18])] == [93, 18]
    keys = table.key_positions[1::3]
    frames = vivitcli.read_frames(path, keys, keyframes_only=True)
    for f, k in zip(frames, keys):
        np.testing.assert_array_equal(f, reference[k])


@needs_ffmpeg
def test_mpeg_ps_still_seeks(mpg):
    # The fix counts frames after a seek rather than decoding every file from its start.
    frames = vivitcli.read_frames(mpg["bframes.mpg"], [93])
    assert decode_index(frames[0]) == 93
    stats = last_read_stats()
    assert stats["seeks"] == 1 and not stats["sequential"] and stats["frames"] < 10


# Open GOPs cut mid-stream (issue 11 items 7 and 8): the pictures after the first keyframe that are shown
# before it reference the missing previous GOP and never come out of the decoder; nor do the pictures of an
# intra-refresh stream until its first recovery point has been rebuilt.
CUTS = {
    "mpeg2_open_gop.ts": dict(codec="mpeg2video", bframes=2),
    "x264_open_gop.ts": dict(codec="libx264", bframes=3, options={"x264-params": "open-gop=1"}),
    "mpeg2_open_gop.mpg": dict(codec="mpeg2video", bframes=2),
    # No intra frames: a decoder shows pictures only once the refresh after a recovery point has rebuilt them.
    "x264_intra_refresh.ts": dict(codec="libx264", bframes=0, options={"x264-params": "intra-refresh=1"}),
}


@pytest.fixture(scope="module")
def cuts(tmp_path_factory):
    root = tmp_path_factory.mktemp("cut")
    out = {}
    for name, kw in CUTS.items():
        src = write_video(root / f"full_{name}", num_frames=120, gop=15, **kw)
        for fraction in (0.3, 0.5):
            out[(name, fraction)] = write_cut(src, root / f"cut{fraction}_{name}", fraction)
    return out


@pytest.mark.parametrize("fraction", [0.3, 0.5])
@pytest.mark.parametrize("name", list(CUTS))
def test_streams_cut_mid_gop_count_only_output_frames(cuts, name, fraction):
    path = cuts[(name, fraction)]
    reference = sequential(path)
    n = len(reference)
    assert 20 < n < 120
    assert frame_table(path).num_frames == n
    assert vivitcli.probe(path).num_frames == n
    # Exact reads are not shifted, whatever else is asked in the same call; the last frame is readable.
    assert_reads_match(path, reference, [[0], [1], [n - 1], [n // 2, 0, n - 1], [3, n - 2], list(range(0, n, 7))])
    clip, info = vivitcli.read_clip(path, {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}},
                                    num_frames=8, return_info=True)
    assert info.num_video_frames == n and int(info.indices[-1]) < n


@needs_ffmpeg
def test_cut_capture_from_the_ffmpeg_cli(tmp_path):
    src = write_with_ffmpeg(tmp_path / "src.ts", ["-c:v", "mpeg2video", "-q:v", "2", "-bf", "2", "-g", "15"])
    path = write_cut(src, tmp_path / "cut.ts", 0.45)
    reference = sequential(path)
    assert vivitcli.probe(path).num_frames == len(reference)
    assert_reads_match(path, reference, [[len(reference) - 1], [2, 30]])
