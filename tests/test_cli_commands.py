"""`vivit classify` / `embed` / `models` through typer's CliRunner on generated videos and a tiny checkpoint."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.cli_data import LABELS, jsonl, make_checkpoint, make_video_folder
from vivitcli.cli import app


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    videos = make_video_folder(root / "videos")
    ckpt = make_checkpoint(root / "ckpt")
    return {"root": root, "ckpt": str(ckpt), "dir": str(root / "videos"), **videos}


def run(*args, input=None, env=None):
    result = CliRunner().invoke(app, [str(a) for a in args], input=input, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_classify_folder_jsonl_records_and_bad_files(data):
    r = run("classify", data["dir"], "-m", data["ckpt"], "-k", "3")
    assert r.exit_code == 1  # two broken files in the folder
    recs = jsonl(r.stdout)
    assert [x["path"] for x in recs] == data["all"]
    for rec in recs:
        assert set(rec) == {"path", "labels", "heads", "model", "dtype", "label_source", "frame_indices", "timestamps",
                            "approximate", "error"}
        assert rec["model"] == data["ckpt"] and rec["label_source"] == "checkpoint"
        if rec["path"] in data["bad"]:
            assert rec["error"] and rec["labels"] == [] and rec["frame_indices"] is None
            continue
        assert rec["error"] is None and rec["approximate"] is False
        scores = [x["score"] for x in rec["labels"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
        assert all(x["label"] == LABELS[x["index"]] for x in rec["labels"])
        assert len(rec["frame_indices"]) == 4 and len(rec["timestamps"]) == 4
        assert rec["timestamps"] == sorted(rec["timestamps"])
    # One stderr line per bad file, naming it; no traceback.
    err_lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert sorted(line.split(": ")[1] for line in err_lines) == sorted(data["bad"])
    assert "Traceback" not in r.stderr
    # stderr is not a terminal here: no progress bar, only the error lines and the summary.
    assert r.stderr.splitlines() == err_lines + ["vivit: 4/6 done, 2 failed"]


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_every_format_parses_and_agrees_with_jsonl(data, fmt):
    files = data["good"][:2] + data["bad"][:1]
    ref = {x["path"]: x for x in jsonl(run("classify", *files, "-m", data["ckpt"], "-k", "2").stdout)}
    r = run("classify", *files, "-m", data["ckpt"], "-k", "2", "--format", fmt)
    assert r.exit_code == 1
    if fmt == "json":
        assert json.loads(r.stdout) == [ref[p] for p in files]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        assert [row["path"] for row in rows] == [files[0]] * 2 + [files[1]] * 2 + [files[2]]
        for row in rows[:4]:
            item = ref[row["path"]]["labels"][int(row["rank"]) - 1]
            assert (row["label"], float(row["score"]), int(row["index"])) == (item["label"], item["score"],
                                                                             item["index"])
        assert rows[4]["error"] == ref[files[2]]["error"] and rows[4]["label"] == ""
    else:
        for p in files:
            assert p in r.stdout
        top = ref[files[0]]["labels"][0]
        assert f"{top['score']:7.4f}  {top['label']}" in r.stdout


def test_one_call_over_a_folder_equals_one_call_per_file(data):
    together = {x["path"]: x for x in jsonl(run("classify", data["dir"], "-m", data["ckpt"], "-b", "3").stdout)}
    for path in data["good"]:
        alone = jsonl(run("classify", path, "-m", data["ckpt"], "-b", "1").stdout)
        assert len(alone) == 1
        a, b = alone[0], together[path]
        assert [x["index"] for x in a["labels"]] == [x["index"] for x in b["labels"]]
        np.testing.assert_allclose([x["score"] for x in a["labels"]], [x["score"] for x in b["labels"]], atol=2e-6)
        assert (a["frame_indices"], a["timestamps"]) == (b["frame_indices"], b["timestamps"])


def test_stdin_list_and_missing_file(data):
    missing = os.path.join(data["dir"], "missing.mp4")
    listing = "\n".join([data["good"][1], missing, data["good"][0]]) + "\n"
    r = run("classify", "-", "-m", data["ckpt"], input=listing)
    assert r.exit_code == 1
    recs = jsonl(r.stdout)
    assert [x["path"] for x in recs] == [data["good"][1], missing, data["good"][0]]
    assert recs[1]["error"] == "no such file"
    assert f"error: {missing}: no such file" in r.stderr


def test_ext_picks_the_extensions_walked(data):
    r = run("classify", data["dir"], "-m", data["ckpt"], "--ext", "webm,MKV")
    assert [x["path"] for x in jsonl(r.stdout)] == [p for p in data["all"] if p.endswith((".webm", ".mkv"))]
    assert r.exit_code == 1  # empty.mkv is among them


def test_exit_codes_and_usage_errors(data):
    good = data["good"][0]
    assert run("classify", good, "-m", data["ckpt"]).exit_code == 0
    usage = [
        ["classify", good, "-m", data["ckpt"], "--format", "xml"],
        ["classify", good, "-m", data["ckpt"], "--resume"],
        ["classify", good, "-m", data["ckpt"], "--clips", "3", "--sampling", "uniform"],
        ["classify", good, "-m", data["ckpt"], "--start", "2", "--end", "1"],
        ["classify", str(data["root"] / "ckpt"), "-m", data["ckpt"]],  # a folder with no videos
        ["embed", good, "-m", data["ckpt"], "--out", str(data["root"] / "x.bin")],
        ["classify", good, "-m", data["ckpt"], "--labels", str(data["root"] / "nope.txt")],
    ]
    for args in usage:
        r = run(*args)
        assert r.exit_code == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == ""
    r = run("classify", good, "-m", str(data["root"] / "no-such-model"))
    assert r.exit_code == 1 and r.stderr.startswith("error: model") and len(r.stderr.splitlines()) == 1
    r = run("classify", good, "-m", str(data["root"] / "no-such-model"), "--debug")
    assert "Traceback" in r.stderr


def test_labels_file_renames_classes(data, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"class {i}" for i in range(len(LABELS))) + "\n")
    rec = jsonl(run("classify", data["good"][0], "-m", data["ckpt"], "--labels", names).stdout)[0]
    assert rec["label_source"] == f"file:{names}"
    assert all(x["label"] == f"class {x['index']}" for x in rec["labels"])
    names.write_text("only\ntwo\n")
    r = run("classify", data["good"][0], "-m", data["ckpt"], "--labels", names)
    assert r.exit_code == 2 and "2 names, but the model has 5 classes" in r.stderr


def test_clips_sampling_averages_logits_over_views(data):
    import torch

    from vivitcli import load_model
    from vivitcli.video.read import read_clip

    path = data["good"][0]
    rec = jsonl(run("classify", path, "-m", data["ckpt"], "--sampling", "clips", "--clips", "2", "-k", "5").stdout)[0]
    model = load_model(data["ckpt"], device="cpu", dtype="float32")
    clip, info = read_clip(path, model.preprocessor, num_frames=4, sampling="clips", clips=2, return_info=True)
    assert rec["frame_indices"] == np.asarray(info.indices).tolist() and np.asarray(info.indices).shape == (2, 4)
    with torch.inference_mode():
        probs = torch.softmax(model(clip).mean(0), -1)
    for item in rec["labels"]:
        assert item["score"] == pytest.approx(float(probs[item["index"]]), abs=2e-6)


def test_keyframes_sampling_is_marked_approximate(data):
    # a.mp4 has a keyframe every 12 frames, so uniform positions move when snapped to keyframes.
    rec = jsonl(run("classify", data["good"][0], "-m", data["ckpt"], "--sampling", "keyframes").stdout)[0]
    assert rec["approximate"] is True and all(i % 12 == 0 for i in rec["frame_indices"])


def test_embed_npy_rows_follow_the_sidecar(data, tmp_path):
    out = tmp_path / "feats.npy"
    r = run("embed", data["dir"], "-m", data["ckpt"], "--out", out, "-b", "3")
    assert r.exit_code == 1 and r.stdout == ""
    array = np.load(out)
    meta = json.loads((tmp_path / "feats.npy.json").read_text())
    assert array.dtype == np.float32 and array.shape == (len(data["good"]), 32)
    assert meta["shape"] == list(array.shape) and meta["complete"] is True
    assert [row["path"] for row in meta["rows"]] == [p for p in data["all"] if p in data["good"]]
    assert sorted(e["path"] for e in meta["errors"]) == sorted(data["bad"])
    assert not os.path.exists(str(out) + ".partial")
    # Each row equals that file's embedding computed on its own (jsonl on stdout).
    for i, row in enumerate(meta["rows"]):
        alone = jsonl(run("embed", row["path"], "-m", data["ckpt"]).stdout)[0]
        assert alone["dim"] == 32 and alone["pool"] == "default"
        np.testing.assert_allclose(array[i], np.float32(alone["embedding"]), atol=1e-5)
        assert alone["frame_indices"] == row["frame_indices"]


def test_embed_npz_and_safetensors_hold_the_same_rows(data, tmp_path):
    from safetensors.numpy import load_file

    files = data["good"][:3]
    run("embed", *files, "-m", data["ckpt"], "--out", tmp_path / "e.npy", "--pool", "mean")
    run("embed", *files, "-m", data["ckpt"], "--out", tmp_path / "e.npz", "--pool", "mean")
    run("embed", *files, "-m", data["ckpt"], "--out", tmp_path / "e.safetensors", "--pool", "mean")
    ref = np.load(tmp_path / "e.npy")
    with np.load(tmp_path / "e.npz") as z:
        np.testing.assert_array_equal(z["embeddings"], ref)
        assert z["paths"].tolist() == files
    st = load_file(str(tmp_path / "e.safetensors"))
    np.testing.assert_array_equal(st["embeddings"], ref)
    cls = jsonl(run("embed", files[0], "-m", data["ckpt"], "--pool", "cls").stdout)[0]["embedding"]
    assert not np.allclose(cls, ref[0])  # --pool reaches the model


class _Interrupt:
    """Wrap Pipeline so that the compute call number `at` raises KeyboardInterrupt (a simulated Ctrl-C)."""

    def __init__(self, monkeypatch, at: int):
        import vivitcli.pipeline as pipeline

        self.calls = 0
        original = pipeline.Pipeline.__init__
        outer = self

        def init(self, read, compute, **kw):
            def counted(batch):
                outer.calls += 1
                if outer.calls == at:
                    raise KeyboardInterrupt
                return compute(batch)

            original(self, read, counted, **kw)

        monkeypatch.setattr(pipeline.Pipeline, "__init__", init)


@pytest.mark.parametrize("suffix", [".npy", ".jsonl", ".json"])
def test_resume_after_an_interrupted_run(data, tmp_path, monkeypatch, suffix):
    command = "embed" if suffix == ".npy" else "classify"
    out = tmp_path / f"out{suffix}"
    files = data["good"] + data["bad"][:1]
    straight = tmp_path / f"straight{suffix}"
    assert run(command, *files, "-m", data["ckpt"], "-b", "1", "--out", straight).exit_code == 1

    with monkeypatch.context() as m:
        _Interrupt(m, at=3)
        r = run(command, *files, "-m", data["ckpt"], "-b", "1", "--out", out)
    assert r.exit_code == 130 and "interrupted" in r.stderr
    if suffix == ".npy":
        meta = json.loads((tmp_path / "out.npy.json").read_text())
        assert meta["complete"] is False and np.load(out).shape == (2, 32)
        assert [row["path"] for row in meta["rows"]] == files[:2]
    elif suffix == ".jsonl":
        assert [x["path"] for x in jsonl(out.read_text())] == files[:2]
    else:
        assert [x["path"] for x in json.loads(out.read_text())] == files[:2]

    with monkeypatch.context() as m:
        counter = _Interrupt(m, at=-1)
        r = run(command, *files, "-m", data["ckpt"], "-b", "1", "--out", out, "--resume")
    assert r.exit_code == 1  # the bad file is still bad
    assert counter.calls == len(files) - 1 - 2  # only the unfinished good files were computed
    assert "resume: 2 of 5 inputs already done" in r.stderr
    if suffix == ".npy":
        np.testing.assert_allclose(np.load(out), np.load(straight), atol=1e-6)
        assert json.loads((tmp_path / "out.npy.json").read_text())["rows"] == \
            json.loads((tmp_path / "straight.npy.json").read_text())["rows"]
    else:
        load = jsonl if suffix == ".jsonl" else json.loads
        got = {x["path"]: x for x in load(out.read_text())}
        want = {x["path"]: x for x in load(straight.read_text())}
        assert len(load(out.read_text())) == len(files)  # nothing written twice
        assert got.keys() == want.keys()
        for p in files:
            assert got[p]["error"] == want[p]["error"]
            assert [x["index"] for x in got[p]["labels"]] == [x["index"] for x in want[p]["labels"]]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_interrupted_stdout_still_parses(data, monkeypatch, fmt):
    with monkeypatch.context() as m:
        _Interrupt(m, at=3)
        r = run("classify", *data["good"], "-m", data["ckpt"], "-b", "1", "-f", fmt)
    assert r.exit_code == 130
    if fmt == "json":
        paths = [x["path"] for x in json.loads(r.stdout)]
    elif fmt == "jsonl":
        paths = [x["path"] for x in jsonl(r.stdout)]
    else:
        paths = list(dict.fromkeys(row["path"] for row in csv.DictReader(io.StringIO(r.stdout))))
    assert paths == data["good"][:2]


@pytest.mark.parametrize("suffix", [".jsonl", ".npy"])
def test_a_run_that_dies_before_any_result_leaves_old_outputs_alone(data, tmp_path, monkeypatch, suffix):
    command = "embed" if suffix == ".npy" else "classify"
    out = tmp_path / f"o{suffix}"
    assert run(command, data["good"][0], "-m", data["ckpt"], "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with monkeypatch.context() as m:
        _Interrupt(m, at=1)
        assert run(command, *data["good"], "-m", data["ckpt"], "--out", out, "--force").exit_code == 130
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_resume_into_another_models_output_is_refused(data, tmp_path):
    other = make_checkpoint(tmp_path / "other")
    out = tmp_path / "o.jsonl"
    run("classify", data["good"][0], "-m", data["ckpt"], "--out", out)
    before = out.read_text()
    r = run("classify", *data["good"][:2], "-m", other, "--out", out, "--resume")
    assert r.exit_code == 2 and "cannot resume" in r.stderr
    assert out.read_text() == before


def test_models_lists_aliases_cache_state_and_size(tmp_path):
    from tests.checkpoints import make_tiny_videomae

    cache = tmp_path / "hub"
    snap = cache / "models--MCG-NJU--videomae-base-finetuned-kinetics" / "snapshots" / "abc"
    make_tiny_videomae(snap)
    (cache / "models--MCG-NJU--videomae-base-finetuned-kinetics" / "refs").mkdir()
    (cache / "models--MCG-NJU--videomae-base-finetuned-kinetics" / "refs" / "main").write_text("abc")
    extra = cache / "models--someone--my-vivit" / "snapshots" / "def"
    make_checkpoint(extra)
    # A fresh process: huggingface_hub reads HF_HUB_CACHE when it is imported, as in real use.
    env = {**os.environ, "HF_HUB_CACHE": str(cache)}

    def models(*args):
        return subprocess.run([sys.executable, "-m", "vivitcli", "models", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    rows = {r["checkpoint"]: r for r in json.loads(models("--json").stdout)}
    mae = rows["MCG-NJU/videomae-base-finetuned-kinetics"]
    size = sum(f.stat().st_size for f in snap.iterdir())
    assert mae["cached"] is True and mae["size_bytes"] == size and mae["size_estimated"] is False
    assert "videomae" in mae["aliases"]
    vivit = rows["google/vivit-b-16x2-kinetics400"]
    assert vivit["cached"] is False and vivit["size_estimated"] is True and set(vivit["aliases"]) >= {"vivit"}
    assert rows["someone/my-vivit"]["cached"] is True  # a ViViT found in the cache is listed too
    table = models().stdout
    assert "MCG-NJU/videomae-base-finetuned-kinetics" in table and "someone/my-vivit" in table


def test_size_estimate_matches_transformers_parameter_count():
    import transformers

    from vivitcli.commands.models import estimate_params

    vivit = transformers.VivitForVideoClassification(transformers.VivitConfig(
        image_size=32, num_frames=4, tubelet_size=[2, 8, 8], hidden_size=48, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=96, num_labels=7))
    assert estimate_params("vivit", 48, 2, 96, 4, 32, 2, 8, 7) == sum(p.numel() for p in vivit.parameters())
    mae = transformers.VideoMAEForVideoClassification(transformers.VideoMAEConfig(
        image_size=32, num_frames=4, patch_size=8, tubelet_size=2, hidden_size=48, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=96, num_labels=7))
    # VideoMAE has q and v biases but no k bias: within a few biases of the shared estimate.
    assert abs(estimate_params("videomae", 48, 2, 96, 4, 32, 2, 8, 7) - sum(p.numel() for p in mae.parameters())) \
        <= 2 * 48
