"""Parquet outputs (pyarrow): round trips and schema for classify, window and embed, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vivitcli import output

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from vivitcli.output.parquet import read_parquet, records_table, write_parquet  # noqa: E402


def cls(path, error=None, heads=False):
    labels = [] if error else [{"label": "a b", "score": 0.75, "index": 3}, {"label": "c", "score": 0.25, "index": 0}]
    return output.make_record(
        "classify", path=path, labels=labels, model="m", label_source="checkpoint",
        heads={"verb": [{"label": "a", "score": 0.9, "index": 1}], "noun": [{"label": "b", "score": 0.8, "index": 2}]}
        if heads and not error else None,
        frame_indices=None if error else [[0, 2], [4, 6]], timestamps=None if error else [[0.0, 0.1], [0.2, 0.3]],
        approximate=None if error else False, error=error)


def test_classify_parquet_round_trip_and_schema(tmp_path):
    out = str(tmp_path / "labels.parquet")
    s = output.open_sink("parquet", out, kind="classify", settings={"model": "m"}, order=["a.mp4", "b.mp4", "c.mp4"])
    s.write(cls("c.mp4", heads=True))
    s.write(cls("a.mp4"))
    s.write(cls("b.mp4", error="cannot decode"))
    s.close()
    table = pq.read_table(out)
    assert table.schema.names == list(output.record_keys("classify"))
    assert table.schema.field("labels").type == pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64()),
                                                                    ("index", pa.int64())]))
    assert table.schema.field("frame_indices").type == pa.list_(pa.list_(pa.int64()))  # several views
    assert table.schema.metadata[b"vivitcli.kind"] == b"classify"
    rows = table.to_pylist()
    assert [r["path"] for r in rows] == ["a.mp4", "b.mp4", "c.mp4"]  # input order
    assert rows[0]["labels"][0] == {"label": "a b", "score": 0.75, "index": 3} and rows[0]["heads"] is None
    assert rows[1]["error"] == "cannot decode" and rows[1]["labels"] == []
    back = read_parquet(out, kind="classify")
    assert back[2]["heads"] == {"verb": [{"label": "a", "score": 0.9, "index": 1}],
                                "noun": [{"label": "b", "score": 0.8, "index": 2}]}
    assert json.load(open(out + ".json"))["complete"] is True


def test_window_parquet_has_one_row_per_window(tmp_path):
    out = str(tmp_path / "t.parquet")
    s = output.open_sink("parquet", out, kind="window", settings={}, order=["v.mp4"])
    s.write_group([output.make_record("window", path="v.mp4", window=i, start=2.0 * i, end=2.0 * i + 2,
                                      labels=[{"label": "run", "score": 0.5, "index": 1}], frame_indices=[0, 1],
                                      timestamps=[2.0 * i, 2.0 * i + 1], approximate=False) for i in range(3)])
    s.close()
    table = pq.read_table(out)
    assert table.schema.names == list(output.record_keys("window"))
    assert table.column("window").to_pylist() == [0, 1, 2] and table.column("end").to_pylist() == [2.0, 4.0, 6.0]
    assert table.schema.field("timestamps").type == pa.list_(pa.float64())


def test_embed_parquet_fixed_size_float32_and_exact_values(tmp_path):
    out = str(tmp_path / "feats.parquet")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3, 8)).astype(np.float32)
    order = ["a", "bad", "b", "c"]
    s = output.open_sink("parquet", out, kind="embed", settings={"pool": "mean"}, order=order, dim=8)
    for path, v in zip(["c", "a", "b"], vectors):
        s.write(output.make_record("embed", path=path, dim=8, pool="mean", embedding=v, model="m",
                                   frame_indices=[0, 1], timestamps=[0.0, 0.5], approximate=False))
    s.write(output.make_record("embed", path="bad", model="m", pool="mean", error="empty"))
    s.close()
    table = pq.read_table(out)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 8)
    assert table.column("path").to_pylist() == order
    emb = table.column("embedding")
    assert emb.null_count == 1 and emb.to_pylist()[1] is None
    got = np.asarray(emb.to_pylist()[0], dtype=np.float32)
    np.testing.assert_array_equal(got, vectors[1])  # "a" was written second
    meta = json.load(open(out + ".json"))
    assert [r["path"] for r in meta["rows"]] == ["a", "b", "c"] and meta["shape"] == [3, 8]


def test_records_table_and_write_parquet_for_other_writers(tmp_path):
    recs = [cls("x"), cls("y", error="bad")]
    table = records_table(recs, kind="classify")
    assert table.num_rows == 2 and table.schema.names[0] == "path"
    target = tmp_path / "part-0.parquet"
    write_parquet(str(target), recs, kind="classify")
    assert pq.read_table(target).equals(table)
    assert records_table([], kind="embed", dim=4).schema.field("embedding").type == pa.list_(pa.float32(), 4)
    with pytest.raises(output.OutputError, match="holds classify records, not embed"):
        read_parquet(str(target), kind="embed")


def test_parquet_resume_after_kill_9(tmp_path):
    out = str(tmp_path / "feats.parquet")
    code = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from vivitcli import output
        s = output.open_sink("parquet", {out!r}, kind="embed", settings={{"model": "m"}}, order=list("abcd"), dim=4)
        s.write(output.make_record("embed", path="a", dim=4, embedding=np.float32([1, 2, 3, 4])))
        s.write(output.make_record("embed", path="b", error="broken"))
        s.write(output.make_record("embed", path="c", dim=4, embedding=np.float32([5, 6, 7, 8])))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    assert not os.path.exists(out)
    s = output.open_sink("parquet", out, kind="embed", settings={"model": "m"}, order=list("abcd"), dim=4, resume=True)
    assert s.done == {"a", "c"}
    s.write(output.make_record("embed", path="b", dim=4, embedding=np.float32([9, 9, 9, 9])))
    s.write(output.make_record("embed", path="d", dim=4, embedding=np.float32([0, 0, 0, 1])))
    s.close()
    table = pq.read_table(out)
    assert table.column("path").to_pylist() == ["a", "b", "c", "d"]
    assert table.column("embedding").to_pylist()[1] == [9, 9, 9, 9]
    # a completed Parquet output is itself resumable (nothing left to do) and keeps its rows
    again = output.open_sink("parquet", out, kind="embed", settings={"model": "m"}, order=list("abcd"), dim=4,
                             resume=True)
    assert again.done == {"a", "b", "c", "d"}
    again.close()
    assert pq.read_table(out).column("path").to_pylist() == ["a", "b", "c", "d"]


def test_windowed_embed_rows_with_a_failed_file(tmp_path):
    recs = [output.make_record("embed", path="bad", error="broken"),
            output.make_record("embed", path="v", window=0, start=0.0, end=2.0, dim=2, embedding=np.float32([1, 2]))]
    table = records_table(recs, kind="embed", dim=2)
    assert table.schema.names[:4] == ["path", "window", "start", "end"]
    assert table.column("window").to_pylist() == [None, 0] and table.column("embedding").to_pylist()[0] is None
