"""Native ViViT / VideoMAE against transformers on tiny random checkpoints written by save_pretrained."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.checkpoints import load_reference, make_tiny_videomae, make_tiny_vivit, random_pixels
from vivitcli import load_model

TOL = 1e-4            # float32, max abs difference on logits and last hidden state
BF16_TOL = 2e-2       # bfloat16 model vs transformers float32, max abs on logits (observed ~3e-3 here)

# (id, maker, kwargs): vary tubelet, patch, frames, heads, pooling, label count, file format.
CASES = [
    ("vivit-default", make_tiny_vivit, {}),
    ("vivit-t4-h2-bin", make_tiny_vivit,
     dict(num_frames=8, tubelet_size=[4, 8, 8], num_attention_heads=2, num_labels=3, safe_serialization=False)),
    ("vivit-p4-16px-h8", make_tiny_vivit,
     dict(image_size=16, num_frames=6, tubelet_size=[2, 4, 4], num_attention_heads=8, num_labels=7)),
    ("videomae-mean", make_tiny_videomae, {}),
    ("videomae-nomean-bin", make_tiny_videomae,
     dict(use_mean_pooling=False, num_labels=3, safe_serialization=False)),
    ("videomae-p4-t1-noqv", make_tiny_videomae,
     dict(image_size=16, patch_size=4, tubelet_size=1, num_frames=3, num_attention_heads=2, qv_bias=False,
          num_labels=9)),
    ("videomae-sharded", make_tiny_videomae, dict(max_shard_size="30KB", num_labels=4)),
    ("vivit-sharded-bin", make_tiny_vivit, dict(max_shard_size="30KB", safe_serialization=False)),
]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request, tmp_path_factory):
    name, maker, kwargs = request.param
    path = maker(tmp_path_factory.mktemp(name) / "ckpt", **kwargs)
    return path, random_pixels(path, batch=2, seed=1)


_REFERENCE_CACHE: dict = {}


def _reference(path, x, attn):
    """(logits, last hidden state) from transformers, computed once per checkpoint and attention."""
    key = (str(path), attn)
    if key not in _REFERENCE_CACHE:
        ref = load_reference(path, attn=attn)
        encoder = getattr(ref, "vivit", None) or ref.videomae
        with torch.no_grad():
            _REFERENCE_CACHE[key] = ref(x).logits, encoder(x).last_hidden_state
    return _REFERENCE_CACHE[key]


def _maxdiff(a, b) -> float:
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_logits_and_hidden_state_match_transformers(case, attn):
    path, x = case
    ref_logits, ref_hidden = _reference(path, x, attn)
    model = load_model(path, attn=attn, device="cpu", dtype="float32")
    assert model.attn == attn
    assert _maxdiff(model(x), ref_logits) <= TOL
    hidden = model.forward_features(x)
    assert hidden.shape == ref_hidden.shape
    assert _maxdiff(hidden, ref_hidden) <= TOL
    # The weights are not trivial: outputs differ between the two samples of the batch.
    assert _maxdiff(ref_logits[0], ref_logits[1]) > 1e-3


def test_eager_and_sdpa_agree_on_one_instance(case):
    path, x = case
    model = load_model(path, attn="eager", device="cpu", dtype="float32")
    eager_logits, eager_hidden = model(x), model.forward_features(x)
    model.set_attn("sdpa")
    assert model.attn == "sdpa"
    assert _maxdiff(model(x), eager_logits) <= TOL
    assert _maxdiff(model.forward_features(x), eager_hidden) <= TOL


def test_bfloat16_close_to_float32_reference(case):
    path, x = case
    ref_logits, _ = _reference(path, x, "eager")
    model = load_model(path, dtype="bfloat16", device="cpu")
    assert model.dtype == torch.bfloat16
    logits = model(x)                       # float32 input is cast to the model dtype
    assert logits.dtype == torch.bfloat16
    assert _maxdiff(logits, ref_logits) <= BF16_TOL


def test_embed_is_the_vector_the_classifier_reads(case):
    path, x = case
    model = load_model(path, device="cpu", dtype="float32")
    _, hidden = _reference(path, x, "eager")
    if model.model_type == "vivit":
        expected = hidden[:, 0]
    else:
        ref = load_reference(path)
        with torch.no_grad():
            expected = ref.fc_norm(hidden.mean(1)) if ref.fc_norm is not None else hidden[:, 0]
    emb = model.embed(x)
    assert emb.shape == (x.shape[0], model.hidden_size)
    assert _maxdiff(emb, expected) <= TOL
    assert _maxdiff(model.head(emb), model(x)) <= 1e-6


def test_pretraining_checkpoint_embeds_and_reports_decoder(tmp_path):
    path = make_tiny_videomae(tmp_path / "pre", pretraining=True)
    model = load_model(path, device="cpu", dtype="float32")
    assert not model.has_classifier
    ignored = model.load_report["ignored_keys"]
    assert "encoder_to_decoder.weight" in ignored and any(k.startswith("decoder.") for k in ignored)
    assert any("decoder" in w for w in model.load_report["warnings"])
    x = random_pixels(path)
    ref = load_reference(path)
    with torch.no_grad():
        hidden = ref.videomae(x).last_hidden_state
    assert _maxdiff(model.forward_features(x), hidden) <= TOL
    assert _maxdiff(model.embed(x), hidden.mean(1)) <= TOL      # no fc_norm in a pre-training checkpoint
    from vivitcli.errors import UsageError
    with pytest.raises(UsageError, match="no classification head"):
        model(x)


def test_bare_vivit_model_loads_without_its_pooler(tmp_path):
    path = make_tiny_vivit(tmp_path / "bare", base_model=True)
    model = load_model(path, device="cpu", dtype="float32")
    assert not model.has_classifier
    assert model.load_report["ignored_keys"] == ["pooler.dense.bias", "pooler.dense.weight"]
    x = random_pixels(path)
    with torch.no_grad():
        hidden = load_reference(path)(x).last_hidden_state
    assert _maxdiff(model.forward_features(x), hidden) <= TOL


def test_pool_options(tmp_path):
    from vivitcli.errors import UsageError

    vivit = load_model(make_tiny_vivit(tmp_path / "v"), device="cpu", dtype="float32")
    x = random_pixels(vivit.path)
    hidden = vivit.forward_features(x)
    assert torch.equal(vivit.embed(x, pool="cls"), hidden[:, 0])
    assert torch.allclose(vivit.embed(x, pool="mean"), hidden[:, 1:].mean(1))
    mae = load_model(make_tiny_videomae(tmp_path / "m", use_mean_pooling=False), device="cpu", dtype="float32")
    hidden = mae.forward_features(x)
    assert torch.equal(mae.embed(x), hidden[:, 0])                   # the classifier reads the first token
    assert torch.allclose(mae.embed(x, pool="mean"), hidden.mean(1))
    with pytest.raises(UsageError, match="no CLS token"):
        mae.embed(x, pool="cls")
    with pytest.raises(UsageError, match="pool must be one of"):
        vivit.embed(x, pool="max")


def test_native_weights_round_trip_to_a_checkpoint_transformers_loads(tmp_path):
    """native_to_hf is what `vivit convert` writes: transformers must load it and agree."""
    import json
    import shutil

    from safetensors.torch import save_file

    from vivitcli.models.checkpoint import native_to_hf

    for maker in (make_tiny_vivit, make_tiny_videomae):
        src = maker(tmp_path / f"src-{maker.__name__}")
        model = load_model(src, device="cpu", dtype="float32")
        out = tmp_path / f"out-{maker.__name__}"
        out.mkdir()
        shutil.copy(src / "config.json", out / "config.json")
        save_file({k: v.contiguous() for k, v in native_to_hf(model.state_dict(), model.cfg).items()},
                  str(out / "model.safetensors"))
        x = random_pixels(src)
        with torch.no_grad():
            ref = load_reference(out)(x).logits
        assert _maxdiff(model(x), ref) <= TOL
        assert json.loads((out / "config.json").read_text())["model_type"] == model.model_type


def test_gradients_flow_in_train_mode(tmp_path):
    model = load_model(make_tiny_vivit(tmp_path / "v"), device="cpu", dtype="float32").train()
    x = random_pixels(model.path)
    model(x).sum().backward()
    assert model.pos_embed.grad is not None and model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_importing_models_does_not_import_transformers(tmp_path):
    path = make_tiny_videomae(tmp_path / "m")
    code = (
        "import sys, torch, vivitcli, vivitcli.models\n"
        "from vivitcli.models import build_model, load_model\n"
        "from vivitcli.models.presets import PRESETS\n"
        f"m = load_model({str(path)!r}, device='cpu', dtype='float32')\n"
        "m(torch.zeros(1, 4, 3, 32, 32))\n"
        "assert 'transformers' not in sys.modules, 'transformers was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_cpu_bfloat16_softmax_is_float32_softmax_rounded():
    """The eager path relies on this for bfloat16 on CPU (layers.Attention): if a PyTorch release stops
    accumulating in float32 there, this fails and the explicit float32 softmax must come back."""
    gen = torch.Generator().manual_seed(0)
    for n in (33, 257):
        scores = (torch.randn(2, 4, n, n, generator=gen) * 4).bfloat16()
        assert torch.equal(torch.softmax(scores, -1), torch.softmax(scores, -1, dtype=torch.float32).bfloat16())
