"""Issue 11's command-line items through the real `vivit` process: what the shell adds on top of the output
library's own tests (tests/test_output_*.py test check_output/open_sink directly; not repeated here).

Refusals are run with `-m` naming a model that does not exist: a run that got as far as loading the model
would fail with "model ... not found" instead, so each refusal's message proves it came before any work.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.videos import write_not_video
from vivitcli import synthetic

TIMEOUT = 240  # a loaded 2-core machine; a run blocked on a FIFO would run into it


def _env() -> dict:
    env = dict(os.environ)
    for name in ("VIVIT_DEBUG", "VIVIT_MODEL"):
        env.pop(name, None)
    return env


def vivit(*args, cwd, input=None, **popen) -> subprocess.CompletedProcess:
    """`vivit ARGS` as a real process; stdin closed unless `input` is given."""
    kw = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([sys.executable, "-m", "vivitcli", *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd, env=_env(), **kw, **popen)


def one_line(res: subprocess.CompletedProcess, code, message: str) -> str:
    """The run ended with `code` (an int or a tuple of allowed ones) and exactly one stderr line holding
    `message`; nothing on stdout, no traceback."""
    codes = code if isinstance(code, tuple) else (code,)
    assert res.returncode in codes, (res.returncode, res.stderr)
    assert res.stdout == "" and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), res.stderr
    assert message in res.stderr, res.stderr
    return res.stderr


def listing(folder: Path) -> dict:
    """Names, types, sizes and contents of everything under `folder` (special files by type only)."""
    state = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            st = os.lstat(path)
            body = path.read_bytes() if stat.S_ISREG(st.st_mode) else (
                os.readlink(path) if stat.S_ISLNK(st.st_mode) else None)
            state[str(path.relative_to(folder))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), body)
    return state


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two tiny demo clips, and the outputs of two real runs: a classify jsonl, and an embed .npy written with
    --force through a symlink onto an existing mode-600 file."""
    root = tmp_path_factory.mktemp("hardening")
    clips = {}
    for seed, (name, label) in enumerate([("a.mp4", "moving left"), ("b.mp4", "moving right")]):
        spec = synthetic.sample_spec(seed, label=label, width=96, height=72, duration=1.5, fps=12, codec="h264")
        clips[name] = synthetic.write_clip(spec, root / name)
    runs = root / "runs"
    runs.mkdir()
    shutil.copy(clips["a.mp4"], runs / "a.mp4")
    shutil.copy(clips["b.mp4"], runs / "b.mp4")
    classify = vivit("classify", "-m", "demo", "a.mp4", "b.mp4", "-o", "labels.jsonl", "-b", "8", cwd=runs)
    assert classify.returncode == 0, classify.stderr
    store = runs / "store"
    store.mkdir()
    (store / "real.npy").write_bytes(b"an older output, owner-only")
    os.chmod(store / "real.npy", 0o600)
    (runs / "feats.npy").symlink_to(Path("store") / "real.npy")
    embed = vivit("embed", "-m", "demo", "a.mp4", "b.mp4", "-o", "feats.npy", "--force", "-b", "8", cwd=runs)
    assert embed.returncode == 0, embed.stderr
    return {"root": root, "runs": runs, "clips": clips, "no_model": str(root / "no-such-model")}


def workdir(data, tmp_path) -> Path:
    for name, path in data["clips"].items():
        shutil.copy(path, tmp_path / name)
    return tmp_path


# ------------------------------------------------------------------------------------------- --out refusals


def test_out_naming_an_input_is_refused_before_any_work(data, tmp_path):
    work = workdir(data, tmp_path)
    (work / "videos").mkdir()
    shutil.copy(work / "a.mp4", work / "videos" / "a.mp4")
    shutil.copy(work / "b.mp4", work / "clip.json")  # a video under an output's name, listed on stdin
    before = listing(work)
    no_model = data["no_model"]
    # `vivit classify -o *.mp4`: the shell made the first video the output; its suffix is no output format.
    one_line(vivit("classify", "-m", no_model, "-o", "a.mp4", "b.mp4", cwd=work), 2, "unknown file type .mp4")
    # The output is one of the files a folder walk found, even with --force and --format.
    one_line(vivit("classify", "-m", no_model, "-f", "jsonl", "--force", "-o", "videos/a.mp4", "videos", cwd=work),
             2, "--out videos/a.mp4 would overwrite the input videos/a.mp4")
    # ... or one of the paths read from stdin (NUL-separated), spelled differently.
    one_line(vivit("classify", "-m", no_model, "-0", "-", "--force", "-o", "./clip.json", cwd=work,
                   input="b.mp4\0clip.json\0"), 2, "would overwrite the input clip.json")
    assert listing(work) == before


def test_out_that_is_not_a_regular_file_is_refused(data, tmp_path):
    work = workdir(data, tmp_path)
    os.symlink("/dev/null", work / "null.jsonl")  # a device behind a name with the right suffix
    os.symlink("/dev/null", work / "null.npy")
    os.mkfifo(work / "fifo.jsonl")  # opening it to write would block until a reader comes
    (work / "folder.npy").mkdir()
    before = listing(work)
    no_model = data["no_model"]
    for command, out, what in [("classify", "null.jsonl", "device"), ("embed", "null.npy", "device"),
                               ("classify", "fifo.jsonl", "pipe"), ("embed", "folder.npy", "folder")]:
        res = vivit(command, "-m", no_model, "a.mp4", "-o", out, "--force", cwd=work)
        one_line(res, 2, f"--out {out}")
        assert what in res.stderr and "not a regular file" in res.stderr, res.stderr
    one_line(vivit("classify", "-m", no_model, "a.mp4", "-o", "fifo.jsonl", "--resume", cwd=work), 2, "pipe")
    # `-o >(cat)`: the shell passes /dev/fd/N, the write end of a pipe.
    read_end, write_end = os.pipe()
    try:
        res = vivit("classify", "-m", no_model, "a.mp4", "-f", "jsonl", "--force", "-o", f"/dev/fd/{write_end}",
                    cwd=work, pass_fds=(write_end,))
    finally:
        os.close(read_end)
        os.close(write_end)
    one_line(res, 2, "pipe")
    assert listing(work) == before


def test_out_name_too_long_is_one_line(data, tmp_path):
    work = workdir(data, tmp_path)
    name = "y" * 245 + ".jsonl"  # 251 characters
    res = vivit("classify", "-m", data["no_model"], "a.mp4", "-o", name, cwd=work)
    one_line(res, (1, 2), "file name too long")
    assert sorted(os.listdir(work)) == ["a.mp4", "b.mp4"]


def test_names_in_refusals_are_escaped_on_one_line(data, tmp_path):
    """Every refusal is one line even when the names it quotes hold a newline or an escape sequence."""
    work = workdir(data, tmp_path)
    out = "old\nrun\x1b[2J.jsonl"
    (work / out).write_text("keep\n")
    res = vivit("classify", "-m", data["no_model"], "a.mp4", "-o", out, cwd=work)
    one_line(res, 2, "error: old\\nrun\\x1b[2J.jsonl exists; pass --force")
    assert "\x1b" not in res.stderr and (work / out).read_text() == "keep\n"
    res = vivit("classify", "-m", "no\nsuch\x1b[2Jmodel", "a.mp4", cwd=work)
    one_line(res, 1, "no\\nsuch\\x1b[2Jmodel")
    assert "\x1b" not in res.stderr


def _read_only_run(work: Path, args: list[str]) -> subprocess.CompletedProcess | None:
    """Run vivit with `work/ro` read-only: a read-only mount in a user namespace (root ignores mode bits), or a
    mode-555 folder for a normal user. None when neither is possible here."""
    ro = work / "ro"
    cmd = [sys.executable, "-m", "vivitcli", *args]
    if shutil.which("unshare") and subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0:
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
        return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(ro), *cmd], capture_output=True,
                              text=True, timeout=TIMEOUT, cwd=work, env=_env(), stdin=subprocess.DEVNULL)
    if os.geteuid() == 0:
        return None
    os.chmod(ro, 0o555)
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=work, env=_env(),
                              stdin=subprocess.DEVNULL)
    finally:
        os.chmod(ro, 0o755)


def test_read_only_output_folder_is_one_line_and_keeps_what_is_there(data, tmp_path):
    work = workdir(data, tmp_path)
    (work / "ro").mkdir()
    (work / "ro" / "old.jsonl").write_text("an earlier output\n")
    for args, message in [(["classify", "-m", data["no_model"], "a.mp4", "-o", "ro/new.jsonl"], "ro/new.jsonl"),
                          (["embed", "-m", data["no_model"], "a.mp4", "-o", "ro/old.jsonl", "--force"],
                           "ro/old.jsonl")]:
        res = _read_only_run(work, args)
        if res is None:
            pytest.skip("root without user namespaces: no way to make a folder read-only for this process")
        text = one_line(res, (1, 2), message)
        assert "read-only" in text or "permission denied" in text, text
    assert sorted(os.listdir(work / "ro")) == ["old.jsonl"]
    assert (work / "ro" / "old.jsonl").read_text() == "an earlier output\n"


# ------------------------------------------------------------------------------------------- what a run writes


def test_symlinked_out_is_written_through_and_keeps_mode_600_after_force(data):
    runs = data["runs"]
    link = runs / "feats.npy"
    assert link.is_symlink() and os.readlink(link) == os.path.join("store", "real.npy")
    real = runs / "store" / "real.npy"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o600
    array = np.load(real)
    assert array.shape[0] == 2 and array.dtype == np.float32
    sidecar = json.loads((runs / "store" / "real.npy.json").read_text())
    assert [r["path"] for r in sidecar["rows"]] == ["a.mp4", "b.mp4"] and sidecar["complete"] is True
    # Nothing else left behind: no journal, lock or temp file next to the link or the target.
    assert sorted(os.listdir(runs)) == ["a.mp4", "b.mp4", "feats.npy", "labels.jsonl", "labels.jsonl.json",
                                        "store"]
    assert sorted(os.listdir(runs / "store")) == ["real.npy", "real.npy.json"]


def test_second_run_on_the_same_out_fails_at_once(data, tmp_path):
    work = workdir(data, tmp_path)
    many = work / "many"
    many.mkdir()
    for i in range(16):
        os.link(work / "a.mp4", many / f"v{i:02d}.mp4")
    lock = work / "out.jsonl.lock"
    first = subprocess.Popen([sys.executable, "-m", "vivitcli", "classify", "-m", "demo", "many", "-b", "1",
                              "-o", "out.jsonl", "-q"], cwd=work, env=_env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not lock.exists():  # the first run holds the lock from its output check on
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = vivit("classify", "-m", "demo", "b.mp4", "-o", "out.jsonl", "--force", cwd=work)
        still_running = first.poll() is None
        out, err = first.communicate(timeout=TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    one_line(second, 1, f"out.jsonl: another vivit run is writing it (pid {first.pid})")
    assert still_running, "the second run waited for the first instead of failing at once"
    assert first.returncode == 0, err
    records = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]
    assert [r["path"] for r in records] == [f"many/v{i:02d}.mp4" for i in range(16)]
    assert all(r["labels"][0]["label"] == "moving left" for r in records)
    assert not lock.exists()


# ------------------------------------------------------------------------------------------- --resume refusals


def _copy_outputs(data, tmp_path) -> Path:
    work = workdir(data, tmp_path)
    for name in ("labels.jsonl", "labels.jsonl.json"):
        shutil.copy(data["runs"] / name, work / name)
    for name in ("real.npy", "real.npy.json"):
        shutil.copy(data["runs"] / "store" / name, work / name.replace("real", "feats"))
    return work


def test_resume_of_an_embed_into_a_classify_output_is_refused(data, tmp_path):
    work = _copy_outputs(data, tmp_path)
    before = listing(work)
    res = vivit("embed", "-m", data["no_model"], "a.mp4", "b.mp4", "-o", "labels.jsonl", "--resume", cwd=work)
    one_line(res, (1, 2), "labels.jsonl: holds classify records, not embed")
    assert listing(work) == before


@pytest.mark.parametrize("command,out,damaged,garbage,message", [
    ("classify", "labels.jsonl", "labels.jsonl.json", '{"format": "vivitcli', "corrupt sidecar"),
    ("embed", "feats.npy", "feats.npy.json", "\x00\x01 not json", "corrupt sidecar"),
    ("embed", "feats.npy", "feats.npy.partial", "garbage\n", "feats.npy.partial: line 1 is not a vivit record"),
])
def test_corrupt_journal_or_sidecar_on_resume_is_one_line(data, tmp_path, command, out, damaged, garbage, message):
    work = _copy_outputs(data, tmp_path)
    (work / damaged).write_text(garbage)
    before = listing(work)
    res = vivit(command, "-m", data["no_model"], "a.mp4", "b.mp4", "-o", out, "--resume", cwd=work)
    one_line(res, 1, message)
    assert listing(work) == before


# ------------------------------------------------------------------------------------------- options and inputs


@pytest.mark.parametrize("args,message", [
    (["--seed", "-1"], "--seed -1 is out of range"),
    (["--seed", str(2**40)], f"--seed {2**40} is out of range"),
    (["--clips", "10000"], "--clips 10000 is out of range"),
    (["--sampling", "clips", "--clips", "10000"], "--clips 10000 is out of range"),
])
def test_out_of_range_seed_and_clips_are_usage_errors_before_the_model_loads(data, tmp_path, args, message):
    work = workdir(data, tmp_path)
    command = "embed" if args[0] == "--sampling" else "classify"
    one_line(vivit(command, "-m", data["no_model"], "a.mp4", *args, cwd=work), 2, message)


def test_labels_file_that_is_not_utf8_is_one_line(data, tmp_path):
    work = workdir(data, tmp_path)
    (work / "names.txt").write_bytes("moving left\nmoving right\ncaf\u00e9\n".encode("latin-1") + b"\xff\xfe\n")
    res = vivit("classify", "-m", "demo", "a.mp4", "--labels", "names.txt", cwd=work)
    one_line(res, 2, "--labels names.txt: not UTF-8")


def test_nul_separated_stdin_names_with_line_breaks_an_empty_folder_csv_and_resume(data, tmp_path):
    """`find -print0 | vivit classify -0 - -o out.csv`: names holding newlines, a carriage return, ESC, a comma
    and quotes are whole inputs; a listed folder with no videos is that input's error line and the rest runs.
    The csv quotes every such name (a lone CR was written unquoted: every reader split the row, and --resume
    died with a traceback on the file vivit itself wrote), and --resume retries only the failed inputs."""
    import csv

    work = workdir(data, tmp_path)
    names = work / "names"
    names.mkdir()
    good = {"comma,\"quote\".mp4": "moving right", "cr\rname.mp4": "moving left", "esc\x1b[2Jx.mp4": "moving right",
            "new\nline.mp4": "moving left"}
    for name, label in good.items():
        shutil.copy(work / ("a.mp4" if label == "moving left" else "b.mp4"), names / name)
    write_not_video(names / "bad\nfile.mp4")
    (work / "empty").mkdir()
    script = 'find names -name "*.mp4" -print0 | LC_ALL=C sort -z; printf "%s\\0" empty'
    command = f'({script}) | "$0" -m vivitcli classify -m demo -0 - -o out.csv -k 1 -b 8 "$@"'
    run = lambda *extra: subprocess.run(["bash", "-c", command, sys.executable, *extra], capture_output=True,
                                        text=True, timeout=TIMEOUT, cwd=work, env=_env())
    res = run()
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "\x1b" not in res.stderr and "\r" not in res.stderr
    with open(work / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    order = sorted(["bad\nfile.mp4", *good], key=str.encode)
    assert [row["path"] for row in rows] == [f"names/{n}" for n in order] + ["empty"]
    for row in rows:
        name = row["path"].removeprefix("names/")
        if name in good:
            assert (row["label"], row["error"]) == (good[name], ""), row
        else:
            assert row["label"] == "" and row["error"], row
    assert rows[0]["error"].startswith("cannot decode video") and "no video" in rows[-1]["error"]
    errors = ["error: names/bad\\nfile.mp4: cannot decode video", "error: empty: "]
    summary = "vivit: {}/{} done, 2 failed; rerun with --resume to retry the failed ones"
    lines = res.stderr.splitlines()
    assert [line[:len(e)] for line, e in zip(lines, errors)] == errors and lines[2:] == [summary.format(4, 6)]
    before = (work / "out.csv").read_bytes()

    res = run("--resume")
    assert res.returncode == 1, res.stderr
    lines = res.stderr.splitlines()
    assert lines[0] == "resume: 4 of 6 inputs already done"
    assert [line[:len(e)] for line, e in zip(lines[1:], errors)] == errors and lines[3:] == [summary.format(0, 2)]
    with open(work / "out.csv", newline="", encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == rows  # the failed ones retried (and failed again) in place
    # A csv that is not readable (an unquoted line break inside a row) is one line on --resume.
    (work / "broken.csv").write_bytes(before.replace(b'"names/cr\rname.mp4"', b"names/cr\rname.mp4"))
    one_line(vivit("classify", "-m", data["no_model"], "names", "-o", "broken.csv", "-k", "1", "--resume",
                   cwd=work), 1, "broken.csv: not a readable csv")


def test_allow_images_labels_a_picture_and_the_pixel_budget_still_refuses_a_huge_one(data, tmp_path):
    """The still-image error's hint names --allow-images (tests/test_hostile_corpus.py); with it a picture is a
    one-frame video, and a PNG claiming 15000x15000 is refused by the pixel budget instead of being decoded."""
    from tests.videos import index_frame, write_png

    work = workdir(data, tmp_path)
    write_png(work / "photo.mp4", image=index_frame(3, 64, 48))
    write_png(work / "huge.mp4", width=15000, height=15000)
    res = vivit("classify", "-m", "demo", "photo.mp4", "huge.mp4", "--allow-images", cwd=work)
    assert res.returncode == 1, res.stderr
    photo, huge = [json.loads(line) for line in res.stdout.splitlines()]
    assert photo["path"] == "photo.mp4" and photo["error"] is None and len(photo["labels"]) == 5
    assert huge["path"] == "huge.mp4" and "budget" in huge["error"]
    assert res.stderr.splitlines()[0].startswith("error: huge.mp4: ") and "budget" in res.stderr.splitlines()[0]
    assert "Traceback" not in res.stderr and len(res.stderr.splitlines()) == 2  # + the summary line


def test_a_model_that_does_not_crop_labels_clips_of_several_shapes_in_one_batch(data, tmp_path):
    """Issue 11 item 4: a preprocessor without a centre crop gives clips of each video's own aspect ratio; one
    batch of them crashed the run. Batched (-b 8) they get the labels and scores they get one at a time (-b 1)."""
    import vivitcli

    model = tmp_path / "uncropped"
    shutil.copytree(Path(vivitcli.__file__).parent / "demo" / "model", model)  # `--model demo`
    pre = json.loads((model / "preprocessor_config.json").read_text())
    pre.update(do_center_crop=False, size={"shortest_edge": 64})
    (model / "preprocessor_config.json").write_text(json.dumps(pre))
    clips = []
    for seed, (label, width, height) in enumerate([("moving left", 128, 72), ("growing", 72, 96),
                                                   ("moving up", 96, 96), ("shrinking", 96, 72)]):
        spec = synthetic.sample_spec(seed, label=label, width=width, height=height, duration=1.5, fps=12,
                                     codec="h264")
        clips.append((synthetic.write_clip(spec, tmp_path / f"{seed}.mp4"), label))
    paths = [p for p, _ in clips]
    batched = vivit("classify", "-m", model, *paths, "-b", "8", "-k", "6", cwd=tmp_path)
    single = vivit("classify", "-m", model, *paths, "-b", "1", "-k", "6", cwd=tmp_path)
    assert batched.returncode == 0 and single.returncode == 0, (batched.stderr, single.stderr)
    a = [json.loads(line) for line in batched.stdout.splitlines()]
    b = [json.loads(line) for line in single.stdout.splitlines()]
    assert [r["path"] for r in a] == [r["path"] for r in b] == paths
    for ra, rb, (_, label) in zip(a, b, clips):
        assert ra["labels"][0]["label"] == label
        scores_a = {x["label"]: x["score"] for x in ra["labels"]}
        scores_b = {x["label"]: x["score"] for x in rb["labels"]}
        assert scores_a.keys() == scores_b.keys()
        np.testing.assert_allclose([scores_a[k] for k in scores_a], [scores_b[k] for k in scores_a], atol=1e-5)
