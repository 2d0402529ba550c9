"""`vivit probe train|eval` and vivitcli.linear_probe on the demo backbone: labels the demo never had.

"horizontal" (moving left + right), "vertical" (up + down) and "size" (growing + shrinking), learned from 20
tiny clips per class, then checked on freshly generated clips through `vivit classify -m MYMODEL`. The clips and
the first trained probe are made once per session; the other runs reuse its embedding cache.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vivitcli import synthetic
from vivitcli.cli import app
from vivitcli.linear_probe import dataset, fit, metrics

GROUPS = {"horizontal": ("moving left", "moving right"), "vertical": ("moving up", "moving down"),
          "size": ("growing", "shrinking")}
TRAIN_PER_CLASS = 20
TEST_PER_CLASS = 10


def _invoke(args, **kwargs):
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def _write_clips(root: Path, seed: int, per_class: int) -> Path:
    """root/<group>/<i>.mp4: small, 1 s, 12 fps H.264 clips, the two motions of each group alternating."""
    for g, (name, labels) in enumerate(GROUPS.items()):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            spec = synthetic.sample_spec((16, seed, g, i), label=labels[i % 2], long_side=96, duration=1.0, fps=12,
                                         codec="h264")
            synthetic.write_clip(spec, root / name / f"{i:02d}.mp4")
    return root


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    base = tmp_path_factory.mktemp("probe")
    return {"train": _write_clips(base / "train", 1, TRAIN_PER_CLASS),
            "test": _write_clips(base / "test", 2, TEST_PER_CLASS), "base": base}


@pytest.fixture(scope="session")
def trained(clips):
    """`vivit probe train` once (json report), with its own embedding cache."""
    base = clips["base"]
    out, cache = base / "my-probe", base / "cache"
    r = _invoke(["probe", "train", clips["train"], "--model", "demo", "--out", out, "--cache", cache,
                 "--format", "json"])
    assert r.exit_code == 0, r.stderr
    return {"out": out, "cache": cache, "report": json.loads(r.stdout), "stderr": r.stderr}


@pytest.fixture(scope="session")
def classified(clips, trained):
    """`vivit classify -m MYMODEL` over the unseen test clips (jsonl records)."""
    r = _invoke(["classify", "-m", trained["out"], clips["test"], "--format", "jsonl", "--top-k", "3"])
    assert r.exit_code == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


# ---- the end-to-end behaviour -------------------------------------------------------------------------------


def test_probe_learns_labels_the_demo_never_had(trained, classified):
    report = trained["report"]
    assert report["classes"] == ["horizontal", "size", "vertical"]  # sorted folder names
    assert report["stats"] == {"clips": 60, "used": 60, "failed": 0, "from_cache": 0, "embedded": 60}
    assert sum(report["counts"]["val"]["counts"].values()) == 12  # 20% of each class, stratified
    assert all(n == 4 for n in report["counts"]["val"]["counts"].values())
    assert report["metrics"]["num_clips"] == 12
    assert np.asarray(report["metrics"]["confusion"]["matrix"]).sum() == 12
    assert len(classified) == 3 * TEST_PER_CLASS
    right = sum(rec["labels"][0]["label"] == Path(rec["path"]).parent.name for rec in classified)
    assert right / len(classified) >= 0.95, [(r["path"], r["labels"][0]) for r in classified]
    for rec in classified:
        assert rec["label_source"] == "probe" and rec["model"] == str(trained["out"]) and rec["error"] is None
        assert {lab["label"] for lab in rec["labels"]} == set(GROUPS)
        assert abs(sum(lab["score"] for lab in rec["labels"]) - 1.0) < 1e-5


def test_probe_folder_refers_to_the_backbone_and_loads_as_a_classifier(trained):
    import vivitcli

    doc = json.loads((trained["out"] / "probe.json").read_text())
    assert doc["backbone"] == "demo" and doc["backbone_dir"] is None and doc["pool"] == "default"
    assert doc["sampling"]["frames"] == 8 and doc["sampling"]["sampling"] == "uniform"
    assert sorted(p.name for p in trained["out"].iterdir()) == ["head.safetensors", "probe.json"]
    model = vivitcli.load_model(trained["out"])
    assert model.labels == ["horizontal", "size", "vertical"] and model.label_source == "probe"
    assert model.name == str(trained["out"]) and model.num_frames == 8 and model.num_labels == 3


def test_eval_agrees_with_classify_on_unseen_clips(clips, trained, classified):
    r = _invoke(["probe", "eval", clips["test"], "-m", trained["out"], "--cache", trained["cache"], "-f", "json"])
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    right = sum(rec["labels"][0]["label"] == Path(rec["path"]).parent.name for rec in classified)
    assert report["metrics"]["accuracy"] == pytest.approx(right / len(classified))
    assert report["metrics"]["num_clips"] == 3 * TEST_PER_CLASS and report["stats"]["embedded"] == 30
    # Rows of the confusion matrix are the true classes: per-class support is the folder's clip count.
    assert [c["support"] for c in report["metrics"]["classes"]] == [TEST_PER_CLASS] * 3
    table = _invoke(["probe", "eval", clips["test"], "-m", trained["out"], "--cache", trained["cache"],
                     "-f", "table"])
    assert table.exit_code == 0 and "confusion (rows: true class" in table.stdout
    assert f"on {3 * TEST_PER_CLASS} clips" in table.stdout


def test_second_train_reads_the_cache_and_opens_no_video(clips, trained, tmp_path, monkeypatch):
    import av

    opened = []
    real_open = av.open

    def counting_open(*args, **kwargs):
        opened.append(args[0] if args else kwargs.get("file"))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    r = _invoke(["probe", "train", clips["train"], "-m", "demo", "-o", tmp_path / "again", "--cache",
                 trained["cache"], "-f", "json"])
    assert r.exit_code == 0, r.stderr
    assert opened == []  # not one container opened: every embedding came from the cache
    report = json.loads(r.stdout)
    assert report["stats"]["from_cache"] == 60 and report["stats"]["embedded"] == 0
    # Same embeddings, same seeded split and a deterministic fit: the same head.
    assert report["l2"] == trained["report"]["l2"]
    first = _head(trained["out"])
    again = _head(tmp_path / "again")
    np.testing.assert_allclose(again["weight"], first["weight"], rtol=1e-5, atol=1e-6)


def _head(folder: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(folder / "head.safetensors"))


def test_cache_fills_as_clips_finish_and_resumes(clips, tmp_path):
    """An interrupted run leaves the finished clips' entries; the next run embeds only the rest."""
    from vivitcli.linear_probe.cache import EmbeddingCache, file_digest
    from vivitcli.linear_probe.embeddings import embed_clips, embedding_settings
    from vivitcli.tasks import Sampling, load

    model = load("demo")
    paths = dataset.scan(clips["test"]).paths[:6]

    class Stop(Exception):
        pass

    class StopAfterTwo:
        seen = 0

        def start(self, total):
            pass

        def clip(self, path, error, cached):
            self.seen += 1
            if self.seen == 2:
                raise Stop

    with pytest.raises(Stop):
        embed_clips(paths, model, pool="default", sampling=Sampling(), cache_dir=tmp_path, progress=StopAfterTwo())
    cache = EmbeddingCache(tmp_path, embedding_settings(model, "default", Sampling()))
    done = [p for p in paths if cache.get(file_digest(p))[0] is not None]
    assert len(done) == 2
    got = embed_clips(paths, model, pool="default", sampling=Sampling(), cache_dir=tmp_path)
    assert (got.from_cache, got.computed) == (2, 4)
    fresh = embed_clips(paths, model, pool="default", sampling=Sampling(), cache_dir=None)
    for p in paths:  # cached vectors are the computed ones, bit for bit
        np.testing.assert_array_equal(got.vectors[p], fresh.vectors[p])
    # Another pool (or sampling, or dtype) is another key: those entries do not answer for it.
    assert EmbeddingCache(tmp_path, embedding_settings(model, "mean", Sampling())).key != cache.key
    assert EmbeddingCache(tmp_path, embedding_settings(model, "default", Sampling(frames=4))).key != cache.key


def test_corrupt_clip_is_reported_skipped_and_not_counted(clips, trained, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(clips["train"], data)
    bad = data / "vertical" / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    r = _invoke(["probe", "train", data, "-m", "demo", "-o", tmp_path / "p", "--cache", trained["cache"],
                 "-f", "json"])
    assert r.exit_code == 1  # some input failed; the probe is still written
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad}: ")
    assert r.stderr.splitlines() == errors + ["vivit: 1 of 61 clips could not be read and were left out"]
    report = json.loads(r.stdout)
    assert report["stats"] == {"clips": 61, "used": 60, "failed": 1, "from_cache": 60, "embedded": 0}
    assert report["errors"] == [{"path": str(bad), "error": errors[0][len(f"error: {bad}: "):]}]
    assert sum(report["counts"]["train"]["counts"].values()) + sum(report["counts"]["val"]["counts"].values()) == 60
    assert (tmp_path / "p" / "probe.json").is_file()


def test_saved_probe_reloads_with_the_same_scores(clips, trained, tmp_path):
    import torch

    import vivitcli
    from vivitcli.linear_probe import train

    result = train(clips["train"], "demo", out=tmp_path / "p", cache=trained["cache"])
    assert result.stats["from_cache"] == 60
    loaded = vivitcli.load_model(tmp_path / "p")
    x = torch.stack([loaded.read_clip(p) for p in dataset.scan(clips["test"]).paths[:4]])
    expected = result.model(x)
    np.testing.assert_allclose(loaded(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    # logits = head(backbone.embed(x, pool)), the head being the fitted affine map of the raw embedding
    emb = loaded.backbone.embed(x, "default").numpy()
    np.testing.assert_allclose(result.head.logits(emb), expected.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loaded.embed(x).numpy(), emb)


def test_standalone_copies_the_backbone_and_needs_no_reference(clips, trained, tmp_path):
    import vivitcli

    out = tmp_path / "ship"
    r = _invoke(["probe", "train", clips["train"], "-m", "demo", "-o", out, "--cache", trained["cache"],
                 "--standalone", "-f", "json"])
    assert r.exit_code == 0, r.stderr
    assert {"config.json", "model.safetensors"} <= {p.name for p in (out / "backbone").iterdir()}
    doc = json.loads((out / "probe.json").read_text())
    assert doc["backbone_dir"] == "backbone"
    doc["backbone"] = "no-such-model-anywhere"  # the copy is what loads
    (out / "probe.json").write_text(json.dumps(doc))
    model = vivitcli.load_model(out)
    assert model.labels == ["horizontal", "size", "vertical"]


def test_missing_backbone_is_one_line_naming_it(trained, tmp_path):
    out = tmp_path / "orphan"
    shutil.copytree(trained["out"], out)
    doc = json.loads((out / "probe.json").read_text())
    doc["backbone"] = str(tmp_path / "gone-backbone")
    (out / "probe.json").write_text(json.dumps(doc))
    r = _invoke(["classify", "-m", out, __file__])
    assert r.exit_code == 1
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith(f"error: {out}: its backbone ")
    assert str(tmp_path / "gone-backbone") in r.stderr and "Traceback" not in r.stderr


def test_train_val_folders_and_imbalance(clips, trained, tmp_path):
    """DATA/train + DATA/val are used as given; imbalance is reported and --balanced weights it."""
    data = tmp_path / "data"
    for name in GROUPS:
        files = sorted((clips["train"] / name).iterdir())
        keep = files if name != "size" else files[:7]  # 20 / 20 / 7 clips: imbalanced
        for split, part in (("train", keep[:-3]), ("val", keep[-3:])):
            (data / split / name).mkdir(parents=True)
            for f in part:
                os.symlink(f, data / split / name / f.name)
    for extra in ([], ["--balanced"]):
        r = _invoke(["probe", "train", data, "-m", "demo", "-o", tmp_path / f"p{len(extra)}", "--cache",
                     trained["cache"], "-f", "json", *extra])
        assert r.exit_code == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["counts"]["train"]["counts"] == {"horizontal": 17, "size": 4, "vertical": 17}
        assert report["counts"]["val"]["counts"] == {"horizontal": 3, "size": 3, "vertical": 3}
        assert report["stats"]["from_cache"] == 47 and report["metrics"]["num_clips"] == 9
        note = [line for line in r.stderr.splitlines() if "imbalanced" in line]
        assert len(note) == 1 and "2.9x" in note[0]  # 20 clips against 7
        assert ("weighted by --balanced" in note[0]) == bool(extra)
        doc = json.loads((tmp_path / f"p{len(extra)}" / "probe.json").read_text())
        assert doc["balanced"] == bool(extra) and doc["split"] == "folders"


@pytest.mark.parametrize("layout, message", [
    ({"a": 3}, "only one class ('a')"),
    ({"a": 3, "b": 1}, "class 'b' has 1 usable clip"),
    ({"a": 3, "b": 0}, "no video files in this class folder"),
    ({}, "no class subfolders"),
])
def test_unusable_folders_are_one_line_usage_errors(tmp_path, clips, layout, message):
    data = tmp_path / "data"
    data.mkdir()
    source = sorted((clips["train"] / "size").iterdir())
    for name, n in layout.items():
        (data / name).mkdir()
        for f in source[:n]:
            os.symlink(f, data / name / f.name)
    r = _invoke(["probe", "train", data, "-m", "demo", "-o", tmp_path / "out", "--no-cache"])
    assert r.exit_code == 2, r.stdout
    assert len(r.stderr.splitlines()) == 1 and message in r.stderr and r.stderr.startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_labels_txt_fixes_the_order_and_must_match_the_folders(tmp_path, clips, trained):
    data = tmp_path / "data"
    shutil.copytree(clips["train"], data, symlinks=True)
    (data / "labels.txt").write_text("vertical\nhorizontal\nsize\n")
    r = _invoke(["probe", "train", data, "-m", "demo", "-o", tmp_path / "p", "--cache", trained["cache"],
                 "-f", "json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["classes"] == ["vertical", "horizontal", "size"]
    (data / "labels.txt").write_text("vertical\nhorizontal\n")
    r = _invoke(["probe", "train", data, "-m", "demo", "-o", tmp_path / "q", "--no-cache"])
    assert r.exit_code == 2 and "size: folder is not in the class list" in r.stderr


def test_out_folder_with_other_files_is_refused(tmp_path, clips):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    r = _invoke(["probe", "train", clips["train"], "-m", "demo", "-o", out, "--no-cache"])
    assert r.exit_code == 2 and "holds no probe.json" in r.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


# ---- the pieces ---------------------------------------------------------------------------------------------


def test_split_is_stratified_seeded_and_keeps_every_class_on_both_sides():
    data = dataset.LabelledClips(root="d", classes=["a", "b", "c"])
    for k, n in enumerate((10, 5, 2)):
        data.paths += [f"{k}/{i}" for i in range(n)]
        data.targets += [k] * n
        data.splits += [None] * n
    keep = list(range(len(data.paths)))
    train, val = dataset.split(data, keep, val_fraction=0.2, seed=3)
    assert data.counts(val) == [2, 1, 1] and data.counts(train) == [8, 4, 1]
    assert sorted(train + val) == keep
    assert dataset.split(data, keep, val_fraction=0.2, seed=3) == (train, val)
    assert dataset.split(data, keep, val_fraction=0.2, seed=4) != (train, val)


def test_fit_separates_gaussians_and_folds_the_standardisation():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 3
    y = np.repeat(np.arange(3), 40)
    x = (centers[y] + rng.normal(size=(120, 8))) * 50 + 1000  # far from zero mean / unit scale on purpose
    head = fit.fit(x, y, 3, 1e-2)
    assert (head.predict(x) == y).mean() > 0.95
    assert head.weight.shape == (3, 8) and head.bias.shape == (3,)
    # Strong regularisation shrinks the weights towards zero (all classes equally likely).
    strong = fit.fit(x, y, 3, 1e6)
    assert np.abs(strong.weight).max() < 1e-4 * np.abs(head.weight).max()
    best, tried = fit.sweep(x[::2], y[::2], x[1::2], y[1::2], 3)
    assert len(tried) == 15 and best in [t["l2"] for t in tried]
    assert max(t["val_accuracy"] for t in tried) == next(t["val_accuracy"] for t in tried if t["l2"] == best)


def test_balanced_weights_equalise_the_classes():
    y = np.array([0] * 30 + [1] * 10)
    w = fit.class_weights(y, 2)
    assert np.allclose(w, [40 / 60, 40 / 20])
    assert np.isclose((w[y] * (y == 0)).sum(), (w[y] * (y == 1)).sum())


def test_report_counts_precision_recall_and_confusion():
    report = metrics.classification_report([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 1], ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["confusion"]["matrix"] == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    a, b, c = report["classes"]
    assert (a["precision"], a["recall"], a["support"]) == (1.0, pytest.approx(2 / 3), 3)
    assert (b["precision"], b["recall"]) == (0.5, 1.0)
    assert c["precision"] is None and c["recall"] == 0.0  # never predicted: precision undefined
    assert report["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_eval_clips_averages_views_like_classify(clips, trained, tmp_path):
    """--clips K: K windows per clip, the head on their mean embedding = the mean of their logits."""
    import vivitcli
    from vivitcli.tasks import Sampling

    data = tmp_path / "few"
    for name in GROUPS:
        (data / name).mkdir(parents=True)
        for f in sorted((clips["test"] / name).iterdir())[:2]:
            os.symlink(f, data / name / f.name)
    r = _invoke(["probe", "eval", data, "-m", trained["out"], "--clips", "2", "--cache", trained["cache"],
                 "-f", "json"])
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["stats"]["embedded"] == 6 and report["metrics"]["num_clips"] == 6  # a new key: 2 views
    records = list(vivitcli.classify(data, model=str(trained["out"]), top_k=1, sampling=Sampling(clips=2)))
    right = sum(rec.labels[0].label == Path(rec.path).parent.name for rec in records)
    assert report["metrics"]["accuracy"] == pytest.approx(right / 6)


def test_a_probe_is_not_a_backbone(trained, clips, tmp_path):
    r = _invoke(["probe", "train", clips["train"], "-m", trained["out"], "-o", tmp_path / "p2", "--no-cache"])
    assert r.exit_code == 2 and "is a probe model" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("change, message", [
    ({"labels": ["a", "b"]}, "do not match 2 classes of dimension 128"),
    ({"format": "something-else"}, "format is 'something-else'"),
    ({"pool": "max"}, "'pool' must be one of"),
    ({"backbone_dir": "../elsewhere"}, "must be a folder name inside the probe folder"),
    ({"sampling": {"frames": "8"}}, "'sampling.frames' must be a frame count"),
])
def test_a_damaged_probe_folder_is_a_one_line_error(trained, tmp_path, change, message):
    import vivitcli
    from vivitcli.errors import CheckpointError

    out = tmp_path / "damaged"
    shutil.copytree(trained["out"], out)
    doc = json.loads((out / "probe.json").read_text())
    doc.update(change)
    (out / "probe.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=message) as err:
        vivitcli.load_model(out)
    assert "\n" not in str(err.value) and str(out) in str(err.value)
