"""probe(): exact frame counts on every container, display geometry, and one-line errors naming the file."""

from __future__ import annotations

import av
import pytest

import vivitcli
from vivitcli.errors import VideoError
from tests.videos import (decode_index, vfr_timestamps, write_audio_only, write_empty, write_not_video,
                          write_trimmed, write_truncated, write_video)


def sequential_count(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.parametrize("name,kwargs", [
    ("h264_bframes.mp4", dict(num_frames=37, codec="libx264", gop=250, bframes=3)),
    ("vp9.webm", dict(num_frames=23, codec="libvpx-vp9", gop=10)),
    ("mpeg4.avi", dict(num_frames=19, codec="mpeg4", gop=8, bframes=2)),
    ("mpeg4.mp4", dict(num_frames=18, codec="mpeg4", gop=8, bframes=0)),
    ("h264.ts", dict(num_frames=29, gop=10)),
    ("vfr.mkv", dict(num_frames=21, vfr=True)),
    ("one.mp4", dict(num_frames=1)),
    ("odd.mp4", dict(num_frames=7, width=17, height=9)),
])
def test_probe_counts_exactly(tmp_path, name, kwargs):
    path = write_video(tmp_path / name, **kwargs)
    info = vivitcli.probe(path)
    assert info.num_frames == kwargs["num_frames"] == sequential_count(path)
    assert info.width == kwargs.get("width", 64) and info.height == kwargs.get("height", 48)
    assert info.rotation == 0
    assert info.duration > 0 and info.fps > 0


def test_containers_that_report_no_count_are_counted_from_packets(tmp_path):
    path = write_video(tmp_path / "a.webm", num_frames=12, codec="libvpx-vp9")
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0  # why the packet scan exists
    info = vivitcli.probe(path)
    assert (info.num_frames, info.count_source, info.codec) == (12, "packets", "vp9")


def test_edit_list_lead_in_is_not_counted(tmp_path):
    src = write_video(tmp_path / "src.mp4", num_frames=40, gop=250, bframes=2)
    trimmed = write_trimmed(src, tmp_path / "trimmed.mp4", start_frame=15)
    with av.open(str(trimmed)) as c:
        shown = [decode_index(f) for f in c.decode(video=0)]
        assert c.streams.video[0].frames == 40  # the container over-counts
    assert shown[0] == 15
    assert vivitcli.probe(trimmed).num_frames == len(shown) == 25


def test_vfr_fps_and_duration_come_from_timestamps(tmp_path):
    path = write_video(tmp_path / "vfr.mkv", num_frames=30, vfr=True)
    ts = vfr_timestamps(30)
    info = vivitcli.probe(path)
    assert info.num_frames == 30
    # The last frame lasts as long as the median gap; its start is exact.
    assert info.duration == pytest.approx(ts[-1] / 1000, abs=0.1)
    assert info.fps == pytest.approx(30 / info.duration)
    assert abs(info.fps - 25) > 2  # the stream's nominal 25 fps is not what the file holds


@pytest.mark.parametrize("rotation,expected", [(90, 90), (-90, 270), (180, 180)])
def test_rotation_gives_display_size(tmp_path, rotation, expected):
    path = write_video(tmp_path / "r.mp4", num_frames=3, width=64, height=32, rotation=rotation)
    info = vivitcli.probe(path)
    assert info.rotation == expected
    if expected in (90, 270):
        assert (info.width, info.height) == (32, 64)
    else:
        assert (info.width, info.height) == (64, 32)


def test_audio_is_reported(tmp_path):
    assert vivitcli.probe(write_video(tmp_path / "a.mp4", num_frames=10, audio=True)).has_audio
    assert not vivitcli.probe(write_video(tmp_path / "b.mp4", num_frames=10)).has_audio


def test_bad_files_raise_video_error_naming_the_file(tmp_path):
    good = write_video(tmp_path / "good.mp4", num_frames=30)
    cases = {
        write_empty(tmp_path / "empty.mp4"): "empty",
        write_not_video(tmp_path / "notes.mp4"): "cannot decode",
        write_truncated(good, tmp_path / "cut.mp4", 0.5): "cannot decode",
        write_audio_only(tmp_path / "song.m4a"): "no video stream",
        tmp_path / "missing.mp4": "no such file",
        tmp_path: "directory",
    }
    for path, reason in cases.items():
        with pytest.raises(VideoError) as err:
            vivitcli.probe(path)
        message = str(err.value)
        assert str(path) in message and reason in message and "\n" not in message
