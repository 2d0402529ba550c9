"""vivit timeline: window planning on frame timestamps, the one-pass window decoder, the library driver, the CLI
(segments, subtitles, determinism, resume after kill -9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.videos import decode_index, write_trimmed, write_video
from vivitcli import synthetic
from vivitcli.cli import app
from vivitcli.preprocess import Preprocessor
from vivitcli.video.scan import frame_table
from vivitcli.video.windows import WindowDecoder, default_window, plan_windows, window_count

ROOT = Path(__file__).resolve().parent.parent
# The stitched test video: (demo class, seconds).
STITCH = (("moving left", 4), ("growing", 5), ("moving up", 3))


def write_stitched(path, segments=STITCH, *, width: int = 160, height: int = 120, fps: int = 24, seed: int = 0,
                   gop: int = 48) -> Path:
    """One H.264 video made of demo-class clips back to back (solid backgrounds, one object each)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast", "g": str(gop)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1  # byte-identical files run to run
        pts = 0
        for k, (label, seconds) in enumerate(segments):
            spec = synthetic.sample_spec(seed + k, label=label, width=width, height=height, fps=fps,
                                         duration=seconds, codec="h264", background="solid")
            for frame in synthetic.render_frames(spec):
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                vf.pts, vf.time_base = pts, Fraction(1, fps)
                pts += 1
                out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return Path(path)


RAW = Preprocessor(do_resize=False, do_center_crop=False, do_rescale=False, do_normalize=False)


def _indices(clip) -> list[int]:
    """Frame indices coded in a RAW-preprocessed clip (float (T, 3, H, W) of 0..255 values)."""
    frames = np.asarray(clip).transpose(0, 2, 3, 1).astype(np.uint8)
    return [decode_index(f) for f in frames]


@pytest.fixture(scope="module")
def stitched(tmp_path_factory):
    return write_stitched(tmp_path_factory.mktemp("stitched") / "stitched.mp4")


# ---- planning (pure) --------------------------------------------------------------------------------------


def test_plan_keeps_the_last_partial_window_clamped():
    times = np.arange(125) / 25.0  # 5 s at 25 fps
    wins = plan_windows(times, 5.0, 4, window=2.0, stride=1.25)
    assert [(w.start, w.end) for w in wins] == [(0.0, 2.0), (1.25, 3.25), (2.5, 4.5), (3.75, 5.0)]
    assert list(wins[-1].positions) == [97, 105, 113, 121]  # frames 94..124 lie in [3.75, 5.0)
    assert window_count(5.0, 2.0, 1.5) == 3 and window_count(1.0, 2.0, 1.0) == 1
    # Positions: uniform inside [start, end) of each window, as read_clip's uniform sampling.
    assert list(wins[0].positions) == [6, 18, 31, 43]


def test_plan_start_end_and_short_video():
    times = np.arange(100) / 10.0
    wins = plan_windows(times, 10.0, 2, window=3.0, stride=2.0, start=2.5, end=7.0)
    assert [(w.start, w.end) for w in wins] == [(2.5, 5.5), (4.5, 7.0)]
    assert all(25 <= p < 70 for w in wins for p in w.positions)
    one = plan_windows(times[:5], 0.5, 3, window=2.0, stride=1.0)
    assert len(one) == 1 and (one[0].start, one[0].end) == (0.0, 0.5)


def test_plan_vfr_gap_uses_the_frame_on_screen():
    times = np.array([0.0, 0.1, 0.2, 5.0, 5.1])  # a 4.8 s stall after frame 2
    wins = plan_windows(times, 5.2, 2, window=1.0, stride=1.0)
    assert list(wins[2].positions) == [2, 2]  # [2, 3): nothing starts inside, frame 2 is still shown


def test_default_window():
    assert default_window(32, "vivit") == pytest.approx(2.133)  # 32 frames at step 2, 30 fps
    assert default_window(16, "videomae") == pytest.approx(2.133)
    assert default_window(8, "vivit") == 2.0  # never below 2 s (the demo model)


# ---- decoding ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vfr", [False, True])
def test_windows_decode_the_planned_frames(tmp_path, vfr):
    path = write_video(tmp_path / ("v.mkv" if vfr else "v.mp4"), num_frames=120, width=32, height=24, gop=30,
                       vfr=vfr)
    table = frame_table(path)
    wins = plan_windows(table.times, table.duration, 6, window=0.8, stride=0.3)
    got = list(WindowDecoder(path, wins, RAW, table=table))
    assert [w.index for w, _ in got] == list(range(len(wins)))
    for w, clip in got:
        assert _indices(clip) == [int(p) for p in w.positions]
        t = table.times[w.positions]
        assert np.all(t >= w.start - 1e-9) and np.all(t < w.end + 1e-9)
    assert wins[-1].end == pytest.approx(table.duration)


def test_windows_on_an_edit_listed_file(tmp_path):
    src = write_video(tmp_path / "src.mp4", num_frames=90, width=32, height=24, gop=30, bframes=2)
    cut = write_trimmed(src, tmp_path / "cut.mp4", start_frame=40)  # lead-in 30..39 hidden by an edit list
    table = frame_table(cut)
    assert table.num_frames == 50 and table.times[0] == 0.0
    wins = plan_windows(table.times, table.duration, 4, window=0.5, stride=0.5)
    assert wins[-1].end == pytest.approx(2.0)
    for w, clip in WindowDecoder(cut, wins, RAW, table=table):
        assert _indices(clip) == [40 + int(p) for p in w.positions]


def test_overlapping_windows_decode_each_frame_once_and_hold_few(tmp_path):
    short = write_video(tmp_path / "short.mp4", num_frames=150, width=32, height=24, gop=25, bframes=0)
    long = write_video(tmp_path / "long.mp4", num_frames=600, width=32, height=24, gop=25, bframes=0)
    peaks = []
    for path in (short, long):
        table = frame_table(path)
        wins = plan_windows(table.times, table.duration, 8, window=1.0, stride=0.25)  # 4x overlap
        dec = WindowDecoder(path, wins, RAW, table=table, ahead=2)
        assert sum(1 for _ in dec) == len(wins)
        needed = len({int(p) for w in wins for p in w.positions})
        # Every needed frame once; never more than a sequential decode of the file yields.
        assert needed <= dec.stats["frames"] <= table.num_frames
        peaks.append(dec.peak_frames)
    # Bounded by the window layout (4 overlapping windows of 8 frames, a few frames in conversion), not by
    # the length: the long file needs 4x the frames of the short one.
    assert max(peaks) <= 4 * 8 + 8


def test_window_clip_equals_read_clip(stitched):
    from vivitcli import load_model
    from vivitcli.video.read import read_clip

    model = load_model("demo")
    table = frame_table(stitched)
    wins = plan_windows(table.times, table.duration, model.num_frames, 2.0, 1.0)
    for w, clip in list(WindowDecoder(stitched, wins, model.preprocessor, table=table))[::4]:
        ref, info = read_clip(stitched, model.preprocessor, model.num_frames, start=w.start, end=w.end,
                              return_info=True)
        assert list(info.indices) == [int(p) for p in w.positions]
        assert np.array_equal(clip.numpy(), ref.numpy())


# ---- library --------------------------------------------------------------------------------------------


def test_library_records_errors_and_skip(stitched, tmp_path):
    import vivitcli
    from vivitcli.records import RECORD_KEYS, WindowRecord

    missing = str(tmp_path / "missing.mp4")
    recs = list(vivitcli.timeline([str(stitched), missing], model="demo", window=2.0, stride=1.0, top_k=2))
    assert all(isinstance(r, WindowRecord) for r in recs)
    good = [r for r in recs if r.error is None]
    assert [r.window for r in good] == list(range(11)) and good[-1].end == 12.0
    assert tuple(recs[0].to_dict()) == RECORD_KEYS["window"]
    assert recs[-1].path == missing and recs[-1].error == "no such file"
    again = list(vivitcli.timeline(str(stitched), model="demo", window=2.0, stride=1.0, top_k=2,
                                   skip={str(stitched): 5}))
    assert [r.window for r in again] == list(range(5, 11))
    assert [r.to_dict() for r in again] == [r.to_dict() for r in good[5:]]  # same batches, same numbers


def test_library_start_past_the_end_is_that_files_error(stitched):
    import vivitcli

    recs = list(vivitcli.timeline(str(stitched), model="demo", sampling=vivitcli.Sampling(start=60.0)))
    assert len(recs) == 1 and "past the end" in recs[0].error


def test_embed_windows(stitched):
    from vivitcli.window_tasks import embed_windows

    recs = list(embed_windows(str(stitched), model="demo", window=4.0, stride=4.0, pool="mean"))
    assert [(r.window, r.start, r.end) for r in recs] == [(0, 0.0, 4.0), (1, 4.0, 8.0), (2, 8.0, 12.0)]
    d = recs[0].to_dict()
    assert list(d)[:4] == ["path", "window", "start", "end"] and d["dim"] == 128
    assert recs[0].embedding.shape == (128,) and not np.allclose(recs[0].embedding, recs[1].embedding)


# ---- CLI --------------------------------------------------------------------------------------------------


def _cli(*args):
    result = CliRunner().invoke(app, ["timeline", *map(str, args)])
    return result


def test_cli_segments_follow_the_stitched_classes(stitched, tmp_path):
    import srt
    import webvtt

    out = tmp_path / "w.jsonl"
    r = _cli(stitched, "--model", "demo", "-o", out, "--segments", tmp_path / "seg.json", "--srt",
             tmp_path / "s.srt", "--vtt", tmp_path / "s.vtt", "-q")
    assert r.exit_code == 0, r.output
    windows = [json.loads(line) for line in out.read_text().splitlines()]
    stride = windows[1]["start"] - windows[0]["start"]
    assert stride == 1.0 and windows[0]["end"] == 2.0  # the demo's default window: 2 s, stride 1 s
    segs = json.loads((tmp_path / "seg.json").read_text())
    assert [s["label"] for s in segs] == [label for label, _ in STITCH]
    truth = np.cumsum([0] + [sec for _, sec in STITCH])
    for s, a, b in zip(segs, truth[:-1], truth[1:]):
        assert abs(s["start"] - a) <= stride and abs(s["end"] - b) <= stride
    assert segs[-1]["end"] == 12.0
    subs = list(srt.parse((tmp_path / "s.srt").read_text()))
    vtt = webvtt.read(str(tmp_path / "s.vtt"))
    assert len(subs) == len(vtt.captions) == len(segs)
    for s, sub, cap in zip(segs, subs, vtt.captions):
        assert sub.start.total_seconds() == pytest.approx(s["start"])
        assert sub.end.total_seconds() == pytest.approx(s["end"])
        assert cap.start_in_seconds == int(s["start"]) and cap.text.startswith(s["label"])
        assert sub.content == cap.text


def test_cli_subtitles_per_window_and_csv_segments(stitched, tmp_path):
    import webvtt

    r = _cli(stitched, "--model", "demo", "--window", "3", "--stride", "1.5", "--subtitles", "windows", "--vtt",
             tmp_path / "w.vtt", "--segments", tmp_path / "seg.csv", "--smooth", "3", "-q", "-f", "jsonl")
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    caps = webvtt.read(str(tmp_path / "w.vtt")).captions
    assert len(caps) == len(lines)
    # Cues tile the video without overlapping: each ends where the next starts.
    assert all(a.end == b.start for a, b in zip(caps, caps[1:]))
    header = (tmp_path / "seg.csv").read_text().splitlines()[0]
    assert header == "path,segment,label,start,end,score,windows"


def test_cli_deterministic_outputs(stitched, tmp_path):
    runs = []
    for k in range(2):
        d = tmp_path / f"run{k}"
        d.mkdir()
        r = _cli(stitched, "--model", "demo", "-o", d / "w.jsonl", "--segments", d / "seg.json", "--srt",
                 d / "s.srt", "--vtt", d / "s.vtt", "--html", d / "p.html", "-q", "--batch-size", "3")
        assert r.exit_code == 0, r.output
        runs.append({p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.suffix != ".lock"})
    assert runs[0] == runs[1] and len(runs[0]) >= 5


def test_cli_start_end_and_usage_errors(stitched, tmp_path):
    r = _cli(stitched, "--model", "demo", "--start", "2.5", "--end", "7", "--window", "2", "--stride", "2",
             "-f", "jsonl", "-q")
    assert r.exit_code == 0, r.output
    spans = [(d["start"], d["end"]) for d in map(json.loads, r.stdout.splitlines())]
    assert spans == [(2.5, 4.5), (4.5, 6.5), (6.5, 7.0)]
    two = _cli(stitched, stitched.with_name("other.mp4"), "--model", "demo", "--srt", tmp_path / "a.srt")
    assert two.exit_code == 2 and "{stem}" in two.output
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    same = [tmp_path / "a" / "x.mp4", tmp_path / "b" / "x.mp4"]
    clash = _cli(*same, "--model", "demo", "--vtt", tmp_path / "{stem}.vtt")
    assert clash.exit_code == 2 and "both write" in clash.output


# Slows every batch down so that kill -9 reliably lands in the middle of the file.
DRIVER = """
import sys, time
import vivitcli.window_tasks as t
compute = t.TimelineJob.compute
def slow(self, batch):
    time.sleep(0.15)
    return compute(self, batch)
t.TimelineJob.compute = slow
from vivitcli.cli import main
sys.argv[0] = "vivit"
main()
"""


def test_resume_after_kill_continues_from_the_last_window(tmp_path):
    video = write_stitched(tmp_path / "long.mp4", STITCH * 2)  # 24 s: 23 windows of 2 s every 1 s
    args = ["timeline", str(video), "--model", "demo", "--batch-size", "2", "-q", "--segments"]
    ref = tmp_path / "ref"
    ref.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # Every run in a fresh process, as users run it: the numbers must not depend on what earlier tests left
    # in this process (torch's thread count changes the last bits of a matmul).
    r = subprocess.run([sys.executable, "-m", "vivitcli", *args, str(ref / "seg.json"), "-o", str(ref / "w.jsonl")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    total = len(ref.joinpath("w.jsonl").read_text().splitlines())

    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    out = tmp_path / "w.jsonl"
    proc = subprocess.Popen([sys.executable, str(driver), *args, str(tmp_path / "seg.json"), "-o", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = out.read_bytes().count(b"\n")
    assert 5 <= written < total, proc.stderr.read().decode()
    assert not (tmp_path / "seg.json").exists()
    args.remove("-q")
    r = subprocess.run([sys.executable, "-m", "vivitcli", *args, str(tmp_path / "seg.json"), "-o", str(out),
                        "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # It continued after the last finished window, and ends identical to the uninterrupted run.
    assert f"resume: {written} windows of 1 videos already done" in r.stderr
    assert out.read_bytes() == ref.joinpath("w.jsonl").read_bytes()
    assert (tmp_path / "seg.json").read_bytes() == ref.joinpath("seg.json").read_bytes()


def test_closing_the_iterator_stops_the_decoders(stitched):
    import threading

    import vivitcli

    copy = stitched.with_name("copy.mp4")
    copy.write_bytes(stitched.read_bytes())
    records = vivitcli.timeline([str(stitched), str(copy)], model="demo", window=1.0, stride=0.25, batch_size=1)
    first = next(records)
    assert first.window == 0
    records.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(t.name == "vivit-window-decode" and t.is_alive()
                                              for t in threading.enumerate()):
        time.sleep(0.05)
    assert not any(t.name == "vivit-window-decode" and t.is_alive() for t in threading.enumerate())


def test_cli_refuses_to_replace_outputs_without_force(stitched, tmp_path):
    seg = tmp_path / "seg.json"
    seg.write_text("keep me\n")
    r = _cli(stitched, "--model", "demo", "--segments", seg, "-q", "-f", "jsonl")
    assert r.exit_code == 2 and "--force" in r.output and seg.read_text() == "keep me\n"
    r = _cli(stitched, "--model", "demo", "--segments", seg, "-q", "-f", "jsonl", "--force", "--window", "6",
             "--stride", "6")
    assert r.exit_code == 0 and json.loads(seg.read_text())[0]["path"] == str(stitched)


def test_gaps_wider_than_a_seek_are_seeked_over(tmp_path):
    path = write_video(tmp_path / "gappy.mp4", num_frames=400, width=32, height=24, gop=25, bframes=0)
    table = frame_table(path)
    wins = plan_windows(table.times, table.duration, 4, window=0.2, stride=3.0)  # 5 frames every 75
    dec = WindowDecoder(path, wins, RAW, table=table)
    for w, clip in dec:
        assert _indices(clip) == [int(p) for p in w.positions]
    assert dec.stats["seeks"] >= len(wins) - 2 and dec.stats["frames"] < table.num_frames / 2
