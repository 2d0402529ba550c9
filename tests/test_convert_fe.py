"""ViViT factorised encoder (model 2): Scenic checkpoints written here (flax msgpack, both train-state layouts)
→ `vivit convert` → load_model, checked against a float64 numpy forward written from Scenic's model.py
(tests/convert_formats.py) — independent of vivitcli.convert.reference, which --verify uses."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.convert_formats import (
    flax_msgpack_bytes, scenic_fe_forward, scenic_fe_params, scenic_params_state, scenic_train_state,
    swap_query_key,
)
from vivitcli.cli import app

runner = CliRunner()
LAYOUTS = {"optimizer.target": scenic_train_state, "params": scenic_params_state}


def run(*args):
    return runner.invoke(app, ["convert", *map(str, args)])


def write_checkpoint(tmp_path, params, layout="optimizer.target", name="checkpoint_300"):
    path = tmp_path / name
    path.write_bytes(flax_msgpack_bytes(LAYOUTS[layout](params)))
    return path


def pixels(batch=2, frames=4, size=32, seed=1):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((batch, frames, 3, size, size))
                            .astype(np.float32))


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("classifier", ["token", "gap"])
def test_fe_checkpoint_converts_and_matches_scenic_forward(tmp_path, layout, classifier):
    params = scenic_fe_params(classifier=classifier)
    ckpt = write_checkpoint(tmp_path, params, layout)
    dst = tmp_path / "out"
    res = run(ckpt, dst, "--image-size", "32")
    assert res.exit_code == 0, res.output
    assert "verify: max |Δlogits| =" in res.stdout and "VivitFactorisedEncoderForVideoClassification" in res.stdout
    config = json.loads((dst / "config.json").read_text())
    # Depth, heads and MLP width of each encoder come from the tree (spatial 2x4x64, temporal 3x2x48).
    assert (config["model_type"], config["num_frames"], config["tubelet_size"], config["classifier"]) == \
        ("vivit_fe", 4, [2, 8, 8], classifier)
    assert (config["num_hidden_layers"], config["num_attention_heads"], config["intermediate_size"]) == (2, 4, 64)
    assert (config["num_temporal_layers"], config["temporal_num_attention_heads"],
            config["temporal_intermediate_size"]) == (3, 2, 48)
    # A fresh Scenic conversion gets Scenic's pipeline: [-1, 1] after resizing the short side to 256/224 · size.
    pre = json.loads((dst / "preprocessor_config.json").read_text())
    assert (pre["do_normalize"], pre["offset"], pre["rescale_factor"], pre["size"]) == \
        (False, True, 1 / 127.5, {"shortest_edge": 37})

    import vivitcli

    pv = pixels()
    want = scenic_fe_forward(params, pv.numpy())
    for attn in ("eager", "sdpa"):
        model = vivitcli.load_model(str(dst), device="cpu", dtype="float32", attn=attn)
        assert model.model_type == "vivit_fe" and model.class_splits is None and model.head_labels is None
        got = model(pv).double().numpy()
        np.testing.assert_allclose(got, want["logits"], rtol=0, atol=1e-5)
        # embed(): the vector output_projection reads (final temporal token, or the temporal mean for gap).
        np.testing.assert_allclose(model.embed(pv).double().numpy(), want["pooled"], rtol=0, atol=1e-5)
    assert model.embed(pv, "mean").shape == (2, 32)
    if classifier == "gap":
        assert "'gap' classifier" in res.stderr


def test_fe_in_bfloat16_and_at_other_sizes(tmp_path):
    params = scenic_fe_params(classes=3)
    dst = tmp_path / "out"
    assert run(write_checkpoint(tmp_path, params), dst, "--image-size", "32").exit_code == 0
    import vivitcli
    from vivitcli.models.layers import interpolate_pos_table

    model = vivitcli.load_model(str(dst), device="cpu", dtype="float32", attn="eager")
    # At the native grid the checkpoint's own tables are used; resampling them to that grid is the identity.
    assert model.spatial_table(4, 4) is model.spatial_pos and model.temporal_table(2) is model.temporal_pos
    rows = model.spatial_pos[0, 1:]
    assert torch.equal(interpolate_pos_table(rows, (1, 4, 4), (1, 4, 4)), rows)
    # Other frame counts and sizes: tables resampled (bicubic in space, linear in time), CLS rows kept.
    out = model(pixels(batch=1, frames=8, size=48))
    assert out.shape == (1, 3) and torch.isfinite(out).all()
    assert model.temporal_table(4).shape == (1, 5, 32) and model.spatial_table(6, 6).shape == (1, 37, 32)
    assert torch.equal(model.temporal_table(4)[0, 0], model.temporal_pos[0, 0])
    half = vivitcli.load_model(str(dst), device="cpu", dtype="bfloat16", attn="sdpa")
    torch.testing.assert_close(half(pixels()).float(), model(pixels()), rtol=0, atol=0.1)


def test_epic_kitchens_multi_head(tmp_path):
    params = scenic_fe_params(classes=397, dim=16, spatial=(1, 2, 32), temporal=(1, 2, 32))
    dst = tmp_path / "epic"
    res = run(write_checkpoint(tmp_path, params, "params"), dst, "--image-size", "32")
    assert res.exit_code == 0, res.output
    assert "397 labels (epic-kitchens-100) in heads noun 300, verb 97" in res.stdout
    config = json.loads((dst / "config.json").read_text())
    assert config["class_splits"] == [["noun", 300], ["verb", 97]]
    assert config["id2label"]["0"] == "tap" and config["id2label"]["300"] == "take"
    # "water" is a noun and a verb: label2id keys name the head.
    assert config["label2id"]["noun:water"] < 300 <= config["label2id"]["verb:water"]

    import vivitcli
    from tests.videos import write_video

    model = vivitcli.load_model(str(dst), device="cpu", dtype="float32")
    assert model.class_splits == [("noun", 300), ("verb", 97)]
    heads = model.head_labels
    assert list(heads) == ["noun", "verb"] and len(heads["noun"]) == 300 and heads["verb"][:3] == \
        ["take", "put", "wash"]
    # Through the library's classify: one softmax per head, actions scored p(verb) * p(noun).
    video = write_video(tmp_path / "clip.mp4", num_frames=8, width=40, height=32)
    [rec] = list(vivitcli.classify([video], model=model, top_k=3))
    assert rec.error is None and set(rec.heads) == {"noun", "verb"}
    logits = model(model.read_clip(str(video))[None])[0].double()
    for name, start, size in (("noun", 0, 300), ("verb", 300, 97)):
        probs = logits[start:start + size].softmax(-1)
        best = rec.heads[name][0]
        assert best.label == heads[name][best.index]
        assert best.score == pytest.approx(float(probs.max()), rel=1e-4)
    top = rec.labels[0]
    assert top.label == f"{rec.heads['verb'][0].label} {rec.heads['noun'][0].label}"
    assert top.score == pytest.approx(rec.heads["verb"][0].score * rec.heads["noun"][0].score, rel=1e-6)


def test_class_splits_flag_and_its_errors(tmp_path):
    ckpt = write_checkpoint(tmp_path, scenic_fe_params(classes=5))
    res = run(ckpt, tmp_path / "a", "--image-size", "32", "--class-splits", "hand:2,tool:3")
    assert res.exit_code == 0, res.output
    import vivitcli

    model = vivitcli.load_model(str(tmp_path / "a"), device="cpu")
    assert model.class_splits == [("hand", 2), ("tool", 3)] and model.head_labels["tool"] == \
        ["LABEL_2", "LABEL_3", "LABEL_4"]
    # A converted vivit_fe folder converts again (here: re-cast), keeping its heads.
    res = run(tmp_path / "a", tmp_path / "a16", "--dtype", "bfloat16")
    assert res.exit_code == 0 and "[from hf-safetensors]" in res.stdout and "heads hand 2, tool 3" in res.stdout
    assert json.loads((tmp_path / "a16" / "config.json").read_text())["class_splits"] == [["hand", 2], ["tool", 3]]
    for flag, message in (("hand:2,tool:4", "add up to 6"), ("hand2", "NAME:SIZE")):
        res = run(ckpt, tmp_path / "b", "--image-size", "32", "--class-splits", flag)
        assert res.exit_code == 2 and message in res.stderr and not (tmp_path / "b").exists()
    res = run(ckpt, tmp_path / "b", "--image-size", "32", "--labels", "epic-kitchens-100")
    assert res.exit_code == 2 and "397 names (noun 300 + verb 97), the classifier has 5 classes" in res.stderr


def test_kinetics600_labels(tmp_path):
    ckpt = write_checkpoint(tmp_path, scenic_fe_params(classes=600, dim=16, spatial=(1, 2, 32),
                                                       temporal=(1, 2, 32)))
    res = run(ckpt, tmp_path / "k600", "--image-size", "32", "--labels", "kinetics600", "--no-verify")
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "k600" / "config.json").read_text())
    assert config["id2label"]["0"] == "abseiling" and config["id2label"]["599"] == "zumba"


def test_orbax_folders_and_models_3_4_get_one_line(tmp_path):
    orbax = tmp_path / "orbax" / "checkpoint_100"
    orbax.mkdir(parents=True)
    (orbax / "_CHECKPOINT_METADATA").write_text("{}")
    for src in (orbax, orbax.parent):
        res = run(src, tmp_path / "out")
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1 and "an Orbax checkpoint folder" in lines[0]
        assert "flax.serialization.to_bytes" in lines[0]

    params = scenic_fe_params()
    block = params["SpatialTransformer"]["encoderblock_0"]
    attn = block.pop("MultiHeadDotProductAttention_0")
    block["MultiHeadDotProductAttention_time"] = block["MultiHeadDotProductAttention_space"] = attn
    res = run(write_checkpoint(tmp_path, params), tmp_path / "out", "--image-size", "32")
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and "factorised self-attention ViViT (model 3)" in lines[0]

    # Model 4 (factorised dot-product attention) keeps model 1's tree without a class token.
    fe = scenic_fe_params(classifier="gap")
    model4 = {"embedding": fe["embedding"], "Transformer": fe["SpatialTransformer"],
              "output_projection": fe["output_projection"]}
    res = run(write_checkpoint(tmp_path, model4, "params", name="m4"), tmp_path / "out", "--image-size", "32")
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and "(model 4" in lines[0]
    assert not (tmp_path / "out").exists()


def test_broken_fe_mapping_fails_verification(tmp_path, monkeypatch):
    from vivitcli.convert import scenic_fe

    # the temporal encoder's q and k kernels exchanged
    swap_query_key(monkeypatch, scenic_fe, "vivit_fe.temporal.encoder.layer.0.attention.attention.query.weight")
    res = run(write_checkpoint(tmp_path, scenic_fe_params()), tmp_path / "out", "--image-size", "32")
    assert res.exit_code == 1 and "verification failed: max |Δlogits|" in res.stderr
    assert not (tmp_path / "out").exists()


def test_stale_staging_is_cleaned_and_umask_honoured(tmp_path):
    ckpt = write_checkpoint(tmp_path, scenic_fe_params())
    dead = tmp_path / ".out.999999999.abcd1234.partial"       # a pid no process can have
    live = tmp_path / f".out.{os.getppid()}.efgh5678.partial"  # a running process's staging folder
    other = tmp_path / ".other.999999999.abcd1234.partial"     # another destination's
    for d in (dead, live, other):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x" * 100)
    old = os.umask(0o027)
    try:
        res = run(ckpt, tmp_path / "out", "--image-size", "32", "--no-verify")
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert not dead.exists() and live.exists() and other.exists()
    out = tmp_path / "out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == \
        {"config.json": 0o640, "model.safetensors": 0o640, "preprocessor_config.json": 0o640}


def test_placeholder_multi_head_gets_shipped_lists_per_head(tmp_path):
    params = scenic_fe_params(classes=397, dim=16, spatial=(1, 2, 32), temporal=(1, 2, 32))
    dst = tmp_path / "epic"
    res = run(write_checkpoint(tmp_path, params), dst, "--image-size", "32", "--no-verify",
              "--class-splits", "noun:300,verb:97", "--labels", tmp_path / "names.txt")
    assert res.exit_code == 2  # no such file: nothing written
    config_res = run(write_checkpoint(tmp_path, params), dst, "--image-size", "32", "--no-verify")
    assert config_res.exit_code == 0, config_res.output
    config = json.loads((dst / "config.json").read_text())
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(397)}     # as a hand-made config might say
    config.pop("label2id")
    (dst / "config.json").write_text(json.dumps(config))
    import vivitcli

    model = vivitcli.load_model(str(dst), device="cpu")
    assert model.label_source == "placeholder"
    assert model.head_labels["noun"][:2] == ["tap", "spoon"] and model.head_labels["verb"][-1] == "unfreeze"


def test_shipped_label_lists():
    from vivitcli.labels import dataset_labels, read_labels

    k600 = dataset_labels("kinetics600")
    assert len(k600) == 600 == len(set(k600)) and list(k600) == sorted(k600)
    # Kinetics-600 extends Kinetics-400; 32 K400 names were respelled or split (e.g. "dying hair").
    assert len(set(dataset_labels("kinetics400")) & set(k600)) == 368 and "dyeing hair" in k600
    verbs, nouns = dataset_labels("epic-kitchens-100-verb"), dataset_labels("epic-kitchens-100-noun")
    assert (len(verbs), len(nouns)) == (97, 300) and (verbs[0], nouns[0]) == ("take", "tap")
    assert read_labels("k600", 600)[1] == "kinetics600"
