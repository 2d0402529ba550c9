"""Hostile and careless inputs (issue 11 items 3 and 16): each is one VideoError naming the file, raised
before anything large is decoded, and the next file reads normally."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import vivitcli
from vivitcli.errors import VideoError
from vivitcli.video import decode, read
from vivitcli.video.container import MAX_PIXELS
from tests.videos import (decode_index, index_frame, write_audio_with_cover, write_not_video, write_png,
                          write_video)

PRE = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("good") / "good.mp4", num_frames=20)


def refuse(path, match, **kw):
    """read_frames, read_clip and probe all refuse `path` with a message naming it and matching `match`."""
    for call in (lambda: vivitcli.read_frames(path, [0], **kw), lambda: vivitcli.read_clip(path, PRE, 4, **kw),
                 lambda: vivitcli.probe(path, **kw)):
        with pytest.raises(VideoError, match=match) as err:
            call()
        assert str(path.name) in str(err.value) and "\n" not in str(err.value)


def test_pixel_budget_refuses_large_frames_from_the_header(good):
    refuse(good, r"frames are 64x48 \(3,072 pixels\), above the budget of 3,071 pixels per frame",
           max_pixels=3071)
    assert [decode_index(f) for f in vivitcli.read_frames(good, [7], max_pixels=3072)] == [7]
    assert vivitcli.read_frames(good, [7], max_pixels=None).shape == (1, 48, 64, 3)
    with pytest.raises(ValueError):
        vivitcli.read_frames(good, [0], max_pixels=0)


def test_default_budget_holds_8k_and_refuses_a_huge_picture_before_decoding_it(tmp_path):
    assert 7680 * 4320 < MAX_PIXELS < 15000 * 15000
    # A 15000x15000 PNG named .mp4: decoding it would allocate 225 MB of grey (4.5 GB in the RGB
    # run); refused with almost nothing allocated. Measured in a fresh process (ru_maxrss only grows).
    path = write_png(tmp_path / "huge.mp4", width=15000, height=15000)
    script = (
        "import resource, sys, vivitcli\n"
        "from vivitcli.errors import VideoError\n"
        "import av, numpy\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for kw in ({}, {'allow_images': True}):\n"
        "    try:\n"
        "        vivitcli.read_frames(sys.argv[1], [0], **kw)\n"
        "    except VideoError as exc:\n"
        "        print(exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    still, budget, grown_mb = out.stdout.strip().splitlines()
    assert "huge.mp4: a still image (png), not a video" in still
    assert "huge.mp4: frame size unknown: no frame decodes within the budget of 67,108,864 pixels" in budget
    assert int(grown_mb) < 60


def test_out_of_memory_in_one_file_is_that_files_error(good, tmp_path, monkeypatch):
    def exhausted(frame):
        raise MemoryError()

    monkeypatch.setattr(decode, "to_rgb", exhausted)  # read_frames' conversion, on a worker thread
    with pytest.raises(VideoError, match=r"good.mp4: out of memory decoding its 64x48 frames"):
        vivitcli.read_frames(good, [0, 5, 9])
    monkeypatch.setattr(read, "to_rgb", exhausted)  # read_clip's
    with pytest.raises(VideoError, match=r"good.mp4: out of memory"):
        vivitcli.read_clip(good, PRE, 4)
    monkeypatch.undo()
    assert [decode_index(f) for f in vivitcli.read_frames(good, [0, 5, 9])] == [0, 5, 9]


def test_cover_art_is_not_a_video_stream(tmp_path):
    path = write_audio_with_cover(tmp_path / "song.mp3")
    refuse(path, r"song.mp3: no video stream \(found: attached picture, audio\)")


def test_still_images_under_a_video_name_are_refused_unless_allowed(tmp_path):
    png = write_png(tmp_path / "photo.mp4", image=index_frame(11, 64, 48))
    refuse(png, r"photo.mp4: a still image \(png\), not a video")
    jpeg = tmp_path / "photo2.mp4"
    from PIL import Image

    Image.fromarray(index_frame(12, 64, 48)).save(jpeg, format="JPEG", quality=95)
    refuse(jpeg, r"photo2.mp4: a still image \(mjpeg\), not a video")
    # Asked for: a one-frame video.
    assert decode_index(vivitcli.read_frames(png, [0], allow_images=True)[0]) == 11
    clip = vivitcli.read_clip(jpeg, PRE, 4, allow_images=True)
    assert clip.shape == (4, 3, 32, 32) and np.array_equal(clip[0], clip[3])
    assert vivitcli.probe(png, allow_images=True).num_frames == 1


def test_special_files_and_links(tmp_path, good):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    refuse(fifo, r"pipe.mp4: not a regular file \(a FIFO\)")  # would block forever in FFmpeg
    with pytest.raises(VideoError, match=r"/dev/zero: not a regular file \(a character device\)"):
        vivitcli.read_frames("/dev/zero", [0])
    loop_a, loop_b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    refuse(loop_a, r"a.mp4: symbolic link loop")
    dangling = tmp_path / "gone.mp4"
    dangling.symlink_to(tmp_path / "missing.mp4")
    refuse(dangling, r"gone.mp4: broken symbolic link")
    link = tmp_path / "link.mp4"
    link.symlink_to(good)
    assert [decode_index(f) for f in vivitcli.read_frames(link, [3])] == [3]


def test_control_characters_in_names_are_escaped(tmp_path):
    path = write_not_video(tmp_path / "evil\nname\x1b[2J\r.mp4")
    with pytest.raises(VideoError) as err:
        vivitcli.read_frames(path, [0])
    text = str(err.value)
    assert "evil\\nname\\x1b[2J\\r.mp4" in text
    assert not any(ch in text for ch in "\n\r\x1b")
    assert err.value.path == str(path)  # the raw name stays available to code
