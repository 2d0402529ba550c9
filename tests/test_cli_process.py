"""The CLI as a real process: stdin pipes, signals (Ctrl-C, SIGTERM, kill -9), closed stdout, light --help.

Each process pays the torch import (1-2 s), so only what needs a real process is here; the rest of the CLI
is tested in-process in test_cli_commands.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.cli_data import jsonl, make_checkpoint
from tests.videos import write_not_video, write_video
from vivitcli.cli import app

ROOT = Path(__file__).resolve().parent.parent

# Runs the real entry point with every batch slowed down, so that a signal reliably lands mid-run.
DRIVER = """
import os, sys, time
import vivitcli.pipeline as p
delay = float(os.environ.get("VIVIT_TEST_SLOW_BATCH", "0"))
original = p.Pipeline.__init__
def init(self, read, compute, **kw):
    def slow(batch):
        time.sleep(delay)
        return compute(batch)
    original(self, read, slow, **kw)
p.Pipeline.__init__ = init
from vivitcli.cli import main
sys.argv[0] = "vivit"
main()
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("proc")
    vids = root / "videos"
    vids.mkdir()
    first = write_video(vids / "v00.mp4", num_frames=20)
    good = [str(first)]
    for i in range(1, 8):
        target = vids / f"v{i:02d}.mp4"
        shutil.copy(first, target)
        good.append(str(target))
    bad = str(write_not_video(vids / "v03b.mp4"))
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    walk_order = sorted(good + [bad], key=os.path.basename)  # what a walk of the folder yields
    return {"root": root, "ckpt": str(make_checkpoint(root / "ckpt")), "good": good, "bad": bad,
            "all": walk_order, "dir": str(vids), "driver": str(driver)}


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("VIVIT_DEBUG", None)
    env.update(extra)
    return env


def _start(data, *args, slow=0.0, **popen):
    # A test run started in the background of a script inherits an ignored SIGINT, and so would the child:
    # give it the default disposition, as a CLI started from a terminal has.
    return subprocess.Popen([sys.executable, data["driver"], *map(str, args)], env=_env(VIVIT_TEST_SLOW_BATCH=str(slow)),
                            cwd=data["root"], text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)


def _wait_for_lines(path: Path, n: int, proc, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.returncode} {proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting for output")


def test_stdin_list_through_a_pipe(data):
    listing = "\n".join([data["good"][2], data["bad"], data["good"][0]]) + "\n"
    proc = subprocess.run([sys.executable, "-m", "vivitcli", "classify", "-", "-m", data["ckpt"]], input=listing,
                          capture_output=True, text=True, env=_env(), cwd=data["root"])
    assert proc.returncode == 1
    assert [r["path"] for r in jsonl(proc.stdout)] == [data["good"][2], data["bad"], data["good"][0]]
    assert proc.stderr.splitlines()[0].startswith(f"error: {data['bad']}: ")
    assert "Traceback" not in proc.stderr


def test_shell_loop_gives_what_one_call_gives(data, tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    shutil.copy(data["good"][0], folder / "x.mp4")
    write_video(folder / "y.mp4", num_frames=12, width=40, height=40)
    loop = subprocess.run(
        ["bash", "-c", f'for f in "$1"/*.mp4; do "{sys.executable}" -m vivitcli classify "$f" -m "$2"; done', "-",
         str(folder), data["ckpt"]], capture_output=True, text=True, env=_env(), check=True)
    one = CliRunner().invoke(app, ["classify", str(folder), "-m", data["ckpt"], "-b", "2"])
    a, b = jsonl(loop.stdout), jsonl(one.stdout)
    assert [r["path"] for r in a] == [r["path"] for r in b] == [str(folder / "x.mp4"), str(folder / "y.mp4")]
    for ra, rb in zip(a, b):
        assert [x["index"] for x in ra["labels"]] == [x["index"] for x in rb["labels"]]
        np.testing.assert_allclose([x["score"] for x in ra["labels"]], [x["score"] for x in rb["labels"]], atol=2e-6)
        assert ra["frame_indices"] == rb["frame_indices"]


def test_ctrl_c_mid_run_leaves_a_valid_npy_and_resume_finishes_it(data, tmp_path):
    out = tmp_path / "feats.npy"
    proc = _start(data, "embed", data["dir"], "-m", data["ckpt"], "-b", "1", "--workers", "1", "--out", out,
                  slow=0.5, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_lines(tmp_path / "feats.npy.partial", 3, proc)  # the journal's header line + 2 records
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stdout == "" and "interrupted" in stderr and "Traceback" not in stderr
    meta = json.loads((tmp_path / "feats.npy.json").read_text())
    done = np.load(out)
    assert meta["complete"] is False and 2 <= done.shape[0] < len(data["good"])
    assert done.shape == tuple(meta["shape"]) and len(meta["rows"]) == done.shape[0]
    assert sorted(os.listdir(tmp_path)) == ["feats.npy", "feats.npy.json"]  # no temp files, no journal left

    r = CliRunner().invoke(app, ["embed", data["dir"], "-m", data["ckpt"], "--out", str(out), "--resume"])
    assert r.exit_code == 1  # the broken file is retried and still fails
    meta = json.loads((tmp_path / "feats.npy.json").read_text())
    full = np.load(out)
    assert meta["complete"] is True and [row["path"] for row in meta["rows"]] == data["good"]
    np.testing.assert_array_equal(full[: done.shape[0]], done)
    # Identical copies of one video: every row (before and after the interruption) is the same vector.
    np.testing.assert_allclose(full, np.repeat(full[:1], len(full), 0), atol=1e-5)


def test_sigterm_mid_run_writes_the_json_array_so_far(data, tmp_path):
    out = tmp_path / "labels.json"
    proc = _start(data, "classify", data["dir"], "-m", data["ckpt"], "-b", "1", "--workers", "1", "--out", out,
                  slow=0.5, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_lines(tmp_path / "labels.json.partial", 3, proc)  # the journal's header line + 2 records
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in stderr
    records = json.loads(out.read_text())
    assert 2 <= len(records) < 9 and [r["path"] for r in records] == data["all"][: len(records)]
    assert sorted(os.listdir(tmp_path)) == ["labels.json", "labels.json.json"]  # the sidecar says complete: false


def test_kill_9_then_resume_appends_without_duplicates(data, tmp_path):
    out = tmp_path / "labels.jsonl"
    proc = _start(data, "classify", data["dir"], "-m", data["ckpt"], "-b", "1", "--workers", "1", "--out", out,
                  slow=0.5, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_lines(out, 2, proc)
    proc.kill()
    proc.communicate(timeout=60)
    before = jsonl(out.read_text())  # whole lines only: every line parses
    assert 2 <= len(before) < 9
    r = CliRunner().invoke(app, ["classify", data["dir"], "-m", data["ckpt"], "--out", str(out), "--resume"])
    assert r.exit_code == 1
    after = jsonl(out.read_text())
    paths = [x["path"] for x in after]
    assert sorted(paths) == sorted(data["good"] + [data["bad"]]) and len(paths) == len(set(paths))
    kept = [r for r in before if r["error"] is None]  # a failed record is dropped and retried
    assert after[: len(kept)] == kept


def test_closed_stdout_ends_quietly(data):
    proc = _start(data, "classify", data["dir"], "-m", data["ckpt"], "-b", "1", "--workers", "1", slow=0.2,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # like `vivit classify dir | head -1`
    stderr = proc.stderr.read()
    proc.wait(timeout=60)
    assert json.loads(first)["path"] == data["good"][0]
    assert proc.returncode == 141 and "Traceback" not in stderr and "BrokenPipe" not in stderr


def _imported(args, env_extra=None) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `vivit ARGS` as its console script does, and the top-level names of every module it imported."""
    code = "import sys; sys.argv[0] = 'vivit'; from vivitcli.cli import main; main()"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], capture_output=True,
                          text=True, env=_env(**(env_extra or {})))
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return proc, names


@pytest.mark.parametrize("args", [["--help"], ["classify", "--help"], ["embed", "--help"]])
def test_help_never_imports_torch_or_av(args):
    proc, names = _imported(args)
    assert proc.returncode == 0 and "Usage" in proc.stdout
    assert "<list[str]>" not in proc.stdout and "<bool>" not in proc.stdout and "<int>" not in proc.stdout
    if args != ["--help"]:
        assert "INPUTS..." in proc.stdout and "INTEGER" in proc.stdout  # plain words, as click writes them
    assert "typer" in names  # the import log works
    assert not names & {"torch", "av", "numpy", "transformers"}

