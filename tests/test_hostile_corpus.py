"""The corpus run of issue 11, end to end: `vivit classify` and `vivit embed` as real processes over one folder
of good clips and hostile files, as a careless or hostile user would point them at it.

Every hostile file must be one `error: PATH: reason` line on stderr (control characters escaped, no
traceback), every good clip labelled with its true class by `--model demo`, one record per input in input
order, and the folder itself unchanged (checksums and listing before and after). A FIFO in the folder must
not hang the run: each process runs under a timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.videos import index_frame, write_audio_only, write_empty, write_not_video, write_png, write_truncated
from vivitcli import synthetic

TIMEOUT = 240  # generous for a loaded 2-core machine; a hang on the FIFO would run into it
BATCH = "8"

# (file name, class, width, height): tiny clips of four of the six demo classes, two aspect ratios, and one
# clip inside a folder whose name looks like a video file (a folder is walked, whatever its name).
GOOD = [("good-left.mp4", "moving left", 96, 72), ("good-right.mp4", "moving right", 128, 72),
        ("good-grow.mp4", "growing", 72, 96), ("good-shrink.mp4", "shrinking", 96, 96),
        ("x.mp4/inside.mp4", "moving up", 96, 72),
        ("good\x1b]0;pwned\x07 title.mp4", "moving down", 96, 72)]  # a terminal title-setting sequence

EVIL = "evil\nname\x1b[31m.mp4"  # a newline and an ANSI colour sequence in the name

# file name -> the reason its error line must give (regex, matched after "error: PATH: ").
HOSTILE = {
    "truncated.mp4": r"cannot decode video",
    "empty.mp4": r"empty file",
    "text.mp4": r"cannot decode video",
    "still.mp4": r"a still image \(png\), not a video \(--allow-images reads it",
    # A PNG whose header claims 15000x15000 (94 bytes on disk): decoding it would allocate 225 MB of grey.
    "huge-png.mp4": r"a still image \(png\), not a video",
    # A real video format (YUV4MPEG2, rawvideo) claiming 15000x15000 frames: the pixel budget refuses it
    # from the header, before a frame is read.
    "huge-y4m.mp4": r"frames are 15000x15000 \(225,000,000 pixels\), above the budget of [\d,]+ pixels per frame",
    "audio.mp4": r"no video stream \(found: audio\)",
    "cover.mp4": r"no video stream \(found: attached picture, audio\)",
    "fifo.mp4": r"not a regular file \(a FIFO\)",
    "zero.mp4": r"not a regular file \(a character device\)",  # a symlink to /dev/zero
    "loop.mp4": r"symbolic link loop",
    "dangling.mp4": r"broken symbolic link",
    EVIL: r"cannot decode video",
}


def _env() -> dict:
    env = dict(os.environ)
    for name in ("VIVIT_DEBUG", "VIVIT_MODEL"):
        env.pop(name, None)
    return env


def vivit(*args, cwd) -> subprocess.CompletedProcess:
    """The installed CLI as a user runs it, stdin closed, under a timeout."""
    return subprocess.run([sys.executable, "-m", "vivitcli", *map(str, args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT, cwd=cwd, env=_env())


def snapshot(folder: Path) -> dict:
    """Everything a run could change in `folder` without reading special files: entry types, modes, sizes,
    link targets, file contents (sha256) and modification times (a created and removed temp file moves a
    folder's mtime)."""
    state = {}
    for root, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            path = os.path.join(root, name)
            st = os.lstat(path)
            entry = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)]
            if stat.S_ISLNK(st.st_mode):
                entry.append(os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                entry += [st.st_size, st.st_mtime_ns, hashlib.sha256(Path(path).read_bytes()).hexdigest()]
            elif stat.S_ISDIR(st.st_mode):
                entry.append(st.st_mtime_ns)
            state[os.path.relpath(path, folder)] = entry
    state["."] = os.stat(folder).st_mtime_ns
    return state


def write_cover_with_ffmpeg(path: Path) -> None:
    """An MP4 holding AAC audio and one MJPEG picture flagged attached_pic (cover art), by the ffmpeg CLI."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-f", "lavfi", "-i", "color=c=red:s=64x48:d=1", "-map", "0:a", "-map", "1:v", "-frames:v", "1",
                    "-c:a", "aac", "-c:v", "mjpeg", "-disposition:v:0", "attached_pic", str(path)],
                   check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    folder = root / "videos"
    (folder / "x.mp4").mkdir(parents=True)
    (folder / "y.mp4").mkdir()  # an empty folder with a video's name: walked, holds nothing, no record
    good = {}
    for seed, (name, label, width, height) in enumerate(GOOD):
        spec = synthetic.sample_spec(seed, label=label, width=width, height=height, duration=1.5, fps=12,
                                     codec="h264")
        good[str(folder / name)] = label
        synthetic.write_clip(spec, folder / name)
    write_truncated(folder / "good-left.mp4", folder / "truncated.mp4", 0.4)
    write_empty(folder / "empty.mp4")
    write_not_video(folder / "text.mp4")
    write_png(folder / "still.mp4", image=index_frame(3, 64, 48))
    write_png(folder / "huge-png.mp4", width=15000, height=15000)
    (folder / "huge-y4m.mp4").write_bytes(b"YUV4MPEG2 W15000 H15000 F12:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(4096))
    write_audio_only(folder / "audio.mp4")
    hostile = dict(HOSTILE)
    if shutil.which("ffmpeg"):
        write_cover_with_ffmpeg(folder / "cover.mp4")
    else:
        del hostile["cover.mp4"]
    os.mkfifo(folder / "fifo.mp4")
    os.symlink("/dev/zero", folder / "zero.mp4")
    os.symlink("loop.mp4", folder / "loop.mp4")
    os.symlink("missing.mp4", folder / "dangling.mp4")
    write_not_video(folder / EVIL)
    hostile = {str(folder / name): reason for name, reason in hostile.items()}
    # The documented order: each folder's files sorted by their path relative to it, component by component.
    order = sorted([*good, *hostile], key=lambda p: os.path.relpath(p, folder).split(os.sep))
    return {"root": root, "folder": folder, "good": good, "hostile": hostile, "order": order}


def escaped(path: str) -> str:
    """How a message must show a name: control characters spelled out as Python writes them (done here, not
    by the code under test)."""
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(named.get(ch, f"\\x{ord(ch):02x}") if ord(ch) < 32 or ord(ch) == 127 else ch for ch in path)


def check_stderr(stderr: str, corpus) -> None:
    """One `error: PATH: reason` line per hostile file, in input order, then the summary line; nothing else."""
    assert "Traceback" not in stderr
    assert "\x1b" not in stderr and "\r" not in stderr and "\x07" not in stderr
    lines = stderr.splitlines()
    hostile = [p for p in corpus["order"] if p in corpus["hostile"]]
    total = len(corpus["order"])
    assert len(lines) == len(hostile) + 1, stderr
    for line, path in zip(lines, hostile):
        prefix = f"error: {escaped(path)}: "
        assert line.startswith(prefix), (line, path)
        assert re.match(corpus["hostile"][path], line[len(prefix):]), line
    assert lines[-1].startswith(f"vivit: {total - len(hostile)}/{total} done, {len(hostile)} failed"), lines[-1]


def test_classify_the_corpus(corpus):
    before = snapshot(corpus["folder"])
    out = corpus["root"] / "out.jsonl"
    res = vivit("classify", "-m", "demo", corpus["folder"], "-o", out, "-b", BATCH, cwd=corpus["root"])
    assert res.returncode == 1, res.stderr
    assert res.stdout == ""
    check_stderr(res.stderr, corpus)
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["path"] for r in records] == corpus["order"]  # one per input, raw names kept in the data
    for rec in records:
        if rec["path"] in corpus["good"]:
            assert rec["error"] is None
            assert rec["labels"][0]["label"] == corpus["good"][rec["path"]], rec
        else:
            assert rec["labels"] == [] and rec["error"] and re.match(corpus["hostile"][rec["path"]], rec["error"])
    assert json.loads((corpus["root"] / "out.jsonl.json").read_text())["complete"] is True
    assert snapshot(corpus["folder"]) == before
    assert sorted(os.listdir(corpus["root"])) == ["out.jsonl", "out.jsonl.json", "videos"]

    # --resume retries only the failed inputs (the FIFO again without hanging), keeps the finished records
    # as they were, and ends with the same one record per input in order.
    res = vivit("classify", "-m", "demo", corpus["folder"], "-o", out, "-b", BATCH, "--resume", cwd=corpus["root"])
    assert res.returncode == 1, res.stderr
    first, *rest = res.stderr.splitlines(keepends=True)
    n_good, n_bad = len(corpus["good"]), len(corpus["hostile"])
    assert first == f"resume: {n_good} of {n_good + n_bad} inputs already done\n"
    assert len(rest) == n_bad + 1 and "Traceback" not in res.stderr, res.stderr
    assert rest[-1].startswith(f"vivit: 0/{n_bad} done, {n_bad} failed")
    assert [line.split(": ")[1] for line in rest[:-1]] == [escaped(p) for p in corpus["order"]
                                                           if p in corpus["hostile"]]
    again = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["path"] for r in again] == corpus["order"]
    assert [r for r in again if r["error"] is None] == [r for r in records if r["error"] is None]
    assert snapshot(corpus["folder"]) == before


def test_embed_the_corpus(corpus, tmp_path):
    before = snapshot(corpus["folder"])
    out = tmp_path / "feats.npy"
    res = vivit("embed", "-m", "demo", corpus["folder"], "-o", out, "-b", BATCH, cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert res.stdout == ""
    check_stderr(res.stderr, corpus)
    sidecar = json.loads((tmp_path / "feats.npy.json").read_text(encoding="utf-8"))
    good = [p for p in corpus["order"] if p in corpus["good"]]
    assert [r["path"] for r in sidecar["rows"]] == good
    assert [r["row"] for r in sidecar["rows"]] == list(range(len(good)))
    assert [e["path"] for e in sidecar["errors"]] == [p for p in corpus["order"] if p in corpus["hostile"]]
    array = np.load(out)
    assert array.dtype == np.float32 and array.shape == (len(good), sidecar["shape"][1])
    assert list(array.shape) == sidecar["shape"] and sidecar["complete"] is True
    assert np.isfinite(array).all() and len({row.tobytes() for row in array}) == len(good)
    assert snapshot(corpus["folder"]) == before
    assert sorted(os.listdir(tmp_path)) == ["feats.npy", "feats.npy.json"]


def test_table_on_a_terminal_shows_names_escaped(corpus, tmp_path):
    """The table format is for people at a terminal: a name must not move the cursor, clear the screen or set
    the window title there (JSON and CSV keep the raw name: they are data)."""
    good_evil = next(p for p in corpus["good"] if "\x1b" in p)
    bad_evil = str(corpus["folder"] / EVIL)
    res = vivit("classify", "-m", "demo", "-f", "table", bad_evil, good_evil, "-k", "1", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert not any(ch in res.stdout for ch in "\x1b\x07\r")
    assert res.stdout.splitlines() == [escaped(bad_evil), res.stdout.splitlines()[1], escaped(good_evil),
                                       res.stdout.splitlines()[3]]
    assert res.stdout.splitlines()[1].startswith("  error: cannot decode video")
    assert res.stdout.splitlines()[3].endswith(f"  {corpus['good'][good_evil]}")


def _undecodable_name_folder(root: Path) -> Path | None:
    folder = root / "bytes"
    folder.mkdir()
    try:
        good = os.path.join(os.fsencode(folder), b"caf\xe9.mp4")  # Latin-1 bytes: not valid UTF-8
        spec = synthetic.sample_spec(7, label="moving down", width=96, height=72, duration=1.5, fps=12,
                                     codec="h264")
        synthetic.write_clip(spec, os.fsdecode(good))
        Path(os.fsdecode(os.path.join(os.fsencode(folder), b"bad\xff.mp4"))).write_text("not a video\n")
    except (OSError, UnicodeError):
        return None  # a file system that only takes UTF-8 names
    return folder


def test_names_that_are_not_utf8_are_kept_and_do_not_crash_the_output(tmp_path):
    folder = _undecodable_name_folder(tmp_path)
    if folder is None:
        pytest.skip("this file system refuses names that are not UTF-8")
    out = tmp_path / "out.jsonl"
    res = vivit("classify", "-m", "demo", folder, "-o", out, "-b", BATCH, cwd=tmp_path)
    assert "Traceback" not in res.stderr
    assert res.returncode == 1
    assert res.stderr.startswith(f"error: {folder}/bad\\udcff.mp4: cannot decode video")
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    # The name survives the round trip: os.fsencode gives back the bytes on disk.
    assert [os.fsencode(r["path"]) for r in records] == [os.path.join(os.fsencode(folder), n)
                                                         for n in (b"bad\xff.mp4", b"caf\xe9.mp4")]
    assert records[0]["error"] and records[1]["labels"][0]["label"] == "moving down"


def _ffmpeg_frame_count(path: Path) -> int:
    """Frames the ffmpeg CLI decodes from `path` (the oracle), read from its framemd5 lines."""
    res = subprocess.run(["ffmpeg", "-v", "quiet", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
                         capture_output=True, text=True, timeout=60)
    return sum(1 for line in res.stdout.splitlines() if line and not line.startswith("#"))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI (remux and oracle)")
def test_a_download_cut_short_with_its_index_first_is_labelled_from_the_frames_it_has(tmp_path):
    spec = synthetic.sample_spec(0, label="moving left", width=96, height=72, duration=1.5, fps=12, codec="h264")
    whole = tmp_path / "whole.mp4"
    synthetic.write_clip(spec, tmp_path / "plain.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "plain.mp4"), "-c", "copy", "-movflags",
                    "+faststart", str(whole)], check=True, timeout=60)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.9)])
    decodable = _ffmpeg_frame_count(cut)
    assert 2 <= decodable < _ffmpeg_frame_count(whole)
    res = vivit("classify", "-m", "demo", cut, cwd=tmp_path)
    assert "Traceback" not in res.stderr
    assert res.returncode == 0, res.stderr
    record = json.loads(res.stdout)
    assert record["labels"][0]["label"] == "moving left"
    assert max(record["frame_indices"]) < decodable
