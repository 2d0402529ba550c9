"""Text formats (jsonl, json, csv, table) for classify, window and multi-head records; choosing the format."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from vivitcli import output
from vivitcli.errors import UsageError
from vivitcli.output.formats import CSV_COLUMNS

from tests.output_records import classify_record as rec


def window(path, i, start, end, score=0.9, error=None):
    labels = [] if error else [{"label": "run", "score": score, "index": 3}, {"label": "walk", "score": 0.05,
                                                                               "index": 4}]
    return output.make_record("window", path=path, window=i, start=start, end=end, labels=labels, model="m",
                              label_source="checkpoint", frame_indices=None if error else [0, 4],
                              timestamps=None if error else [start, end], approximate=False, error=error)


def multi_head(path):
    return output.make_record(
        "classify", path=path, model="epic", label_source="checkpoint",
        labels=[{"label": "take cup", "score": 0.4, "index": 7 * 300 + 12}],
        heads={"verb": [{"label": "take", "score": 0.8, "index": 7}],
               "noun": [{"label": "cup", "score": 0.5, "index": 12}, {"label": "mug", "score": 0.25, "index": 13}]})


def run_stream(fmt, records, kind="classify"):
    buf = io.StringIO()
    sink = output.open_sink(fmt, None, kind=kind, stdout=buf)
    for r in records:
        sink.write(r)
    sink.close()
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "table"])
def test_stream_formats(fmt):
    text = run_stream(fmt, [rec("a.mp4", 0.75), rec('b,"odd".mp4', error="empty file")])
    if fmt == "jsonl":
        recs = [json.loads(line) for line in text.splitlines()]
    elif fmt == "json":
        recs = json.loads(text)
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [r["path"] for r in rows] == ["a.mp4", 'b,"odd".mp4']
        assert rows[0]["score"] == "0.75" and rows[0]["frame_indices"] == "0 2" and rows[1]["error"] == "empty file"
        assert rows[0]["head"] == "" and rows[1]["rank"] == ""
        return
    else:
        assert text.splitlines() == ["a.mp4", "   0.7500  x", 'b,"odd".mp4', "  error: empty file"]
        return
    assert [r["path"] for r in recs] == ["a.mp4", 'b,"odd".mp4']
    assert recs[0]["labels"] == [{"label": "x", "score": 0.75, "index": 1}] and recs[0]["frame_indices"] == [0, 2]
    assert recs[1]["error"] == "empty file" and list(recs[1]) == list(recs[0])
    assert list(recs[0]) == list(output.record_keys("classify"))


def test_empty_json_run_is_still_an_array():
    assert json.loads(run_stream("json", [])) == []


def test_numbers_are_trimmed_as_documented():
    r = output.make_record("embed", path="a", dim=2, pool="mean", embedding=np.float32([0.1, 1 / 3]), model="m",
                           timestamps=[0.123456789], frame_indices=np.array([3]))
    j = output.jsonable(r)
    assert np.float32(j["embedding"]).tolist() == np.float32([0.1, 1 / 3]).tolist() and j["embedding"][0] == 0.100000001
    assert j["timestamps"] == [0.123457] and j["frame_indices"] == [3]
    c = output.jsonable(rec("a", score=0.123456789))
    assert c["labels"][0]["score"] == 0.123457
    w = output.jsonable(window("a", 0, 1.0000004, 2.5))
    assert w["start"] == 1.0 and w["end"] == 2.5


def test_csv_multi_head_rows_carry_their_head():
    rows = list(csv.DictReader(io.StringIO(run_stream("csv", [multi_head("k.mp4")]))))
    assert [(r["head"], r["rank"], r["label"], r["score"]) for r in rows] == [
        ("", "1", "take cup", "0.4"), ("verb", "1", "take", "0.8"), ("noun", "1", "cup", "0.5"),
        ("noun", "2", "mug", "0.25")]
    assert list(rows[0]) == list(CSV_COLUMNS["classify"])
    recs = json.loads(run_stream("json", [multi_head("k.mp4")]))
    assert recs[0]["heads"]["noun"][1] == {"label": "mug", "score": 0.25, "index": 13}
    table = run_stream("table", [multi_head("k.mp4")]).splitlines()
    assert table == ["k.mp4", "   0.4000  take cup", "   0.8000  verb: take", "   0.5000  noun: cup",
                     "   0.2500  noun: mug"]


def test_window_csv_is_long_format_with_time_columns():
    text = run_stream("csv", [window("v.mp4", 0, 0.0, 2.0), window("v.mp4", 1, 2.0, 4.0, 0.7),
                              window("bad.mp4", None, None, None, error="cannot decode")], kind="window")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(CSV_COLUMNS["window"])
    assert [(r["path"], r["window"], r["start"], r["end"], r["rank"], r["label"]) for r in rows] == [
        ("v.mp4", "0", "0.0", "2.0", "1", "run"), ("v.mp4", "0", "0.0", "2.0", "2", "walk"),
        ("v.mp4", "1", "2.0", "4.0", "1", "run"), ("v.mp4", "1", "2.0", "4.0", "2", "walk"),
        ("bad.mp4", "", "", "", "", "")]
    assert rows[-1]["error"] == "cannot decode"


def test_window_table_shows_time_ranges():
    text = run_stream("table", [window("v.mp4", 0, 0.0, 2.0), window("v.mp4", 1, 2.0, 4.0, 0.7)], kind="window")
    assert text.splitlines() == ["v.mp4", "  0.000-2.000 s", "     0.9000  run", "     0.0500  walk",
                                 "  2.000-4.000 s", "     0.7000  run", "     0.0500  walk"]


def test_jsonl_window_records_keep_key_order():
    line = run_stream("jsonl", [window("v.mp4", 0, 0.0, 2.0)], kind="window")
    assert list(json.loads(line)) == list(output.record_keys("window"))


def test_out_format_choice():
    f = output.out_format
    assert f(None, None, kind="classify", stdout_isatty=True) == "table"
    assert f(None, None, kind="classify", stdout_isatty=False) == "jsonl"
    assert f("x.csv", None, kind="classify", stdout_isatty=True) == "csv"
    assert f("x.TXT", None, kind="window", stdout_isatty=True) == "table"
    assert f("x.parquet", None, kind="window", stdout_isatty=True) == "parquet"
    assert f("x.txt", "jsonl", kind="classify", stdout_isatty=True) == "jsonl"
    assert f("results.dat", "csv", kind="classify", stdout_isatty=True) == "csv"  # explicit format: any suffix
    for suffix in ("npy", "npz", "safetensors", "jsonl", "json", "parquet"):
        assert f(f"x.{suffix}", None, kind="embed", stdout_isatty=False) == suffix
    assert f(None, None, kind="embed", stdout_isatty=True) == "jsonl"
    assert f("t.srt", None, kind="window", stdout_isatty=True, extra={".srt": "srt"}) == "srt"


@pytest.mark.parametrize("out,fmt,kind,match", [
    ("labels.bin", None, "classify", "unknown file type .bin"),
    ("labels", None, "classify", r"unknown file type \(no suffix\)"),
    ("x.npy", None, "classify", "unknown file type .npy"),
    ("x.csv", None, "embed", "unknown file type .csv"),
    ("x.bin", None, "embed", "unknown file type"),
    ("x.json", "csv", "classify", "contradicts"),
    (None, "csv", "embed", "only to a file"),
])
def test_unknown_or_contradicting_out_is_a_usage_error(out, fmt, kind, match):
    with pytest.raises(UsageError, match=match) as info:
        output.out_format(out, fmt, kind=kind, stdout_isatty=False)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_make_record_fills_every_key_and_refuses_unknown_ones():
    r = output.make_record("embed", path="a", error="x")
    assert list(r) == list(output.record_keys("embed")) and r["embedding"] is None
    w = output.make_record("embed", path="a", window=2, start=4.0, end=6.0)
    assert list(w)[:4] == ["path", "window", "start", "end"] and output.record_kind(w) == "embed"
    with pytest.raises(ValueError):
        output.make_record("classify", path="a", embedding=[1.0])
    assert output.record_kind(rec("a")) == "classify" and output.record_kind(window("a", 0, 0, 1)) == "window"
    assert output.record_kind({"id": 1}) is None
