"""vivitcli.classify / vivitcli.embed as a library: records, order, errors, option checks, three-crop views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vivitcli
from vivitcli.errors import UsageError
from vivitcli.records import RECORD_KEYS, ClassifyRecord, EmbedRecord
from tests.videos import write_not_video, write_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    good = [write_video(root / "a.mp4", num_frames=24, width=96, height=64),
            write_video(root / "b.mkv", num_frames=16, width=64, height=96)]
    bad = write_not_video(root / "c.mp4")
    return [str(p) for p in (good[0], bad, good[1])]


def test_classify_yields_typed_records_in_input_order(vivit_dir, clips):
    model = vivitcli.load_model(vivit_dir, dtype="float32")
    records = list(vivitcli.classify(clips + [clips[0]], model=model, top_k=2))
    assert [r.path for r in records] == clips  # a path given twice is done once
    assert all(isinstance(r, ClassifyRecord) for r in records)
    good, bad = records[0], records[1]
    assert bad.error and not bad.labels and bad.frame_indices is None
    assert len(good.labels) == 2 and good.labels[0].score >= good.labels[1].score
    assert good.dtype == "float32" and good.model == str(vivit_dir)
    assert tuple(good.to_dict()) == RECORD_KEYS["classify"]
    # The scores are the softmax of the model's logits on the same clip.
    clip = model.read_clip(clips[0])
    probs = torch.softmax(model(clip[None]).double(), -1)[0]
    assert good.labels[0].score == pytest.approx(float(probs.max()), abs=1e-6)
    assert good.labels[0].index == int(probs.argmax())


def test_embed_matches_the_model_and_takes_a_name(vivit_dir, clips):
    records = list(vivitcli.embed(clips, model=str(vivit_dir), pool="mean", dtype="float32"))
    assert all(isinstance(r, EmbedRecord) for r in records)
    good = records[0]
    model = vivitcli.load_model(vivit_dir, dtype="float32")
    expected = model.embed(model.read_clip(clips[0])[None], pool="mean")[0].numpy()
    assert good.dim == expected.shape[0] and np.abs(good.embedding - expected).max() < 1e-5
    assert records[1].error and records[1].embedding is None


def test_options_are_checked_before_anything_loads(clips):
    for kwargs in ({"top_k": 0}, {"sampling": vivitcli.Sampling(clips=1000, sampling="clips")},
                   {"sampling": vivitcli.Sampling(seed=-1)}, {"sampling": vivitcli.Sampling(clips=3, sampling="uniform")},
                   {"sampling": vivitcli.Sampling(start=5, end=2)}, {"sampling": vivitcli.Sampling(crops=2)},
                   {"attn": "flash"}, {"dtype": "int8"}, {"device": "tpu"}):
        with pytest.raises(UsageError):
            vivitcli.ClassifyJob(clips, model="no/such-model", **kwargs)  # never loaded: refused first


def test_three_crops_average_the_three_views(vivit_dir, tmp_path):
    from vivitcli.crops import three_crop_boxes
    from vivitcli.video.read import read_clip

    video = str(write_video(tmp_path / "wide.mp4", num_frames=16, width=120, height=64))
    model = vivitcli.load_model(vivit_dir, dtype="float32")
    pre = model.preprocessor
    views = read_clip(video, pre, num_frames=model.num_frames, crops=3)
    assert views.shape[0] == 3 and views.shape[-2:] == views.shape[-2:]
    # View 1 (centre) is Scenic's ceil offset; views 0 and 2 touch the left and right edges.
    full = read_clip(video, pre, num_frames=model.num_frames, exact=True)  # the centre crop (floor offset)
    h, w = pre.resize_shape(64, 120)
    boxes = three_crop_boxes(h, w, views.shape[-1])
    assert boxes[0][1] == 0 and boxes[2][1] == w - views.shape[-1]
    if (w - views.shape[-1]) % 2 == 0:
        assert torch.equal(views[1], full)
    record = next(iter(vivitcli.classify([video], model=model, top_k=1,
                                         sampling=vivitcli.Sampling(crops=3))))
    logits = model(views).mean(0)
    assert record.labels[0].index == int(logits.argmax())
    assert record.labels[0].score == pytest.approx(float(torch.softmax(logits.double(), -1).max()), abs=1e-6)


def test_multi_head_records_have_per_head_softmax_and_actions():
    from vivitcli.tasks import labels_from_logits

    logits = np.array([2.0, 0.0, 1.0,  3.0, 0.0])  # noun head (3) then verb head (2)
    labels, heads = labels_from_logits(logits, [], 2, [("noun", 3), ("verb", 2)],
                                       {"noun": ["tap", "pan", "cup"], "verb": ["open", "wash"]})
    assert [x.label for x in heads["noun"]] == ["tap", "cup"] and [x.label for x in heads["verb"]] == ["open", "wash"]
    noun = np.exp([2.0, 0.0, 1.0]) / np.exp([2.0, 0.0, 1.0]).sum()
    verb = np.exp([3.0, 0.0]) / np.exp([3.0, 0.0]).sum()
    assert heads["noun"][0].score == pytest.approx(noun[0])
    assert labels[0].label == "open tap" and labels[0].score == pytest.approx(verb[0] * noun[0])
    assert labels[1].label == "open cup"


def test_embed_with_windows_gives_one_row_per_window(tmp_path):
    from typer.testing import CliRunner

    from vivitcli import synthetic
    from vivitcli.cli import app

    spec = synthetic.sample_spec(7, label="moving left", width=96, height=64, fps=12, duration=4.0, codec="h264")
    video = synthetic.write_clip(spec, tmp_path / "long.mp4")
    out = tmp_path / "w.npy"
    r = CliRunner().invoke(app, ["embed", str(video), "-m", "demo", "--window", "2", "--stride", "1", "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    import json

    rows = json.loads((tmp_path / "w.npy.json").read_text())["rows"]
    # 4 s at 12 fps: windows 0-2, 1-3 and 2-4 s; the last one reaches the video's end, so none follows it.
    assert [row["window"] for row in rows] == [0, 1, 2] and [row["start"] for row in rows] == [0.0, 1.0, 2.0]
    assert rows[-1]["end"] == pytest.approx(4.0, abs=0.1)
    vectors = np.load(out)
    assert vectors.shape == (3, 128) and not np.allclose(vectors[0], vectors[2])
    # The same windows through the library give the same vectors.
    from vivitcli.window_tasks import embed_windows

    lib = [rec.embedding for rec in embed_windows([str(video)], "demo", window=2, stride=1)]
    assert np.abs(np.stack(lib) - vectors).max() < 1e-6


def test_timeline_with_three_crops_averages_the_views_of_each_window(vivit_dir, tmp_path):
    from vivitcli.video.read import read_clip
    from vivitcli.window_tasks import timeline

    video = str(write_video(tmp_path / "wide.mp4", num_frames=40, width=120, height=64))
    model = vivitcli.load_model(vivit_dir, dtype="float32")
    records = list(timeline([video], model, window=0.8, stride=0.8, top_k=1, sampling=vivitcli.Sampling(crops=3)))
    assert len(records) >= 2 and all(r.error is None for r in records)
    for rec in records:  # each window = read_clip over its span with the same three views, logits averaged
        views = read_clip(video, model.preprocessor, num_frames=model.num_frames, start=rec.start, end=rec.end,
                          crops=3)
        logits = model(views).mean(0)
        assert rec.labels[0].index == int(logits.argmax())
        assert rec.labels[0].score == pytest.approx(float(torch.softmax(logits.double(), -1).max()), abs=1e-5)
