"""VideoMAE pre-training: parity with transformers' VideoMAEForPreTraining, masking, loading, un-normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.checkpoints import load_reference, make_tiny_videomae, random_pixels
from vivitcli.errors import CheckpointError, UsageError
from vivitcli.masking import make_mask, masked_count
from vivitcli.models import load_model
from vivitcli.models.videomae_pretraining import VideoMAEForPreTraining, loss_targets, patchify, unpatchify

# Decoder depth/width/heads, tubelet and patch, norm_pix_loss, use_mean_pooling, masking: each case differs
# from the tiny default in a few of them.
CASES = {
    "default": dict(),
    "no-norm-pix": dict(norm_pix_loss=False),
    "layernorm-deep-decoder": dict(use_mean_pooling=False, decoder_num_hidden_layers=3, decoder_hidden_size=24,
                                   decoder_num_attention_heads=3, decoder_intermediate_size=40),
    "tubelet1-patch4": dict(tubelet_size=1, patch_size=4, decoder_hidden_size=8, decoder_num_attention_heads=1,
                            norm_pix_loss=False, _masking="random"),
    "one-decoder-layer-qv-free": dict(decoder_num_hidden_layers=1, qv_bias=False, num_frames=6, tubelet_size=3),
}


def _grid(config: dict) -> tuple[int, int, int]:
    s = config["image_size"] // config["patch_size"]
    return config["num_frames"] // config["tubelet_size"], s, s


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    overrides = dict(CASES[request.param])
    masking = overrides.pop("_masking", "tube")
    path = make_tiny_videomae(tmp_path_factory.mktemp("mae") / request.param, pretraining=True, **overrides)
    config = json.loads((path / "config.json").read_text())
    return path, config, masking


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_logits_and_loss_match_transformers(case, attn):
    path, config, masking = case
    pixels = random_pixels(path, batch=2, seed=1)
    mask = make_mask(_grid(config), 0.75, masking=masking, batch=2, seed=3)
    ref = load_reference(path, attn=attn)
    with torch.no_grad():
        expected = ref(pixels, bool_masked_pos=mask)
    model = load_model(path, task="pretraining", device="cpu", attn=attn)
    assert isinstance(model, VideoMAEForPreTraining)
    assert model.norm_pix_loss == config["norm_pix_loss"]
    logits, loss = model(pixels, mask)
    assert logits.shape == expected.logits.shape == (2, int(mask[0].sum()), model.patch_dim)
    torch.testing.assert_close(logits, expected.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(loss, expected.loss, atol=1e-5, rtol=0)


def test_eager_and_sdpa_give_the_same_loss_for_the_same_mask(case):
    path, config, masking = case
    pixels = random_pixels(path, batch=1, seed=2)
    mask = make_mask(_grid(config), 0.5, masking=masking, seed=7)
    model = load_model(path, task="pretraining", device="cpu", attn="eager")
    _, eager = model(pixels, mask)
    _, sdpa = model.set_attn("sdpa")(pixels, mask)
    assert abs(float(eager) - float(sdpa)) < 1e-6


def test_training_mode_gives_gradients_to_encoder_and_decoder(tmp_path):
    path = make_tiny_videomae(tmp_path / "m", pretraining=True)
    model = load_model(path, task="pretraining", device="cpu").train()
    mask = make_mask((2, 4, 4), 0.75, batch=2)
    _, loss = model(random_pixels(path, batch=2), mask)
    loss.backward()
    for name in ("patch_embed.weight", "blocks.0.attn.qkv.weight", "encoder_to_decoder.weight", "mask_token",
                 "decoder_blocks.0.mlp.fc1.weight", "decoder_head.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_bfloat16_loss_is_close_to_float32(tmp_path):
    path = make_tiny_videomae(tmp_path / "m", pretraining=True)
    pixels, mask = random_pixels(path, batch=2), make_mask((2, 4, 4), 0.75, batch=2)
    _, loss32 = load_model(path, task="pretraining", device="cpu")(pixels, mask)
    model16 = load_model(path, task="pretraining", device="cpu", dtype="bfloat16")
    assert model16.decoder_pos_embed.dtype == torch.float32      # the fixed table is never rounded
    logits16, loss16 = model16(pixels, mask)
    assert logits16.dtype == torch.bfloat16
    assert abs(float(loss16) - float(loss32)) < 0.05 * float(loss32)


# ---- masking ---------------------------------------------------------------------------------------------------
def test_tube_mask_repeats_one_spatial_mask_over_time_with_the_paper_count():
    mask = make_mask((8, 14, 14), 0.9, batch=3, seed=0)
    assert mask.shape == (3, 8 * 196) and mask.dtype == torch.bool
    per_slot = mask.reshape(3, 8, 196)
    assert (per_slot == per_slot[:, :1]).all()                          # the same tube in every time slot
    assert (per_slot.sum(-1) == int(0.9 * 196)).all()                   # 176 of 196 per frame
    assert not torch.equal(per_slot[0, 0], per_slot[1, 0])              # each clip draws its own
    assert masked_count(0.9, (8, 14, 14)) == 176 * 8


def test_masks_are_reproducible_per_seed_and_random_masking_is_not_a_tube():
    assert torch.equal(make_mask((4, 8, 8), 0.9, seed=5), make_mask((4, 8, 8), 0.9, seed=5))
    assert not torch.equal(make_mask((4, 8, 8), 0.9, seed=5), make_mask((4, 8, 8), 0.9, seed=6))
    rand = make_mask((4, 8, 8), 0.9, masking="random", batch=4, seed=1)
    assert (rand.sum(1) == int(0.9 * 256)).all()
    slots = rand.reshape(4, 4, 64)
    assert not (slots == slots[:, :1]).all()


@pytest.mark.parametrize("kwargs, words", [
    (dict(mask_ratio=1.0), "between 0 and 1"),
    (dict(mask_ratio=0.0), "between 0 and 1"),
    (dict(mask_ratio=0.01), "hides no token"),
    (dict(masking="block"), "tube, random"),
])
def test_bad_mask_settings_are_usage_errors(kwargs, words):
    with pytest.raises(UsageError, match=words):
        make_mask((2, 4, 4), **kwargs)


def test_model_refuses_masks_it_cannot_use(tmp_path):
    path = make_tiny_videomae(tmp_path / "m", pretraining=True)
    model = load_model(path, task="pretraining", device="cpu")
    pixels = random_pixels(path, batch=2)
    uneven = make_mask((2, 4, 4), 0.5, batch=2)
    uneven[0, uneven[0].nonzero()[0]] = False
    with pytest.raises(UsageError, match="same number"):
        model(pixels, uneven)
    with pytest.raises(UsageError, match="expected \\(2, 32\\)"):
        model(pixels, torch.ones(2, 16, dtype=torch.bool))
    with pytest.raises(UsageError, match="at least one token visible"):
        model(pixels, torch.ones(2, 32, dtype=torch.bool))
    with pytest.raises(UsageError, match="own input size"):
        model(random_pixels(path, batch=2, image_size=48), make_mask((2, 6, 6), 0.5, batch=2))


# ---- loading ---------------------------------------------------------------------------------------------------
def test_default_load_of_a_pretraining_checkpoint_still_drops_the_decoder(tmp_path):
    path = make_tiny_videomae(tmp_path / "m", pretraining=True)
    plain = load_model(path, device="cpu")
    assert not isinstance(plain, VideoMAEForPreTraining)
    full = load_model(path, task="pretraining", device="cpu")
    pixels = random_pixels(path, batch=1)
    torch.testing.assert_close(full.embed(pixels), plain.embed(pixels), atol=1e-6, rtol=0)


def test_checkpoints_without_a_decoder_are_refused_by_name(tmp_path, vivit_dir):
    classifier = make_tiny_videomae(tmp_path / "cls")
    with pytest.raises(CheckpointError, match=f"{classifier}: no decoder weights"):
        load_model(classifier, task="pretraining", device="cpu")
    with pytest.raises(CheckpointError, match="has no pre-training decoder"):
        load_model(vivit_dir, task="pretraining", device="cpu")
    with pytest.raises(UsageError, match="task must be"):
        load_model(classifier, task="classify", device="cpu")


def test_a_decoder_that_does_not_fit_the_config_is_a_checkpoint_error(tmp_path):
    path = make_tiny_videomae(tmp_path / "m", pretraining=True)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "decoder_hidden_size": 32}))
    with pytest.raises(CheckpointError, match="shapes do not fit|do not fit"):
        load_model(path, task="pretraining", device="cpu")
    (path / "config.json").write_text(json.dumps({**config, "decoder_num_attention_heads": 5}))
    with pytest.raises(CheckpointError, match="decoder_num_attention_heads|invalid VideoMAE decoder config"):
        load_model(path, task="pretraining", device="cpu")


def test_native_to_hf_gives_back_exactly_the_checkpoint_tensors(tmp_path):
    from safetensors.torch import load_file

    from vivitcli.models.videomae_pretraining import native_to_hf

    path = make_tiny_videomae(tmp_path / "m", pretraining=True, use_mean_pooling=False)
    saved = {k.removeprefix("videomae."): v for k, v in load_file(str(path / "model.safetensors")).items()}
    model = load_model(path, task="pretraining", device="cpu")
    back = native_to_hf(model.state_dict(), model.cfg)
    assert set(back) == set(saved)
    for key, value in saved.items():
        assert torch.equal(back[key], value), key


# ---- patches and un-normalisation ------------------------------------------------------------------------------
def test_patchify_is_transformers_layout_and_unpatchify_inverts_it():
    x = torch.randn(2, 4, 3, 16, 24)
    patches = patchify(x, (2, 8, 8))
    assert patches.shape == (2, 2 * 2 * 3, 2 * 8 * 8 * 3)
    # token (t=1, h=0, w=2), value (t=1, p=3, q=5, c=2) → frame 3, channel 2, row 3, column 21
    token, value = 1 * 6 + 0 * 3 + 2, ((1 * 8 + 3) * 8 + 5) * 3 + 2
    assert patches[1, token, value] == x[1, 3, 2, 3, 21]
    assert torch.equal(unpatchify(patches, (2, 8, 8), (2, 2, 3), 3), x)


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_perfect_prediction_reconstructs_the_input_frames(tmp_path, norm_pix_loss):
    """With the targets themselves as the decoder output, every view that shows pixels gives back the
    uint8 frames the preprocessor was fed, within one level."""
    from vivitcli.reconstruct import render_views

    path = make_tiny_videomae(tmp_path / "m", pretraining=True, norm_pix_loss=norm_pix_loss)
    model = load_model(path, task="pretraining", device="cpu")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    frames[:, :8, :8] = 200                                  # a flat patch: std 0, the +1e-6 path
    pixels = model.preprocessor.normalize(frames)[None]      # (1, T, C, H, W)
    mask = make_mask(model.cfg.grid, 0.75, seed=1)
    targets = loss_targets(pixels, model.cfg.tubelet, norm_pix_loss)
    perfect = targets[mask].reshape(1, -1, targets.shape[-1])
    _, loss = model(pixels, mask)
    views = render_views(model, pixels, mask, perfect)
    for name in ("original", "reconstruction + visible"):
        diff = np.abs(views[name][0].astype(int) - frames.astype(int))
        assert diff.max() <= 1, name
    hidden = mask.reshape(2, 4, 4)[0]                        # tube: the same in both time slots
    r, c = map(int, hidden.nonzero()[0])
    block = (slice(None), slice(8 * r, 8 * r + 8), slice(8 * c, 8 * c + 8))
    assert np.abs(views["reconstruction"][0][block].astype(int) - frames[block].astype(int)).max() <= 1
    assert (views["masked"][0][block] == views["masked"][0][block].flat[0]).all()   # hidden: flat grey
    assert float(loss) > 0.01                                # the random model itself is not perfect


# ---- benchmark --mode pretraining --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["pretraining", "pretraining-training"])
def test_benchmark_pretraining_modes_time_the_masked_model_and_agree_across_attention(mode):
    from tests.checkpoints import VIDEOMAE_TINY
    from vivitcli.benchmark.measure import measure
    from vivitcli.benchmark.spec import Config

    config = {**VIDEOMAE_TINY, "model_type": "videomae", "norm_pix_loss": True}
    out = {}
    for attn in ("eager", "sdpa"):
        m = measure(Config(model="tiny-mae", mode=mode, attn=attn, batch_size=2, steps=2, warmup=1,
                           model_config=config))
        assert m.ok, m.error
        assert len(m.step_ms) == 2
        out[attn] = torch.tensor(m.output)
    hidden = masked_count(0.9, (2, 4, 4))
    assert out["eager"].shape == (2, hidden, 3 * 2 * 8 * 8)
    torch.testing.assert_close(out["eager"], out["sdpa"], atol=1e-5, rtol=0)
