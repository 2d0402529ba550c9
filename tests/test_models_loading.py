"""load_model resolution and errors, labels, dtype/device options, position interpolation."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tests.checkpoints import make_tiny_videomae, make_tiny_vivit, random_pixels
from vivitcli import load_model
from vivitcli.errors import CheckpointError, ModelNotFoundError, UsageError


# vivit_dir / videomae_dir: session fixtures in tests/conftest.py.


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


# ---- resolution -----------------------------------------------------------------------------------------
def test_missing_path_names_what_was_looked_for(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        load_model(tmp_path / "nope")
    text = _one_line(err)
    assert "nope" in text and "no such directory" in text and "vivit" in text   # lists the aliases


def test_file_instead_of_directory(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file, not a checkpoint directory"):
        load_model(tmp_path / "clip.mp4")


def test_config_or_weight_file_path_loads_its_directory(vivit_dir):
    model = load_model(vivit_dir / "config.json", device="cpu")
    assert model.model_type == "vivit" and model.num_labels == 5


def _fake_cache(root, repo_id, src, revision="0123abcd"):
    """A huggingface_hub cache entry as hf_hub_download writes it: models--owner--name/{refs/main,
    blobs/<sha256>, snapshots/<rev>/<file> -> ../../blobs/<sha256>} (relative symlinks into blobs/)."""
    import hashlib
    import os

    repo = root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        data = f.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / digest).write_bytes(data)
        os.symlink(os.path.join("..", "..", "blobs", digest), snap / f.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snap


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty huggingface_hub cache in offline mode. huggingface_hub reads HF_HUB_CACHE / HF_HUB_OFFLINE
    once, at import, into its constants (what vivitcli reads); a test sets those constants."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_hub_id_resolves_from_hf_hub_cache_without_network(hf_cache, vivit_dir):
    snapshot = _fake_cache(hf_cache, "acme/tiny-vivit", vivit_dir)
    assert (snapshot / "model.safetensors").is_symlink()          # the real layout: links into blobs/
    model = load_model("acme/tiny-vivit", device="cpu")
    assert model.name == "acme/tiny-vivit" and model.path == snapshot


def test_hf_home_and_offline_variables_are_honoured(tmp_path, videomae_dir):
    """The environment a user sets before running vivit reaches huggingface_hub's constants."""
    import os
    import subprocess
    import sys

    snap = _fake_cache(tmp_path / "hfhome" / "hub", "acme/tiny-mae", videomae_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(HF_HOME=str(tmp_path / "hfhome"), HF_HUB_OFFLINE="1")
    code = ("from vivitcli.models.hub import resolve_model_path as r\n"
            "print(r('acme/tiny-mae')[0])\n"
            "try:\n    r('acme/not-cached')\nexcept Exception as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stderr
    assert lines[0] == str(snap)
    assert "HF_HUB_OFFLINE is set" in lines[1] and str(tmp_path / "hfhome" / "hub") in lines[1]


def test_alias_not_cached_offline_says_what_to_do(hf_cache):
    with pytest.raises(ModelNotFoundError) as err:
        load_model("vivit")
    text = _one_line(err)
    assert "google/vivit-b-16x2-kinetics400" in text and str(hf_cache) in text
    assert "`hf download google/vivit-b-16x2-kinetics400`" in text and "--model demo" in text


def test_cached_snapshot_without_weights_is_not_used(hf_cache, vivit_dir):
    snap = _fake_cache(hf_cache, "acme/partial", vivit_dir)
    (snap / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="acme/partial"):
        load_model("acme/partial")


def test_older_complete_revision_is_used_when_main_is_partial(hf_cache, vivit_dir):
    old = _fake_cache(hf_cache, "acme/two", vivit_dir, revision="aaaa1111")
    new = _fake_cache(hf_cache, "acme/two", vivit_dir, revision="bbbb2222")    # refs/main -> bbbb2222
    (new / "model.safetensors").unlink()
    from vivitcli.models.hub import cached_checkpoints, find_in_cache

    assert find_in_cache("acme/two") == old
    assert "acme/two" in cached_checkpoints()


def test_mistyped_name_suggests_the_nearest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError) as err:
        load_model("videomea")
    assert "did you mean 'videomae'?" in _one_line(err)


def test_demo_alias_points_into_the_package():
    from vivitcli.models.hub import DEMO_DIR, resolve_model_path

    if not (DEMO_DIR / "config.json").is_file():
        with pytest.raises(ModelNotFoundError, match="demo"):
            resolve_model_path("demo")
    else:
        assert resolve_model_path("demo") == (DEMO_DIR, "demo")


# ---- checkpoint errors -----------------------------------------------------------------------------------
def test_directory_without_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path)
    assert "no config.json" in _one_line(err)


def test_directory_without_weights_lists_its_files(tmp_path, vivit_dir):
    ckpt = _copy(vivit_dir, tmp_path / "c")
    (ckpt / "model.safetensors").unlink()
    (ckpt / "flax_model.msgpack").write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        load_model(ckpt)
    text = _one_line(err)
    assert "no model.safetensors or pytorch_model.bin" in text and "flax_model.msgpack" in text
    assert "vivit convert" in text


def test_mismatched_keys_are_listed(tmp_path, vivit_dir):
    from safetensors.torch import load_file, save_file

    ckpt = _copy(vivit_dir, tmp_path / "c")
    state = load_file(str(ckpt / "model.safetensors"))
    del state["vivit.encoder.layer.1.output.dense.weight"]
    state["vivit.encoder.layer.1.surprise.weight"] = torch.zeros(2)
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_model(ckpt)
    text = _one_line(err)
    assert "1 missing key(s): encoder.layer.1.output.dense.weight" in text
    assert "1 unexpected key(s): encoder.layer.1.surprise.weight" in text


def test_config_with_more_layers_than_weights(tmp_path, videomae_dir):
    ckpt = _copy(videomae_dir, tmp_path / "c")
    config = json.loads((ckpt / "config.json").read_text())
    config["num_hidden_layers"] = 3
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"missing key\(s\): encoder\.layer\.2\."):
        load_model(ckpt)


def test_shape_mismatch_is_reported(tmp_path, vivit_dir):
    ckpt = _copy(vivit_dir, tmp_path / "c")
    config = json.loads((ckpt / "config.json").read_text())
    config["intermediate_size"] = 48
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as err:
        load_model(ckpt)
    assert "shapes do not fit" in _one_line(err) and "(64, 32) vs (48, 32)" in str(err.value)


def test_unsupported_model_type(tmp_path, vivit_dir):
    ckpt = _copy(vivit_dir, tmp_path / "c")
    config = json.loads((ckpt / "config.json").read_text())
    config["model_type"] = "bert"
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="model_type 'bert' is not supported"):
        load_model(ckpt)


def test_corrupt_safetensors(tmp_path, vivit_dir):
    ckpt = _copy(vivit_dir, tmp_path / "c")
    (ckpt / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError) as err:
        load_model(ckpt)
    assert "model.safetensors" in _one_line(err)


def test_pickle_with_code_is_refused(tmp_path, vivit_dir):
    ckpt = _copy(vivit_dir, tmp_path / "c")
    (ckpt / "model.safetensors").unlink()
    torch.save({"weight": torch.zeros(1), "hook": print}, ckpt / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as err:
        load_model(ckpt)
    assert "weights_only=True" in _one_line(err)


def test_missing_shard(tmp_path, videomae_dir):
    ckpt = make_tiny_videomae(tmp_path / "sharded", max_shard_size="30KB")
    next(ckpt.glob("model-00002-of-*.safetensors")).unlink()
    with pytest.raises(CheckpointError, match="shard file"):
        load_model(ckpt)


# ---- options -------------------------------------------------------------------------------------------
def test_dtype_device_and_attn_options(vivit_dir):
    model = load_model(vivit_dir, device="cpu", dtype="float16", attn="eager")
    assert model.dtype == torch.float16 and model.device.type == "cpu" and model.attn == "eager"
    auto = load_model(vivit_dir, device="auto", dtype="auto")
    if auto.device.type == "cpu":
        from vivitcli.models.backends.cpu import cpu_has_native_bf16

        # CPU auto: bfloat16 only where the CPU computes it natively, else the reference float32.
        assert auto.dtype == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)
    with pytest.raises(UsageError, match="dtype"):
        load_model(vivit_dir, dtype="int8")
    with pytest.raises(UsageError, match="attention"):
        load_model(vivit_dir, attn="flash")
    with pytest.raises(UsageError, match="attention"):
        model.set_attn("flash")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            load_model(vivit_dir, device="cuda")


def test_metadata_and_preprocessor_follow_the_checkpoint(vivit_dir):
    import numpy as np

    model = load_model(vivit_dir, device="cpu")
    assert (model.num_frames, model.image_size, model.model_type) == (4, 32, "vivit")
    assert model.config["model_type"] == "vivit" and model.name == str(vivit_dir)
    assert model.preprocessor.crop_size == {"height": 32, "width": 32} and model.preprocessor.offset
    frames = np.zeros((4, 48, 64, 3), dtype=np.uint8)
    frames[:, :, 32:] = 255
    pixels = model.preprocess(frames)
    # shortest edge 32 → 32x42, centre crop 32: the 255 half starts at column 21 - 5 = 16.
    # ViViT's rescale 1/127.5 with offset, then mean = std = 0.5: 0 → -3, 255 → 1.
    assert pixels.shape == (4, 3, 32, 32)
    assert torch.allclose(pixels[..., :15], torch.tensor(-3.0)) and torch.allclose(pixels[..., 17:], torch.tensor(1.0))


def test_bad_input_shape_is_a_usage_error(vivit_dir):
    model = load_model(vivit_dir, device="cpu")
    with pytest.raises(UsageError, match="pixel_values must be"):
        model(torch.zeros(4, 3, 32, 32))
    with pytest.raises(UsageError, match="channels"):
        model(torch.zeros(1, 4, 1, 32, 32))


def test_build_model_from_presets_has_full_size_shapes():
    from vivitcli.models import build_model
    from vivitcli.models.presets import PRESETS, preset

    assert set(PRESETS) == {"google/vivit-b-16x2-kinetics400", "MCG-NJU/videomae-base-finetuned-kinetics"}
    cfg = preset("vivit")
    cfg.update(num_hidden_layers=1)           # full width, one layer: keeps the test fast
    model = build_model(cfg, device="cpu", dtype="bfloat16", seed=0)
    assert model.pos_embed.shape == (1, 1 + 16 * 14 * 14, 768) and model.num_labels == 400
    assert model.dtype == torch.bfloat16 and model.labels[116] == "eating spaghetti"
    assert model.preprocessor.crop_size == {"height": 224, "width": 224}
    again = build_model(cfg, device="cpu", dtype="bfloat16", seed=0)
    assert torch.equal(model.blocks[0].attn.qkv.weight, again.blocks[0].attn.qkv.weight)
    mae = preset("videomae")
    assert (mae["num_frames"], mae["hidden_size"], mae["use_mean_pooling"]) == (16, 768, True)
    with pytest.raises(UsageError, match="unknown preset"):
        preset("resnet")


# ---- labels --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_labels, names, source, check", [
    (400, None, "kinetics400", (116, "eating spaghetti")),
    (174, None, "something-something-v2", (0, "Approaching something with your camera")),
    (5, None, "placeholder", (4, "LABEL_4")),
    (3, ["run", "jump", "swim"], "checkpoint", (2, "swim")),
])
def test_labels_from_checkpoint(tmp_path, num_labels, names, source, check):
    ckpt = make_tiny_vivit(tmp_path / "c", num_labels=num_labels, label_names=names)
    model = load_model(ckpt, device="cpu")
    assert model.label_source == source and len(model.labels) == num_labels
    assert model.labels[check[0]] == check[1]


def test_shipped_label_lists():
    from vivitcli.labels import dataset_labels, resolve_labels

    k400 = dataset_labels("kinetics400")
    assert len(k400) == 400 and len(set(k400)) == 400 and list(k400) == sorted(k400)
    assert len(dataset_labels("something-something-v2")) == 174
    # A placeholder map that is shuffled is real information: keep it.
    assert resolve_labels({0: "LABEL_1", 1: "LABEL_0"}, 2) == (["LABEL_1", "LABEL_0"], "checkpoint")


# ---- position interpolation ---------------------------------------------------------------------------
def test_table_resampled_to_its_own_grid_is_unchanged():
    from vivitcli.models.layers import interpolate_pos_table

    table = torch.randn(3 * 4 * 5, 8)
    assert torch.equal(interpolate_pos_table(table, (3, 4, 5), (3, 4, 5)), table)


def test_resampling_keeps_the_time_and_space_axes_apart():
    from vivitcli.models.layers import interpolate_pos_table

    t, h, w, d = 4, 3, 5, 6
    time_only = torch.randn(t, 1, 1, d).expand(t, h, w, d).reshape(-1, d)        # varies only over time
    out = interpolate_pos_table(time_only, (t, h, w), (t, 6, 2)).reshape(t, 6, 2, d)
    assert torch.allclose(out, out[:, :1, :1].expand_as(out), atol=1e-6)         # space resampling kept it flat
    assert torch.allclose(out[:, 0, 0], time_only.reshape(t, h, w, d)[:, 0, 0], atol=1e-6)
    space_only = torch.randn(1, h, w, d).expand(t, h, w, d).reshape(-1, d)
    out = interpolate_pos_table(space_only, (t, h, w), (7, h, w)).reshape(7, h, w, d)
    assert torch.allclose(out, space_only.reshape(t, h, w, d)[:1].expand(7, h, w, d), atol=1e-6)
    # Linear in time: halving the frame count averages neighbouring slots.
    ramp = torch.arange(4.0).reshape(4, 1, 1, 1).expand(4, h, w, d).reshape(-1, d)
    out = interpolate_pos_table(ramp, (4, h, w), (2, h, w)).reshape(2, h, w, d)
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor([0.5, 2.5]))


@pytest.mark.parametrize("maker", [make_tiny_vivit, make_tiny_videomae])
def test_other_sizes_and_frame_counts(tmp_path, maker):
    model = load_model(maker(tmp_path / "c"), device="cpu")
    native = random_pixels(model.path, batch=2)
    if model.model_type == "vivit":
        assert model.pos_table(model.cfg.grid) is model.pos_embed      # native: the table itself, untouched
    else:
        assert torch.equal(model.pos_table(model.cfg.grid, torch.float32), model.pos_embed)
    before = model(native)
    extra = 1 if model.model_type == "vivit" else 0
    for frames, size in [(8, 32), (2, 32), (4, 48), (6, 16), (4, 40)]:
        x = random_pixels(model.path, batch=2, num_frames=frames, image_size=size)
        hidden = model.forward_features(x)
        assert hidden.shape == (2, extra + (frames // 2) * (size // 8) ** 2, 32)
        logits = model(x)
        assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    assert torch.equal(model(native), before)                    # other grids leave the native path alone
    wide = torch.randn(1, 4, 3, 24, 48)                          # non-square: 3 x 6 patches per frame
    assert model.forward_features(wide).shape == (1, extra + 2 * 3 * 6, 32)
    assert torch.isfinite(model(wide)).all()


def test_interpolated_table_is_cached_per_grid(vivit_dir):
    model = load_model(vivit_dir, device="cpu")
    with torch.no_grad():                                       # as in an eval-mode forward
        first = model.pos_table((3, 6, 6))
        assert model.pos_table((3, 6, 6)) is first
        assert model.pos_table((3, 5, 5)) is not first
        assert torch.equal(first[0, 0], model.pos_embed[0, 0])  # the CLS row is carried over as is
        model.to(torch.bfloat16)
        assert model.pos_table((3, 6, 6)).dtype == torch.bfloat16   # .to() drops stale tables
    assert model.pos_table((3, 6, 6)).requires_grad             # with autograd on: computed fresh


def test_videomae_native_table_is_transformers_sinusoid():
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    from vivitcli.models.layers import sinusoid_table

    assert torch.equal(sinusoid_table(392, 48), get_sinusoid_encoding_table(392, 48)[0])
