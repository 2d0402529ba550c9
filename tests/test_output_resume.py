"""--resume: journals and sidecars on real files, settings compared, record kinds kept apart, input order
restored, completeness markers, every embed output with its sidecar, and the (0, D) all-failed embed."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vivitcli import output
from vivitcli.errors import UsageError

from tests.output_records import classify_record as rec

SETTINGS = {"model": "m", "sampling": "uniform", "frames": 8, "top_k": 5, "seed": None}


def emb(path, vec):
    return output.make_record("embed", path=path, dim=len(vec), pool="default", embedding=np.asarray(vec, np.float32),
                              model="m", frame_indices=[0, 1], timestamps=[0.0, 0.5], approximate=False)


def sink(fmt, out, kind="classify", settings=SETTINGS, **kw):
    return output.open_sink(fmt, str(out), kind=kind, settings=settings, **kw)


def paths_in(out, fmt):
    text = open(out).read()
    if fmt == "jsonl":
        return [json.loads(line)["path"] for line in text.splitlines()]
    if fmt == "csv":
        return [r["path"] for r in csv.DictReader(io.StringIO(text))]
    return [r["path"] for r in json.loads(text)]


def test_embedding_file_sidecar_and_journal_recovery(tmp_path):
    out = str(tmp_path / "feats.npy")
    order = ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]
    s = sink("npy", out, "embed", order=order, dim=3)
    s.write(emb("b.mp4", [0.1, 2.0, -3.5]))
    s.write(emb("a.mp4", [1.0, 1.0, 1.0]))
    # A run killed with SIGKILL: no close(), a torn record at the end of the journal, no final file.
    with open(output.journal_path(out), "ab") as f:
        f.write(b'{"path": "c.mp4", "embed')
    assert not os.path.exists(out)
    s.target.release()  # (the killed process's lock would have died with it)
    resumed = sink("npy", out, "embed", order=order, dim=3, resume=True)
    assert resumed.done == {"a.mp4", "b.mp4"}
    resumed.write(emb("d.mp4", [4.0, 5.0, 6.0]))
    resumed.write(output.make_record("embed", path="c.mp4", model="m", error="empty file"))
    resumed.close(complete=True)
    array = np.load(out)
    meta = json.load(open(output.sidecar_path(out)))
    assert array.dtype == np.float32 and array.shape == (3, 3)
    assert [r["path"] for r in meta["rows"]] == ["a.mp4", "b.mp4", "d.mp4"]  # input order, not finishing order
    np.testing.assert_array_equal(array[1], np.float32([0.1, 2.0, -3.5]))  # exact after the jsonl journal
    assert meta["errors"] == [{"path": "c.mp4", "error": "empty file"}] and meta["complete"] is True
    assert meta["settings"] == SETTINGS and meta["kind"] == "embed"
    assert sorted(os.listdir(tmp_path)) == ["feats.npy", "feats.npy.json"]


@pytest.mark.parametrize("key,value,flag", [("model", "other", "--model"), ("top_k", 3, "--top-k"),
                                            ("frames", 16, "--frames"), ("seed", 7, "--seed"),
                                            ("stride", 2.0, "--stride")])
def test_resume_refuses_changed_settings_and_leaves_files_alone(tmp_path, key, value, flag):
    out = str(tmp_path / "feats.npz")
    s = sink("npz", out, "embed", order=["a.mp4"], dim=2)
    s.write(emb("a.mp4", [1.0, 2.0]))
    s.close(complete=False)
    before = {name: open(tmp_path / name, "rb").read() for name in os.listdir(tmp_path)}
    changed = dict(SETTINGS, **{key: value})
    with pytest.raises(UsageError) as info:
        sink("npz", out, "embed", settings=changed, resume=True, dim=2)
    text = str(info.value)
    assert f"cannot resume {out}: it was made with" in text and flag in text and "\n" not in text
    assert {name: open(tmp_path / name, "rb").read() for name in os.listdir(tmp_path)} == before
    with np.load(out) as z:
        assert z["paths"].tolist() == ["a.mp4"] and z["embeddings"].shape == (1, 2)
    assert json.load(open(out + ".json"))["complete"] is False
    # check_output can compare already, before the model loads
    with pytest.raises(UsageError, match=flag):
        output.check_output(out, kind="embed", fmt="npz", resume=True, settings=changed)


def test_resume_refuses_another_width(tmp_path):
    out = str(tmp_path / "f.npy")
    s = sink("npy", out, "embed", order=["a"], dim=2)
    s.write(emb("a", [1.0, 2.0]))
    s.close()
    with pytest.raises(UsageError, match="2-wide embeddings, this model gives 3"):
        sink("npy", out, "embed", resume=True, dim=3)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_resume_drops_failures_and_torn_lines_and_keeps_input_order(tmp_path, fmt):
    out = str(tmp_path / f"r.{fmt}")
    order = ["a.mp4", "bad.mp4", "c.mp4", "d.mp4"]
    s = sink(fmt, out, order=order)
    s.write(rec("a.mp4"))
    s.write(rec("bad.mp4", error="not a video"))
    s.write(rec("c.mp4"))
    s.close(complete=False)  # Ctrl-C before d.mp4
    if fmt != "json":
        with open(out, "a") as f:
            f.write('{"path": "torn' if fmt == "jsonl" else "d.mp4,,1,x,0.5")
    assert json.load(open(out + ".json"))["complete"] is False
    resumed = sink(fmt, out, order=order, resume=True)
    assert resumed.done == {"a.mp4", "c.mp4"}
    resumed.write(rec("bad.mp4", 0.25))
    resumed.write(rec("d.mp4"))
    resumed.close()
    assert paths_in(out, fmt) == order  # the retried file is back in its input position
    meta = json.load(open(out + ".json"))
    assert meta["complete"] is True and meta["errors"] == [] and meta["records"] == 4
    assert sorted(os.listdir(tmp_path)) == sorted([f"r.{fmt}", f"r.{fmt}.json"])


def test_interrupted_json_is_valid_json_with_a_completeness_marker(tmp_path):
    out = str(tmp_path / "labels.json")
    s = sink("json", out, order=["a", "b"])
    s.write(rec("a"))
    s.close(complete=False)
    assert [r["path"] for r in json.load(open(out))] == ["a"]
    assert json.load(open(out + ".json"))["complete"] is False
    assert not os.path.exists(output.journal_path(out))


def test_window_groups_resume_per_file(tmp_path):
    out = str(tmp_path / "t.jsonl")

    def w(path, i, error=None):
        return output.make_record("window", path=path, window=i, start=2.0 * i, end=2.0 * i + 2,
                                  labels=[] if error else [{"label": "run", "score": 0.9, "index": 1}], error=error)

    s = sink("jsonl", out, "window", order=["v1", "v2", "v3"])
    s.write_group([w("v1", 0), w("v1", 1)])
    s.write_group([w("v2", 0), w("v2", 1, error="decode failed")])  # one failed window: v2 is done again
    s.close(complete=False)
    resumed = sink("jsonl", out, "window", order=["v1", "v2", "v3"], resume=True)
    assert resumed.done == {"v1"}
    resumed.write_group([w("v2", 0), w("v2", 1)])
    resumed.write_group([w("v3", 0)])
    resumed.close()
    lines = [json.loads(line) for line in open(out)]
    assert [(r["path"], r["window"]) for r in lines] == [("v1", 0), ("v1", 1), ("v2", 0), ("v2", 1), ("v3", 0)]


def test_resume_into_another_tasks_output_is_refused(tmp_path):
    out = str(tmp_path / "labels.jsonl")
    s = sink("jsonl", out, order=["a"])
    s.write(rec("a"))
    s.close()
    before = open(out).read()
    with pytest.raises(output.OutputError, match="holds classify records, not embed") as info:
        output.check_output(out, kind="embed", fmt="jsonl", resume=True)
    assert "\n" not in str(info.value)
    os.unlink(out + ".json")  # even without the sidecar, the records' keys tell
    with pytest.raises(output.OutputError, match="holds classify records, not embed"):
        output.check_output(out, kind="embed", fmt="jsonl", resume=True)
    csv_out = str(tmp_path / "t.csv")
    s = sink("csv", csv_out, "window", order=["a"])
    s.write(output.make_record("window", path="a", window=0, start=0.0, end=1.0, labels=[]))
    s.close()
    with pytest.raises(output.OutputError, match="holds window records, not classify"):
        output.check_output(csv_out, kind="classify", fmt="csv", resume=True)
    assert open(out).read() == before


@pytest.mark.parametrize("damage,match", [
    ("journal", r"f.npy.partial: line 1 is not a vivit record \(corrupt"), ("journal-header", "corrupt journal"),
    ("journal-middle", "line 2 is not a vivit record"),
    ("sidecar", "corrupt sidecar"), ("foreign-sidecar", "not a vivit sidecar"), ("no-sidecar", "no sidecar"),
    ("rows", "rows but the sidecar lists"), ("array", "cannot read the embeddings"),
])
def test_corrupt_state_is_one_line_and_changes_nothing(tmp_path, damage, match):
    out = str(tmp_path / "f.npy")
    s = sink("npy", out, "embed", order=["a", "b"], dim=2)
    s.write(emb("a", [1.0, 2.0]))
    if damage.startswith("journal"):
        s.target.release()  # as if killed
        text = open(output.journal_path(out)).read().splitlines(True)
        if damage == "journal":
            text = ["garbage\n"] + text[1:]
        elif damage == "journal-header":
            text = text[1:]  # valid records, but no header saying which run they belong to
        else:
            text = text[:1] + ["{oops\n"] + text[1:]
        open(output.journal_path(out), "w").write("".join(text))
    else:
        s.close()
        side = output.sidecar_path(out)
        if damage == "sidecar":
            open(side, "w").write('{"format": "vivitcli.embeddings/1", "rows": [')
        elif damage == "foreign-sidecar":
            open(side, "w").write('{"name": "my notes"}')
        elif damage == "no-sidecar":
            os.unlink(side)
        elif damage == "rows":
            meta = json.load(open(side))
            meta["rows"] = []
            open(side, "w").write(json.dumps(meta))
        else:
            open(out, "wb").write(b"\x93NUMPY garbage")
    before = {name: open(tmp_path / name, "rb").read() for name in os.listdir(tmp_path)}
    with pytest.raises(output.OutputError, match=match) as info:
        output.check_output(out, kind="embed", fmt="npy", resume=True)
    assert "\n" not in str(info.value) and info.value.exit_code == 1
    assert {name: open(tmp_path / name, "rb").read() for name in os.listdir(tmp_path)} == before


def test_resume_refuses_a_foreign_file(tmp_path):
    out = tmp_path / "other.jsonl"
    out.write_text('{"id": 1}\n')
    (tmp_path / "other.jsonl.json").write_text('{"format": "vivitcli.output/1", "kind": "classify"}')
    with pytest.raises(output.OutputError, match="records vivit did not write"):
        output.check_output(str(out), kind="classify", fmt="jsonl", resume=True)
    assert out.read_text() == '{"id": 1}\n'


def test_table_cannot_be_resumed_and_stdout_cannot_either(tmp_path):
    out = tmp_path / "t.txt"
    out.write_text("x\n")
    with pytest.raises(UsageError, match="machine-readable"):
        output.check_output(str(out), kind="classify", fmt="table", resume=True)
    with pytest.raises(UsageError, match="needs --out"):
        output.check_output(None, kind="classify", fmt="jsonl", resume=True)


@pytest.mark.parametrize("fmt", ["npy", "npz", "safetensors", "jsonl", "json", "parquet"])
def test_every_embed_output_gets_the_sidecar_and_all_failed_keeps_the_width(tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = str(tmp_path / f"feats.{fmt}")
    s = sink(fmt, out, "embed", order=["x.mp4", "y.mp4"], dim=16)
    s.write(output.make_record("embed", path="x.mp4", model="m", error="cannot decode"))
    s.write(output.make_record("embed", path="y.mp4", model="m", error="empty file"))
    s.close()
    meta = json.load(open(out + ".json"))
    assert meta["format"] == output.SIDECAR_FORMAT and meta["file"] == f"feats.{fmt}"
    assert meta["shape"] == [0, 16] and meta["rows"] == [] and len(meta["errors"]) == 2 and meta["complete"]
    if fmt == "npy":
        assert np.load(out).shape == (0, 16) and np.load(out).dtype == np.float32
    elif fmt == "npz":
        with np.load(out) as z:
            assert z["embeddings"].shape == (0, 16)
    elif fmt == "safetensors":
        from safetensors.numpy import load_file

        assert load_file(out)["embeddings"].shape == (0, 16)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_schema(out).field("embedding").type.list_size == 16


def test_resume_after_kill_9_in_a_real_process(tmp_path):
    out = str(tmp_path / "labels.json")
    code = textwrap.dedent(f"""
        import os, signal
        from vivitcli import output
        s = output.open_sink("json", {out!r}, kind="classify", settings={{"model": "m"}}, order=["a", "b", "c"])
        for p in ("a", "b"):
            s.write(output.make_record("classify", path=p, labels=[], model="m"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    assert not os.path.exists(out) and os.path.exists(output.journal_path(out))
    with pytest.raises(UsageError, match="exists; pass --force"):
        output.check_output(out, kind="classify", fmt="json")
    s = sink("json", out, order=["a", "b", "c"], settings={"model": "m"}, resume=True)
    assert s.done == {"a", "b"}
    s.write(rec("c"))
    s.close()
    assert paths_in(out, "json") == ["a", "b", "c"]
