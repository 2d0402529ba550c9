"""The durability layer on real files: atomic writes, permissions, symlinks, --out refusals, the output lock,
deferred signals, and file-system errors (read-only, full) as one line with earlier outputs intact."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from vivitcli import output
from vivitcli.errors import UsageError


def rec(path, error=None):
    return output.make_record("classify", path=path, labels=[] if error else [{"label": "x", "score": 0.5,
                                                                               "index": 1}], model="m", error=error)


def write_run(out, paths=("a.mp4",), fmt=None, **kw):
    fmt = fmt or output.out_format(str(out), None, kind="classify", stdout_isatty=False)
    sink = output.open_sink(fmt, str(out), kind="classify", settings={"model": "m"}, order=list(paths), **kw)
    for p in paths:
        sink.write(rec(p))
    sink.close()


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# ------------------------------------------------------------------------------------------------ atomic writes


def test_signals_deferred_holds_sigint_until_the_block_ends():
    # Python's own handler, even when the test run inherited an ignored SIGINT (started in the background).
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with output.signals_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the interpreter would have run a normal handler by now
                done.append("wrote")
        assert done == ["wrote"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, saved)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.npy"
    target.write_bytes(b"old")

    def boom(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        output.atomic_write(str(target), boom)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.npy"]


def test_replaced_output_keeps_its_mode_and_new_files_get_the_umask(tmp_path):
    out = tmp_path / "labels.jsonl"
    out.write_text("")
    os.chmod(out, 0o600)
    write_run(out, force=True)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(out) + ".json").st_mode) == 0o600  # its sidecar no more open than it
    assert json.loads(out.read_text())["path"] == "a.mp4"
    old = os.umask(0o027)
    try:
        fresh = tmp_path / "feats.npy"
        sink = output.open_sink("npy", str(fresh), kind="embed", settings={}, order=["a"], dim=2)
        sink.write(output.make_record("embed", path="a", dim=2, embedding=np.float32([1, 2])))
        sink.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(str(fresh) + ".json").st_mode) == 0o640


def test_symlinked_out_is_written_through(tmp_path):
    real = tmp_path / "store" / "real.json"
    real.parent.mkdir()
    real.write_text("[]\n")
    os.chmod(real, 0o640)
    link = tmp_path / "labels.json"
    link.symlink_to(real)
    write_run(link, paths=("a.mp4", "b.mp4"), force=True)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert [r["path"] for r in json.loads(real.read_text())] == ["a.mp4", "b.mp4"]
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    assert json.loads((tmp_path / "store" / "real.json.json").read_text())["complete"] is True
    assert sorted(os.listdir(tmp_path)) == ["labels.json", "store"]  # no journal/lock/temp left anywhere
    assert sorted(os.listdir(real.parent)) == ["real.json", "real.json.json"]


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "l.jsonl"
    link.symlink_to(tmp_path / "t.jsonl")
    write_run(link)
    assert link.is_symlink() and json.loads((tmp_path / "t.jsonl").read_text())["path"] == "a.mp4"


# ------------------------------------------------------------------------------------------------ --out refusals


def test_out_that_is_an_input_is_refused_before_anything_changes(tmp_path):
    video = tmp_path / "g.mp4"
    video.write_bytes(b"video bytes")
    hard = tmp_path / "hard.jsonl"
    os.link(video, hard)
    sym = tmp_path / "sym.jsonl"
    sym.symlink_to(video)
    for out, force in ((video, True), (hard, True), (sym, True), (tmp_path / "x.jsonl", False)):
        inputs = [str(video)] if out != tmp_path / "x.jsonl" else [str(tmp_path / "x.jsonl.json")]
        with pytest.raises(UsageError, match="would overwrite the input") as info:
            output.check_output(str(out), kind="classify", fmt="jsonl", inputs=inputs, force=force)
        one_line(info)
    with pytest.raises(UsageError, match="would overwrite the input"):  # relative spelling of the same file
        output.check_output(str(video), kind="classify", fmt="jsonl", force=True,
                            inputs=[os.path.relpath(str(video))])
    assert video.read_bytes() == b"video bytes"
    assert sorted(os.listdir(tmp_path)) == ["g.mp4", "hard.jsonl", "sym.jsonl"]


def test_not_regular_files_are_refused(tmp_path):
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    r, w = os.pipe()  # what `-o >(cat)` names: /dev/fd/N, a pipe
    try:
        cases = [(str(fifo), "pipe"), (str(folder), "folder"), ("/dev/null", "device"),
                 (f"/proc/self/fd/{w}", "pipe")]
        for out, what in cases:
            fmt = "jsonl" if out.endswith(".jsonl") else "jsonl"
            with pytest.raises(UsageError, match=what) as info:
                output.check_output(out, kind="classify", fmt=fmt, force=True)
            one_line(info)
    finally:
        os.close(r)
        os.close(w)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and folder.is_dir()


def test_symlink_loop_is_named(tmp_path):
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    with pytest.raises(output.OutputError, match="symlink loop") as info:
        output.check_output(str(loop), kind="classify", fmt="jsonl", force=True)
    one_line(info)


def test_existing_output_needs_force_or_resume(tmp_path):
    out = tmp_path / "labels.csv"
    out.write_text("keep me\n")
    with pytest.raises(UsageError) as info:
        output.check_output(str(out), kind="classify", fmt="csv")
    assert one_line(info) == f"{out} exists; pass --force to replace it or --resume to continue it"
    only_journal = tmp_path / "feats.npy"
    output.journal_path(str(only_journal))
    open(output.journal_path(str(only_journal)), "w").close()  # an interrupted run left only its journal
    with pytest.raises(UsageError, match="exists; pass --force"):
        output.check_output(str(only_journal), kind="embed", fmt="npy")
    with pytest.raises(UsageError, match="contradict"):
        output.check_output(str(out), kind="classify", fmt="csv", force=True, resume=True)
    assert out.read_text() == "keep me\n"
    write_run(out, force=True)
    assert out.read_text().startswith("path,head,rank")


def test_run_that_dies_before_its_first_record_leaves_the_old_output(tmp_path):
    for name in ("labels.jsonl", "labels.json"):
        out = tmp_path / name
        out.write_text("old\n")
        sink = output.open_sink(output.out_format(str(out), None, kind="classify", stdout_isatty=False), str(out),
                                kind="classify", force=True, settings={})
        sink.close(complete=False)
        assert out.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["labels.json", "labels.jsonl"]


def test_long_name_missing_folder_and_read_only_file(tmp_path):
    with pytest.raises(UsageError, match="file name too long") as info:
        output.check_output(str(tmp_path / ("x" * 245 + ".jsonl")), kind="classify", fmt="jsonl")
    one_line(info)
    with pytest.raises(output.OutputError, match="file name too long"):  # a folder component too long
        output.check_output(str(tmp_path / ("d" * 300) / "x.jsonl"), kind="classify", fmt="jsonl")
    with pytest.raises(UsageError, match="does not exist"):
        output.check_output(str(tmp_path / "nope" / "x.jsonl"), kind="classify", fmt="jsonl")
    write_run(tmp_path / ("y" * 200 + ".jsonl"))  # long but fits with its companions
    if os.geteuid() != 0:  # root may write a 0444 file anyway
        ro = tmp_path / "ro.jsonl"
        ro.write_text("")
        os.chmod(ro, 0o444)
        with pytest.raises(output.OutputError, match="read-only"):
            output.check_output(str(ro), kind="classify", fmt="jsonl", force=True)


def test_parquet_without_pyarrow_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(UsageError) as info:
        output.check_output(str(tmp_path / "x.parquet"), kind="classify", fmt="parquet")
    assert "pip install 'vivitcli[parquet]'" in one_line(info)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------------ lock


def test_second_sink_on_the_same_output_fails_at_once(tmp_path):
    out = str(tmp_path / "feats.npz")
    first = output.open_sink("npz", out, kind="embed", settings={}, order=["a"], dim=2)
    with pytest.raises(output.OutputError, match=f"another vivit run is writing it \\(pid {os.getpid()}\\)") as info:
        output.check_output(out, kind="embed", fmt="npz", resume=True)
    one_line(info)
    first.write(output.make_record("embed", path="a", dim=2, embedding=np.float32([1, 2])))
    first.close()
    assert not os.path.exists(output.lock_path(out))
    target = output.check_output(out, kind="embed", fmt="npz", resume=True)  # free again
    assert target.previous.done == {"a"}
    target.release()


def test_lock_between_two_processes(tmp_path):
    out = tmp_path / "labels.jsonl"
    link = tmp_path / "other-name.jsonl"
    link.symlink_to(out)  # another spelling of the same output shares the lock
    code = textwrap.dedent(f"""
        import sys
        from vivitcli import output
        t = output.check_output({str(out)!r}, kind="classify", fmt="jsonl")
        print("locked", flush=True)
        sys.stdin.readline()
        t.release()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        for name in (out, link):
            with pytest.raises(output.OutputError, match=f"pid {proc.pid}"):
                output.check_output(str(name), kind="classify", fmt="jsonl", force=True)
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    write_run(out)
    assert json.loads(out.read_text())["path"] == "a.mp4"


def test_lock_of_a_killed_run_does_not_block(tmp_path):
    out = tmp_path / "labels.jsonl"
    code = (f"import os, signal\nfrom vivitcli import output\n"
            f"t = output.check_output({str(out)!r}, kind='classify', fmt='jsonl')\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    assert os.path.exists(output.lock_path(str(out)))  # left behind, but flock died with the process
    write_run(out)
    assert not os.path.exists(output.lock_path(str(out)))


# ------------------------------------------------------------------------------------------------ file-system errors


def test_full_disk_at_close_is_one_line_and_keeps_the_previous_output(tmp_path, monkeypatch):
    out = str(tmp_path / "feats.npy")
    sink = output.open_sink("npy", out, kind="embed", settings={}, order=["a"], dim=2)
    sink.write(output.make_record("embed", path="a", dim=2, embedding=np.float32([1, 2])))
    sink.close()
    before = open(out, "rb").read()
    sink = output.open_sink("npy", out, kind="embed", settings={}, order=["a", "b"], dim=2, resume=True)
    sink.write(output.make_record("embed", path="b", dim=2, embedding=np.float32([3, 4])))
    real_fsync = os.fsync

    def full(fd):  # the only way to a full disk without a mount: fail where the kernel reports it late
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(output.OutputError, match="no space left on device") as info:
        sink.close()
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert "--resume" in one_line(info)
    assert open(out, "rb").read() == before and os.path.exists(output.journal_path(out))
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))
    resumed = output.open_sink("npy", out, kind="embed", settings={}, order=["a", "b"], dim=2, resume=True)
    assert resumed.done == {"a", "b"}
    resumed.close()
    assert np.load(out).tolist() == [[1, 2], [3, 4]]


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


REAL_FS = textwrap.dedent("""
    import json, sys
    import numpy as np
    from vivitcli import output
    out = sys.argv[1]
    try:
        sink = output.open_sink(output.out_format(out, None, kind="embed", stdout_isatty=False), out, kind="embed",
                                settings={}, order=["a"], dim=4096, resume=len(sys.argv) > 2)
        sink.write(output.make_record("embed", path="a", dim=4096, embedding=np.ones(4096, np.float32)))
        sink.close()
    except output.OutputError as err:
        print("ERR", err)
""")


@pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged user+mount namespaces (unshare -rm)")
def test_real_full_and_read_only_file_systems(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "w.py"
    script.write_text(REAL_FS)
    shell = textwrap.dedent(f"""
        set -e
        mount -t tmpfs -o size=64k tmpfs {mnt}
        {sys.executable} {script} {mnt}/small.npy
        cp {mnt}/small.npy {mnt}/before.npy
        dd if=/dev/zero of={mnt}/filler bs=4k count=64 2>/dev/null || true
        {sys.executable} {script} {mnt}/small.npy resume
        {sys.executable} {script} {mnt}/big.jsonl
        cmp {mnt}/small.npy {mnt}/before.npy && echo INTACT
        rm {mnt}/filler
        mount -o remount,ro {mnt}
        {sys.executable} {script} {mnt}/ro.npy
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    res = subprocess.run(["unshare", "-rm", "sh", "-c", shell], capture_output=True, text=True, env=env)
    lines = res.stdout.splitlines()
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    errs = [line for line in lines if line.startswith("ERR")]
    assert len(errs) == 3, lines
    assert "no space left on device" in errs[0] and "no space left on device" in errs[1]
    assert "INTACT" in lines
    assert "read-only file system" in errs[2]


def test_cli_refuses_before_any_work(tmp_path):
    """The command line calls check_output before loading a model: each refusal is one stderr line, exit 2."""
    video = tmp_path / "g.mp4"
    video.write_bytes(b"not really a video")
    existing = tmp_path / "labels.jsonl"
    existing.write_text("keep\n")
    cases = [(["-f", "jsonl", "-o", str(video), "--force"], "would overwrite the input"),
             (["-o", str(existing)], "exists; pass --force"),
             (["-o", str(tmp_path / "labels.bin")], "unknown file type .bin"),
             (["-f", "jsonl", "-o", "/dev/null", "--force"], "device")]
    for args, message in cases:
        res = subprocess.run([sys.executable, "-m", "vivitcli", "classify", "-m", "demo", str(video), *args],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        assert res.stderr.count("\n") == 1 and message in res.stderr and res.stdout == ""
    assert video.read_bytes() == b"not really a video" and existing.read_text() == "keep\n"
    assert sorted(os.listdir(tmp_path)) == ["g.mp4", "labels.jsonl"]


def test_group_cut_short_by_a_full_disk_is_removed_whole(tmp_path, monkeypatch):
    out = tmp_path / "t.csv"
    sink = output.open_sink("csv", str(out), kind="window", settings={}, order=["v1", "v2"])
    win = [output.make_record("window", path=p, window=i, start=float(i), end=i + 1.0,
                              labels=[{"label": "run", "score": 0.5, "index": 1}]) for p in ("v1", "v2")
           for i in range(3)]
    sink.write_group(win[:3])
    before = out.read_bytes()
    real_write = os.write

    def short_then_full(fd, data):  # the kernel wrote part of the group, then the disk filled up
        if len(data) > 40:
            return real_write(fd, bytes(data[:40]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(output.OutputError, match="no space left"):
        sink.write_group(win[3:])
    monkeypatch.setattr(os, "write", real_write)
    assert out.read_bytes() == before
    sink.close(complete=False)
    resumed = output.check_output(str(out), kind="window", fmt="csv", resume=True)
    assert resumed.previous.done == {"v1"}
    resumed.release()
