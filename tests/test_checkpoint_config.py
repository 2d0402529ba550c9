"""config.json and preprocessor_config.json are validated before anything is built (issue 11 items 10-13):
every field's type and range, the weights' shapes against the config, the old VideoMAE `qkv_bias` spelling,
and transformers' activations (supported ones agree numerically with ACT2FN, the rest are one line)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from tests.checkpoints import load_reference, make_tiny_videomae, make_tiny_vivit, random_pixels
from vivitcli import load_model
from vivitcli.errors import CheckpointError


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def _with_json(src, dst, name, change):
    """Copy checkpoint `src` to `dst` with `change(dict)` applied to its `name` JSON file (written as a file)."""
    shutil.copytree(src, dst)
    data = json.loads((dst / name).read_text())
    change(data)
    (dst / name).write_text(json.dumps(data))
    return dst


def _set(**fields):
    return lambda c: c.update(fields)


def _drop(*keys):
    return lambda c: [c.pop(k, None) for k in keys]


# ---- config.json: one line naming the file and the field -------------------------------------------------
VIVIT_BAD = [
    ("hidden_size", 32.9, "must be an integer"),
    ("hidden_size", "32", "must be an integer"),
    ("hidden_size", True, "must be an integer"),
    ("hidden_size", -32, "must be between 1 and"),
    ("qkv_bias", "no", "must be true or false"),
    ("qkv_bias", 1, "must be true or false"),
    ("num_attention_heads", 0, "must be between 1 and"),
    ("num_attention_heads", 3, "must divide hidden_size 32"),
    ("num_hidden_layers", 100000, "must be between 1 and 1000"),
    ("num_hidden_layers", 2.0, "must be an integer"),
    ("intermediate_size", 0, "must be between 1 and"),
    ("num_channels", 0, "must be between 1 and"),
    ("num_frames", 0, "must be between 1 and"),
    ("image_size", -32, "must be between 1 and"),
    ("image_size", [32], "must be an integer or a list of 2 integers"),
    ("image_size", "32", "must be an integer or a list of 2 integers"),
    ("tubelet_size", [0, 8, 8], "must be between 1 and"),
    ("tubelet_size", [2, 8], "must be a list of 3 integers"),
    ("tubelet_size", 2, "must be a list of 3 integers"),
    ("tubelet_size", [8, 8, 8], "must fit num_frames 4"),
    ("tubelet_size", [2, 64, 8], "must fit image_size 32x32"),
    ("hidden_act", "foo", "must be one of gelu, "),
    ("hidden_act", "prelu", "must be one of gelu, "),
    ("hidden_act", ["gelu"], "must be one of gelu, "),
    ("layer_norm_eps", 0, "must be a number between 0 and 1"),
    ("layer_norm_eps", "1e-6", "must be a number between 0 and 1"),
    ("id2label", ["a", "b"], "must be an object of class index"),
    ("id2label", {"a": "x"}, "keys must be class indices"),
    ("id2label", {"0": 5}, "must be a string"),
    ("num_labels", -1, "must be between 0 and"),
    ("architectures", "VivitForVideoClassification", "must be a list of class names"),
    ("_name_or_path", ["x"], "must be a string"),
    ("hidden_size", None, "must be an integer"),
]


VIDEOMAE_BAD = [
    ("qv_bias", "yes", "must be true or false"),
    ("qkv_bias", "no", "must be true or false"),
    ("use_mean_pooling", 1, "must be true or false"),
    ("patch_size", 0, "must be between 1 and"),
    ("patch_size", 64, "must fit image_size 32x32"),
    ("patch_size", [8, 8, 8], "must be an integer or a list of 2 integers"),
    ("tubelet_size", [2], "must be an integer"),
    ("tubelet_size", 8, "must fit num_frames 4"),
    ("decoder_num_attention_heads", 5, "must divide decoder_hidden_size 16"),
    ("decoder_hidden_size", 0.5, "must be an integer"),
]


@pytest.mark.parametrize("fields, message", [
    # 8192 px at patch 8, 4 frames: 2 x 1024 x 1024 tokens, a position table of 2M rows.
    (dict(image_size=8192), "fields 'image_size'/'num_frames'"),
    (dict(num_frames=8192, tubelet_size=[1, 8, 8]), "fields 'image_size'/'num_frames'"),
    # each field in range, together ~6 billion weights (24 GiB)
    (dict(hidden_size=16384, intermediate_size=65536, num_hidden_layers=2), "billion weights"),
])
def test_config_implying_an_absurd_allocation_is_refused(tmp_path, vivit_dir, monkeypatch, fields, message):
    import vivitcli.models.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "_template", _must_not_run("a model was built"))
    ckpt = _with_json(vivit_dir, tmp_path / "c", "config.json", _set(**fields))
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(ckpt, device="cpu")
    assert str(ckpt / "config.json") in _one_line(err)


def test_factorised_encoder_temporal_blocks_count_toward_the_budget():
    from vivitcli.models.config import ModelConfig

    config = dict(model_type="vivit_fe", hidden_size=16384, num_attention_heads=16, num_hidden_layers=1,
                  intermediate_size=16, num_temporal_layers=256, temporal_intermediate_size=1024)
    with pytest.raises(CheckpointError, match="billion weights.*most in the temporal blocks"):
        ModelConfig.from_dict(config, "fe/config.json")


def _must_not_run(what):
    def fail(*args, **kwargs):
        raise AssertionError(what)
    return fail


def test_weights_are_checked_against_the_config_before_anything_is_read_or_built(tmp_path, vivit_dir,
                                                                                  monkeypatch):
    """999 layers is in range; the 2-layer weights say otherwise: refused from the safetensors header, with no
    tensor read and a one-block template as the only module built."""
    import vivitcli.models.base as base
    import vivitcli.models.checkpoint as checkpoint

    built = []

    class CountingBlock(base.Block):
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(base, "Block", CountingBlock)
    monkeypatch.setattr(checkpoint, "load_weights", _must_not_run("tensors were read"))
    ckpt = _with_json(vivit_dir, tmp_path / "c", "config.json", _set(num_hidden_layers=999))
    with pytest.raises(CheckpointError) as err:
        load_model(ckpt, device="cpu")
    text = _one_line(err)
    assert "weights do not fit" in text and "997 missing key(s)" not in text and "missing key(s)" in text
    assert len(built) <= 1


def test_hidden_size_mismatch_is_named_by_shape(tmp_path, vivit_dir):
    ckpt = _with_json(vivit_dir, tmp_path / "c", "config.json", _set(hidden_size=64, num_attention_heads=4))
    with pytest.raises(CheckpointError, match="tensor shapes do not fit config.json") as err:
        load_model(ckpt, device="cpu")
    assert "classifier.weight (5, 32) vs (5, 64)" in _one_line(err)


def test_legal_forms_still_load(tmp_path, vivit_dir):
    """What transformers writes or accepts: [h, w] image_size, null in fields vivit does not need."""
    ckpt = _with_json(vivit_dir, tmp_path / "c", "config.json",
                      _set(image_size=[32, 32], num_labels=5, hidden_dropout_prob=None, architectures=None))
    model = load_model(ckpt, device="cpu")
    assert model.cfg.image_size == (32, 32) and model.labels[4] == "LABEL_4"


# ---- VideoMAE's older bias flag (item 12) ------------------------------------------------------------------
@pytest.fixture(scope="module")
def videomae_no_bias(tmp_path_factory):
    return make_tiny_videomae(tmp_path_factory.mktemp("nobias") / "ckpt", qv_bias=False)


def test_videomae_old_qkv_bias_spelling_loads_like_transformers(tmp_path, videomae_no_bias):
    old = _with_json(videomae_no_bias, tmp_path / "old", "config.json",
                     lambda c: (c.pop("qv_bias", None), c.update(qkv_bias=False)))
    assert "qv_bias" not in json.loads((old / "config.json").read_text())
    model = load_model(old, device="cpu", dtype="float32")
    assert model.cfg.qkv_bias is False and model.blocks[0].attn.qkv.bias is None
    ref = load_reference(old)                  # transformers maps qkv_bias → qv_bias the same way
    assert ref.config.qv_bias is False
    x = random_pixels(old)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(pixel_values=x).logits, atol=1e-5)


def test_videomae_bias_flag_must_match_the_weights(tmp_path, videomae_no_bias):
    wrong = _with_json(videomae_no_bias, tmp_path / "wrong", "config.json",
                       lambda c: (c.pop("qv_bias", None), c.update(qkv_bias=True)))
    with pytest.raises(CheckpointError, match=r"missing key\(s\): encoder\.layer\.0\.attention\.attention\.q_bias"):
        load_model(wrong, device="cpu")


# ---- activations (item 13) ---------------------------------------------------------------------------------
def _act2fn_names():
    from transformers.activations import ACT2CLS

    return sorted(ACT2CLS)


@pytest.mark.parametrize("name", _act2fn_names())
def test_every_transformers_activation_is_exact_or_refused_in_one_line(tmp_path, vivit_dir, name):
    from transformers.activations import ACT2FN

    from vivitcli.models.layers import ACTIVATIONS

    if name in ACTIVATIONS:
        gen = torch.Generator().manual_seed(0)
        x = torch.cat([torch.linspace(-12, 12, 2001), torch.randn(2000, generator=gen) * 3])
        ours, theirs = ACTIVATIONS[name](x), ACT2FN[name](x)
        assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-6), (name, (ours - theirs).abs().max())
        return
    ckpt = _with_json(vivit_dir, tmp_path / "c", "config.json", _set(hidden_act=name))
    with pytest.raises(CheckpointError, match=f"field 'hidden_act' must be one of .*, got '{name}'") as err:
        load_model(ckpt, device="cpu")
    _one_line(err)


@pytest.mark.parametrize("act", ["mish", "gelu_accurate", "relu2"])
def test_model_with_another_activation_matches_transformers(tmp_path, act):
    ckpt = make_tiny_vivit(tmp_path / "c", hidden_act=act)
    model = load_model(ckpt, device="cpu", dtype="float32", attn="eager")
    ref = load_reference(ckpt)
    x = random_pixels(ckpt)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(pixel_values=x).logits, atol=1e-5)


# ---- preprocessor_config.json (item 11) ------------------------------------------------------------------
PRE_BAD = [
    ("image_std", [0, 0, 0], "must not be zero"),
    ("image_std", 0.0, "must not be zero"),
    ("image_std", [0.5, 0.5], "must be a number or a list of 3"),
    ("image_mean", "imagenet", "must be a number or a list of 3"),
    ("image_mean", [0.5, None, 0.5], "must be a number or a list of 3"),
    ("crop_size", 0, "must be an integer between 1 and"),
    ("crop_size", {"height": -1, "width": 32}, "must be an integer between 1 and"),
    ("crop_size", {"h": 32}, "must be an integer, [height, width]"),
    ("crop_size", {"shortest_edge": 32}, "must be an integer, [height, width]"),
    ("crop_size", 4, "must be at least one 8x8 patch"),
    ("crop_size", 32.5, "must be an integer, [height, width]"),
    ("size", {"longest_edge": 32}, "must be an integer, [height, width]"),
    ("size", {"shortest_edge": 32.5}, "must be an integer between 1 and"),
    ("size", [32, 0], "must be an integer between 1 and"),
    ("do_resize", "yes", "must be true or false"),
    ("do_center_crop", 0, "must be true or false"),
    ("do_normalize", "false", "must be true or false"),
    ("offset", None, "must be true or false"),
    ("resample", 9, "must be a PIL filter number"),
    ("resample", "bilinear", "must be a PIL filter number"),
    ("rescale_factor", 0, "must be a positive number"),
    ("rescale_factor", "1/255", "must be a positive number"),
    ("rescale_factor", 1e300, "must be a positive number up to 1"),
    ("image_std", [1e-30, 0.5, 0.5], "values must be within 0.001..255"),
    ("image_mean", [1e30, 0, 0], "values must be within 0..255"),
    ("crop_size", 4097, "must be an integer between 1 and 4096"),
    # 4096 x 4096 crops at patch 8: 2 x 512 x 512 tokens per clip
    ("crop_size", 4096, "tokens per 4-frame clip"),
]


# Every bad field above: (checkpoint fixture, the JSON file it is written to, field, value, message).
BAD_FIELDS = ([("vivit_dir", "config.json", *row) for row in VIVIT_BAD]
              + [("videomae_dir", "config.json", *row) for row in VIDEOMAE_BAD]
              + [("vivit_dir", "preprocessor_config.json", *row) for row in PRE_BAD])


@pytest.mark.parametrize("checkpoint, name, field, value, message", BAD_FIELDS,
                         ids=[f"{c[:-4]}-{n[:-5]}-{f}={v!r}" for c, n, f, v, _ in BAD_FIELDS])
def test_bad_field_is_one_line_naming_file_and_field(request, tmp_path, checkpoint, name, field, value, message):
    ckpt = _with_json(request.getfixturevalue(checkpoint), tmp_path / "c", name, _set(**{field: value}))
    with pytest.raises(CheckpointError) as err:
        load_model(ckpt, device="cpu")
    text = _one_line(err)
    # the field by its whole name ('size' must not pass for 'crop_size'; 'size.height' or 'size[0]' may follow)
    assert str(ckpt / name) in text and re.search(rf"'{re.escape(field)}\b", text) and message in text


def test_resize_without_crop_must_leave_a_patch(tmp_path, vivit_dir):
    ckpt = _with_json(vivit_dir, tmp_path / "c", "preprocessor_config.json",
                      _set(do_center_crop=False, size={"shortest_edge": 4}))
    with pytest.raises(CheckpointError, match="field 'size' must be at least one 8x8 patch"):
        load_model(ckpt, device="cpu")


def test_short_preprocessor_forms_load(tmp_path, vivit_dir):
    """HF's other spellings: scalar mean/std, an int size (shortest edge), [h, w] crop."""
    ckpt = _with_json(vivit_dir, tmp_path / "c", "preprocessor_config.json",
                      _set(image_mean=0.5, image_std=0.5, size=32, crop_size=[32, 32]))
    pre = load_model(ckpt, device="cpu").preprocessor
    assert pre.image_std == (0.5, 0.5, 0.5) and pre.size == {"shortest_edge": 32}
    assert pre.crop_size == {"height": 32, "width": 32}


def test_validation_functions_are_usable_alone():
    from vivitcli.models.config import ModelConfig, validate_preprocessor_config

    with pytest.raises(CheckpointError, match="^x.json: field 'image_std' must not be zero"):
        validate_preprocessor_config({"image_std": [0, 0, 0]}, "x.json")
    with pytest.raises(CheckpointError, match="^cfg: expected a JSON object"):
        ModelConfig.from_dict([], "cfg")
    assert validate_preprocessor_config({}, "x.json") == {}
