"""`vivit convert`: each source format → the Hugging Face layout, checked against transformers and vivitcli.

Original releases are built here from tiny transformers models by inverse mappings written independently of
the converter (tests/convert_formats.py); the converted result must reproduce the source model's logits in
transformers' own from_pretrained, load in vivitcli.load_model, and the CLI must be safe about what it writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from tests.checkpoints import load_reference, make_tiny_videomae, make_tiny_vivit, random_pixels
from tests.convert_formats import (
    flax_msgpack_bytes, scenic_train_state, swap_query_key, videomae_to_original, vivit_to_scenic,
)
from vivitcli.cli import app
from vivitcli.convert import ConvertOptions, convert_checkpoint

# Tiny models: 4 frames of 32 px, 4 heads of 8 channels. What the original formats cannot tell is passed as
# flags, as a user of a non-default release would.
TINY_FLAGS = ["--num-frames", "4", "--image-size", "32", "--head-dim", "8"]
runner = CliRunner()


def run(*args):
    result = runner.invoke(app, ["convert", *map(str, args)])
    return result


def read_state(path: Path) -> dict:
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def logits(model, pv, **kw):
    with torch.no_grad():
        return model(pixel_values=pv, **kw).logits


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def original_videomae(tmp_path, *, wrapper="model", name="orig.pth", **kw) -> tuple[Path, Path]:
    """(HF source dir, original .pth written from it)."""
    hf_dir = make_tiny_videomae(tmp_path / "hf_videomae", layer_norm_eps=1e-6, **kw)
    sd = videomae_to_original(read_state(hf_dir))
    path = tmp_path / name
    torch.save({wrapper: sd, "epoch": 99} if wrapper else sd, path)
    return hf_dir, path


def scenic_checkpoint(tmp_path, *, chunk=None, **kw) -> tuple[Path, Path]:
    hf_dir = make_tiny_vivit(tmp_path / "hf_vivit", **kw)
    config = json.loads((hf_dir / "config.json").read_text())
    tree = scenic_train_state(vivit_to_scenic(read_state(hf_dir), config["num_attention_heads"]))
    path = tmp_path / "checkpoint"
    path.write_bytes(flax_msgpack_bytes(tree, chunk=chunk))
    return hf_dir, path


# ------------------------------------------------------------------------------------------- HF pickles

@pytest.mark.parametrize("maker,shard", [(make_tiny_vivit, None), (make_tiny_videomae, "30KB")])
def test_hf_pickle_dir_becomes_safetensors_with_same_logits(tmp_path, maker, shard):
    src = maker(tmp_path / "src", safe_serialization=False, max_shard_size=shard, num_labels=3)
    assert not list(src.glob("*.safetensors"))
    dst = tmp_path / "out"
    res = run(src, dst)
    assert res.exit_code == 0, res.output
    assert "verify: max |Δlogits| =" in res.stdout
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    assert json.loads((dst / "preprocessor_config.json").read_text()) == \
        json.loads((src / "preprocessor_config.json").read_text())
    pv = random_pixels(src, batch=2)
    expected = logits(load_reference(src), pv)
    torch.testing.assert_close(logits(load_reference(dst), pv), expected, rtol=0, atol=1e-6)

    import vivitcli

    model = vivitcli.load_model(str(dst), device="cpu", dtype="float32", attn="eager")
    torch.testing.assert_close(model(pv), expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------- VideoMAE release

@pytest.mark.parametrize("wrapper,mean_pooling", [("model", True), ("module", False), (None, True)])
def test_videomae_finetuned_release_matches_transformers(tmp_path, wrapper, mean_pooling):
    hf_dir, pth = original_videomae(tmp_path, wrapper=wrapper, use_mean_pooling=mean_pooling, num_labels=4)
    dst = tmp_path / "out"
    res = run(pth, dst, *TINY_FLAGS)
    assert res.exit_code == 0, res.output
    assert "verify: max |Δlogits| =" in res.stdout

    config = json.loads((dst / "config.json").read_text())
    assert config["architectures"] == ["VideoMAEForVideoClassification"]
    assert (config["num_attention_heads"], config["num_frames"], config["image_size"]) == (4, 4, 32)
    assert config["use_mean_pooling"] is mean_pooling
    pre = json.loads((dst / "preprocessor_config.json").read_text())
    assert pre["image_mean"] == [0.485, 0.456, 0.406] and pre["crop_size"] == {"height": 32, "width": 32}

    pv = random_pixels(hf_dir, batch=2)
    expected = logits(load_reference(hf_dir), pv)
    torch.testing.assert_close(logits(load_reference(dst), pv), expected, rtol=0, atol=1e-5)

    import vivitcli

    model = vivitcli.load_model(str(dst), device="cpu", dtype="float32", attn="eager")
    torch.testing.assert_close(model(pv), expected, rtol=1e-4, atol=1e-4)


def test_videomae_pretraining_release_keeps_decoder_and_strips_to_encoder(tmp_path):
    hf_dir, pth = original_videomae(tmp_path, pretraining=True, use_mean_pooling=False)
    dst = tmp_path / "out"
    res = run(pth, dst, *TINY_FLAGS, "--decoder-num-heads", "2")
    assert res.exit_code == 0, res.output
    assert "verify: max |Δfeatures| =" in res.stdout
    config = json.loads((dst / "config.json").read_text())
    assert config["architectures"] == ["VideoMAEForPreTraining"]
    assert (config["decoder_hidden_size"], config["decoder_num_attention_heads"]) == (16, 2)

    pv = random_pixels(hf_dir, batch=2)
    seq = (4 // 2) * (32 // 8) ** 2
    mask = torch.zeros(2, seq, dtype=torch.bool)
    mask[:, ::2] = True
    expected = logits(load_reference(hf_dir), pv, bool_masked_pos=mask)
    torch.testing.assert_close(logits(load_reference(dst), pv, bool_masked_pos=mask), expected, rtol=0, atol=1e-5)

    stripped = tmp_path / "encoder"
    res = run(pth, stripped, *TINY_FLAGS, "--decoder-num-heads", "2", "--strip-head")
    assert res.exit_code == 0, res.output
    assert json.loads((stripped / "config.json").read_text())["architectures"] == ["VideoMAEModel"]
    assert not [k for k in read_state(stripped) if "decoder" in k or k == "mask_token"]
    with torch.no_grad():
        want = load_reference(hf_dir).videomae(pv).last_hidden_state
        got = load_reference(stripped)(pv).last_hidden_state
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_videomae_release_needs_head_flags_when_width_is_not_64_multiple(tmp_path):
    _, pth = original_videomae(tmp_path)
    res = run(pth, tmp_path / "out", "--num-frames", "4", "--image-size", "32")  # default head size 64
    assert res.exit_code == 1
    assert "not a multiple of head size 64" in res.stderr and "--num-heads" in res.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------- Scenic ViViT

def test_scenic_flax_checkpoint_matches_transformers(tmp_path):
    hf_dir, ckpt = scenic_checkpoint(tmp_path, num_labels=6,
                                     chunk=("optimizer", "target", "Transformer", "posembed_input", "pos_embedding"))
    dst = tmp_path / "out"
    res = run(ckpt, dst, "--image-size", "32")
    assert res.exit_code == 0, res.output
    assert "verify: max |Δlogits| =" in res.stdout
    config = json.loads((dst / "config.json").read_text())
    # Frame count and heads come from the checkpoint's own shapes.
    assert (config["num_frames"], config["num_attention_heads"], config["tubelet_size"]) == (4, 4, [2, 8, 8])
    assert config["hidden_act"] == "gelu_fast"
    pre = json.loads((dst / "preprocessor_config.json").read_text())
    assert (pre["size"], pre["rescale_factor"], pre["offset"], pre["do_normalize"]) == \
        ({"shortest_edge": 32}, 1 / 127.5, True, True)

    pv = random_pixels(hf_dir, batch=2)
    expected = logits(load_reference(hf_dir), pv)
    torch.testing.assert_close(logits(load_reference(dst), pv), expected, rtol=0, atol=1e-5)

    import vivitcli

    model = vivitcli.load_model(str(dst), device="cpu", dtype="float32", attn="eager")
    torch.testing.assert_close(model(pv), expected, rtol=1e-4, atol=1e-4)


def test_scenic_original_preprocessing_gives_minus_one_to_one(tmp_path):
    _, ckpt = scenic_checkpoint(tmp_path)
    dst = tmp_path / "out"
    res = run(ckpt, dst, "--image-size", "224", "--no-verify", "--preprocess", "original")
    # 33 position rows do not tile 224 px frames of 8 px patches (784 per frame): the size must fit.
    assert res.exit_code == 1 and "do not fit 224 px frames" in res.stderr
    res = run(ckpt, dst, "--image-size", "32", "--preprocess", "original")
    assert res.exit_code == 0, res.output
    pre = json.loads((dst / "preprocessor_config.json").read_text())
    assert pre["do_normalize"] is False and pre["offset"] is True and pre["rescale_factor"] == 1 / 127.5
    assert pre["size"] == {"shortest_edge": round(32 * 256 / 224)}


def test_scenic_checkpoint_directory_picks_latest_step(tmp_path):
    _, ckpt = scenic_checkpoint(tmp_path)
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    (ckdir / "checkpoint_10").write_bytes(b"\x81\xa1x\x01")  # an older, unrelated tree
    os.replace(ckpt, ckdir / "checkpoint_300")
    res = run(ckdir, tmp_path / "out", "--image-size", "32")
    assert res.exit_code == 0, res.output


# ------------------------------------------------------------------------------ dtype, head, labels

@pytest.mark.parametrize("dtype,torch_dtype", [("float16", torch.float16), ("bfloat16", torch.bfloat16)])
def test_dtype_casts_every_float_tensor(tmp_path, dtype, torch_dtype):
    hf_dir, pth = original_videomae(tmp_path)
    dst = tmp_path / "out"
    res = run(pth, dst, *TINY_FLAGS, "--dtype", dtype)
    assert res.exit_code == 0, res.output
    state = read_state(dst)
    assert {t.dtype for t in state.values()} == {torch_dtype}
    assert json.loads((dst / "config.json").read_text())["torch_dtype"] == dtype
    pv = random_pixels(hf_dir, batch=1)
    expected = logits(load_reference(hf_dir), pv)
    got = logits(load_reference(dst), pv)  # loaded in float32: the difference is weight rounding only
    tol = 2e-2 if dtype == "float16" else 1e-1
    assert (got - expected).abs().max() < tol * max(1.0, float(expected.abs().max()))
    assert not torch.equal(got, expected)


def test_strip_head_writes_embedding_only_checkpoint(tmp_path):
    src = make_tiny_vivit(tmp_path / "src", safe_serialization=False)
    dst = tmp_path / "out"
    res = run(src, dst, "--strip-head")
    assert res.exit_code == 0, res.output
    assert not [k for k in read_state(dst) if k.startswith("classifier")]
    config = json.loads((dst / "config.json").read_text())
    assert config["id2label"] == {}
    pv = random_pixels(src, batch=2)
    with torch.no_grad():
        ref = load_reference(src)
        want = ref.vivit(pv).last_hidden_state[:, 0]  # CLS token of the final LayerNorm
    # transformers uses an Identity classifier for num_labels 0: its logits are the CLS embedding.
    torch.testing.assert_close(logits(load_reference(dst), pv), want, rtol=0, atol=1e-5)

    import vivitcli

    model = vivitcli.load_model(str(dst), device="cpu", dtype="float32", attn="eager")
    assert model.num_labels == 0
    torch.testing.assert_close(model.embed(pv), want, rtol=1e-4, atol=1e-4)


def test_labels_kinetics_and_file(tmp_path):
    hf_dir, pth = original_videomae(tmp_path, num_labels=400)
    dst = tmp_path / "k400"
    res = run(pth, dst, *TINY_FLAGS, "--labels", "kinetics400")
    assert res.exit_code == 0, res.output
    config = json.loads((dst / "config.json").read_text())
    assert config["id2label"]["116"] == "eating spaghetti"
    assert config["label2id"]["eating spaghetti"] == 116 and len(config["label2id"]) == 400

    import vivitcli

    model = vivitcli.load_model(str(dst), device="cpu", dtype="float32")
    assert model.labels[116] == "eating spaghetti"

    src = make_tiny_vivit(tmp_path / "five", safe_serialization=False, num_labels=3)
    names = tmp_path / "names.txt"
    names.write_text("juggling\nsurfing\nknitting\n")
    res = run(src, tmp_path / "named", "--labels", names)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "named" / "config.json").read_text())["id2label"] == \
        {"0": "juggling", "1": "surfing", "2": "knitting"}
    assert load_reference(tmp_path / "named").config.id2label[1] == "surfing"

    names.write_text("juggling\nsurfing\n")
    res = run(src, tmp_path / "wrong", "--labels", names)
    assert res.exit_code == 2 and "2 names, but the model has 3 classes" in res.stderr
    assert not (tmp_path / "wrong").exists()


# ------------------------------------------------------------------------------------------- safety

def test_existing_destination_needs_force(tmp_path):
    src = make_tiny_vivit(tmp_path / "src", safe_serialization=False)
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    res = run(src, dst)
    assert res.exit_code == 1
    assert res.stderr.strip().count("\n") == 0 and "already exists" in res.stderr and "--force" in res.stderr
    assert listing(dst) == ["keep.txt"] and (dst / "keep.txt").read_text() == "mine"

    res = run(src, dst, "--force")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temporary or backup folder left


class _Payload:
    """Unpickling this would create a file: the converter must never get that far."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


@pytest.mark.parametrize("as_hf_dir", [False, True])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, as_hf_dir):
    marker = tmp_path / "pwned"
    if as_hf_dir:
        src = make_tiny_vivit(tmp_path / "src", safe_serialization=False)
        payload = src / "pytorch_model.bin"
    else:
        src = payload = tmp_path / "evil.pth"
    torch.save({"model": {"patch_embed.proj.weight": torch.zeros(1)}, "trap": _Payload(marker)}, payload)
    dst = tmp_path / "out"
    res = run(src, dst)
    assert res.exit_code == 1
    assert not marker.exists()
    assert not dst.exists()
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "refused to unpickle" in lines[0]
    assert str(payload) in lines[0]


def test_failed_verification_leaves_nothing_behind(tmp_path, monkeypatch):
    from vivitcli.convert import scenic_vivit

    _, ckpt = scenic_checkpoint(tmp_path)
    swap_query_key(monkeypatch, scenic_vivit, "vivit.encoder.layer.0.attention.attention.query.weight")
    before = listing(tmp_path)
    dst = tmp_path / "nested" / "out"
    res = run(ckpt, dst, "--image-size", "32")
    assert res.exit_code == 1
    assert "verification failed: max |Δlogits|" in res.stderr and "nothing written" in res.stderr
    assert listing(tmp_path) == before  # neither DST, its new parent, nor a temporary folder


def test_broken_sources_fail_with_one_line_naming_the_file(tmp_path):
    _, ckpt = scenic_checkpoint(tmp_path)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(ckpt.read_bytes()[:-100])
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases = [(truncated, "not a readable Flax msgpack checkpoint"), (text, "neither a PyTorch pickle"),
             (tmp_path / "missing.pth", "no such file")]
    for src, message in cases:
        res = run(src, tmp_path / "out")
        assert res.exit_code == 1, src
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and str(src) in lines[0] and message in lines[0]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------- library

def test_library_api_reports_verification(tmp_path):
    _, ckpt = scenic_checkpoint(tmp_path)
    result = convert_checkpoint(ckpt, tmp_path / "out", ConvertOptions(image_size=32), labels=None)
    assert result.format == "scenic-flax" and result.verified and result.compared == "logits"
    assert 0 <= result.max_abs_diff <= result.tolerance and result.tolerance >= 1e-4
    assert result.num_labels == 5 and result.label_source == "placeholder"
    assert result.architecture == "VivitForVideoClassification"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_verify_device_cuda_without_cuda_is_a_usage_error(tmp_path):
    src = make_tiny_vivit(tmp_path / "src", safe_serialization=False)
    res = run(src, tmp_path / "out", "--device", "cuda")
    assert res.exit_code == 2 and "CUDA is not available" in res.stderr
    assert not (tmp_path / "out").exists()


def test_safetensors_preferred_over_a_pickle_next_to_it(tmp_path):
    src = make_tiny_vivit(tmp_path / "src")  # model.safetensors
    marker = tmp_path / "pwned"
    torch.save({"trap": _Payload(marker)}, src / "pytorch_model.bin")
    res = run(src, tmp_path / "out", "--dtype", "bfloat16")
    assert res.exit_code == 0, res.output
    assert "[from hf-safetensors]" in res.stdout and not marker.exists()
    assert {t.dtype for t in read_state(tmp_path / "out").values()} == {torch.bfloat16}
