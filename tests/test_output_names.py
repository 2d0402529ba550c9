"""File names that are not valid UTF-8 (Python: a str with lone surrogates, os.fsdecode(b"caf\\xe9") ==
"caf\\udce9") in every output: each file stays valid UTF-8 for its readers, the name's bytes come back from what
was written, and --resume recognises such a name as done (or failed)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vivitcli import output, synthetic
from vivitcli.output.records import json_text, original_text, safe_text

SETTINGS = {"model": "m", "frames": 8}
# Names as bytes on disk -> the str Python gives for them. `back\\udce9` holds that text itself (valid UTF-8):
# it must not read back as the byte 0xe9.
NAMES = [b"ok.mp4", b"caf\xe9.mp4", b"bad\xff.mp4", b"back\\udce9 \\ \xe9.mp4", "€ é.mp4".encode()]
PATHS = [os.fsdecode(b"videos/" + n) for n in NAMES]
FAILED = PATHS[2]


def cls(path, error=None):
    labels = [] if error else [{"label": "moving left", "score": 0.75, "index": 0}]
    return output.make_record("classify", path=path, labels=labels, model="m", label_source="checkpoint",
                              frame_indices=None if error else [0, 2], timestamps=None if error else [0.0, 0.1],
                              approximate=None if error else False, error=error)


def win(path, error=None):
    return output.make_record("window", path=path, window=0, start=0.0, end=1.0,
                              labels=[] if error else [{"label": "up", "score": 0.5, "index": 2}], model="m",
                              error=error)


def emb(path, error=None):
    vector = None if error else np.arange(3, dtype=np.float32) + len(path)
    return output.make_record("embed", path=path, dim=3, pool="default", embedding=vector, model="m",
                              frame_indices=None if error else [0, 1], approximate=None if error else False,
                              error=error)


MAKE = {"classify": cls, "window": win, "embed": emb}


def records(kind):
    return [MAKE[kind](p, error="cannot decode video" if p == FAILED else None) for p in PATHS]


def strict_text(path) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8")  # strict: raises on anything that is not UTF-8


def written_paths(out: str, fmt: str) -> list[str]:
    """The record paths as a reader of each format gets them (str with lone surrogates, like os.fsdecode)."""
    if fmt == "jsonl":
        return [json.loads(line)["path"] for line in strict_text(out).splitlines()]
    if fmt == "json":
        return [r["path"] for r in json.loads(strict_text(out))]
    if fmt == "csv":
        rows = csv.DictReader(io.StringIO(strict_text(out), newline=""))
        return list(dict.fromkeys(original_text(r["path"]) for r in rows))
    if fmt == "parquet":
        pq = pytest.importorskip("pyarrow.parquet")
        column = pq.read_table(out).column("path").to_pylist()  # pyarrow decodes strictly: valid UTF-8
        return [original_text(p) for p in column]
    if fmt == "npz":
        with np.load(out, allow_pickle=False) as z:
            return [original_text(str(p)) for p in z["paths"]]
    if fmt == "safetensors":
        from safetensors import safe_open

        with safe_open(out, "np") as f:
            return json.loads(f.metadata()["paths"])
    assert fmt == "npy"
    return [r["path"] for r in json.loads(strict_text(out + ".json"))["rows"]]


CASES = [("classify", f) for f in ("jsonl", "csv", "json", "parquet")] + \
        [("window", f) for f in ("jsonl", "csv", "json", "parquet")] + \
        [("embed", f) for f in ("jsonl", "json", "npy", "npz", "safetensors", "parquet")]


@pytest.mark.parametrize("kind,fmt", CASES)
def test_every_format_keeps_the_bytes_of_names_that_are_not_utf8_and_resumes(tmp_path, kind, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    if fmt == "safetensors":
        pytest.importorskip("safetensors")
    out = str(tmp_path / f"out.{fmt}")
    s = output.open_sink(fmt, out, kind=kind, settings=SETTINGS, order=PATHS, dim=3)
    for r in records(kind):
        s.write(r)
    s.close()
    # Array outputs hold only the successful rows; the sidecar lists the failure.
    wanted = [p for p in PATHS if p != FAILED] if fmt in ("npy", "npz", "safetensors") else PATHS
    assert [os.fsencode(p) for p in written_paths(out, fmt)] == [os.fsencode(p) for p in wanted]
    side = json.loads(strict_text(out + ".json"))
    assert [os.fsencode(e["path"]) for e in side["errors"]] == [b"videos/bad\xff.mp4"]

    # --resume: the finished names (undecodable ones too) are done; the failed one is not and is retried.
    resumed = output.open_sink(fmt, out, kind=kind, settings=SETTINGS, order=PATHS, dim=3, resume=True)
    assert resumed.done == {os.path.normpath(p) for p in PATHS if p != FAILED}
    assert {r["path"] for r in resumed.previous} == set(PATHS) - {FAILED}
    resumed.write(MAKE[kind](FAILED))
    resumed.close()
    assert [os.fsencode(p) for p in written_paths(out, fmt)] == [os.fsencode(p) for p in PATHS]
    assert json.loads(strict_text(out + ".json"))["errors"] == []
    assert not os.path.exists(out + ".partial")


@pytest.mark.parametrize("kind", ["classify", "window"])
def test_csv_resume_gives_back_the_records_as_written(tmp_path, kind):
    """A resumed csv's records hold what its rows do (labels, heads, window times), names as the run had them:
    a timeline resume rebuilds segments and subtitles of finished videos from these."""
    out = str(tmp_path / "out.csv")
    written = records(kind)
    heads = {"verb": [{"label": "put", "score": 0.5, "index": 1}], "noun": [{"label": "c\udce9up", "score": 0.25,
                                                                          "index": 7}]}
    written[0]["heads"] = heads
    if kind == "window":
        written[1].update(window=3, start=6.5, end=8.25)
    s = output.open_sink("csv", out, kind=kind, settings=SETTINGS, order=PATHS)
    for r in written:
        s.write(r)
    s.close()
    resumed = output.open_sink("csv", out, kind=kind, settings=SETTINGS, order=PATHS, resume=True)
    keys = ("path", "window", "start", "end", "labels", "model", "error") if kind == "window" else \
           ("path", "labels", "model", "error")
    want = [{k: r[k] for k in keys} | {"heads": r["heads"]} for r in written if r["path"] != FAILED]
    assert [{k: r[k] for k in keys + ("heads",)} for r in resumed.previous] == want
    resumed.close()


@pytest.mark.parametrize("fmt", ["jsonl", "json", "npy"])
def test_an_interrupted_run_leaves_a_journal_or_output_that_resumes(tmp_path, fmt):
    """The journal (.partial) and an append output hold such names too, and a run cut short resumes from them."""
    out = str(tmp_path / f"out.{fmt}")
    kind = "embed" if fmt == "npy" else "classify"
    s = output.open_sink(fmt, out, kind=kind, settings=SETTINGS, order=PATHS, dim=3)
    s.write(MAKE[kind](PATHS[1]))
    s._close_fd()  # a killed run: no close(); its lock dies with it
    s.target.release()
    state = out + ".partial" if fmt in ("json", "npy") else out
    assert "caf\\udce9.mp4" in strict_text(state)
    resumed = output.open_sink(fmt, out, kind=kind, settings=SETTINGS, order=PATHS, dim=3, resume=True)
    assert resumed.done == {os.path.normpath(PATHS[1])}
    resumed.close()


@pytest.mark.parametrize("fmt", ["table", "jsonl", "json", "csv"])
@pytest.mark.parametrize("kind", ["classify", "window"])
def test_stdout_gets_valid_utf8_even_from_a_strict_stream(fmt, kind):
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")  # e.g. LANG=en_US.UTF-8
    s = output.open_sink(fmt, None, kind=kind, stdout=stream)
    for r in records(kind):
        s.write(r)
    s.close()
    stream.flush()
    text = raw.getvalue().decode("utf-8")
    assert "caf\\udce9.mp4" in text and "bad\\udcff.mp4" in text
    if fmt == "table":
        assert "error: cannot decode video" in text


@pytest.mark.parametrize("name", ["caf\udce9", "a\\udce9", "a\\uDCFF\\u005c\udcff\\", "\\\udce9", "\\u005c",
                                  "plain €", "x\\n\\u0041", ""])
def test_safe_text_is_utf8_and_reads_back_exactly(name):
    plain = safe_text(name, plain=True)
    plain.encode("utf-8")
    assert original_text(plain) == name
    text = json_text({"path": name})
    text.encode("utf-8")
    assert json.loads(text)["path"] == name
    if name.isascii() and "\\u" not in name:
        assert plain == name  # ordinary names are left as they are


def test_safe_text_round_trips_every_short_string_of_the_tricky_characters():
    # Exhaustive up to 5 characters over what the escapes are made of (32768 strings).
    alphabet = ["\\", "u", "d", "c", "0", "5", "F", "\udce9"]
    for n in range(6):
        for chars in itertools.product(alphabet, repeat=n):
            name = "".join(chars)
            plain = safe_text(name, plain=True)
            assert original_text(plain) == name, (name, plain)
            assert json.loads(json_text(name)) == name, name


def test_cli_csv_with_undecodable_names_resumes(tmp_path):
    """Through the real CLI: a csv holds the names as `\\udcXX`; --resume skips the finished one, retries the bad."""
    folder = tmp_path / "v"
    folder.mkdir()
    try:
        good = os.path.join(os.fsencode(folder), b"caf\xe9.mp4")
        spec = synthetic.sample_spec(3, label="moving up", width=96, height=72, duration=1.5, fps=12, codec="h264")
        synthetic.write_clip(spec, os.fsdecode(good))
        with open(os.path.join(os.fsencode(folder), b"bad\xff.mp4"), "wb") as f:
            f.write(b"not a video\n")
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    out = tmp_path / "out.csv"

    def vivit(*args):
        return subprocess.run([sys.executable, "-m", "vivitcli", "classify", "-m", "demo", str(folder), "-o",
                               str(out), *args], capture_output=True, text=True, errors="surrogateescape",
                              timeout=240, cwd=tmp_path)

    res = vivit()
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    rows = list(csv.DictReader(io.StringIO(strict_text(out), newline="")))
    by_name = {}
    for r in rows:  # each name's first row: its top label
        by_name.setdefault(os.fsencode(original_text(r["path"])), r)
    assert set(by_name) == {os.path.join(os.fsencode(folder), n) for n in (b"bad\xff.mp4", b"caf\xe9.mp4")}
    assert by_name[good]["label"] == "moving up" and by_name[good]["rank"] == "1"
    before = out.read_bytes()
    res = vivit("--resume")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "resume: 1 of 2 inputs already done" in res.stderr
    assert res.stderr.count("error: ") == 1 and "bad\\udcff.mp4: cannot decode video" in res.stderr
    assert out.read_bytes() == before  # the bad one failed again, in its place; the finished rows kept
