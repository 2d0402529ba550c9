"""The OpenVINO backend against the torch reference, its disk cache, backend selection, and `--dtype auto`
on CPUs with and without native bfloat16. Tests that run OpenVINO skip only where it is not installed."""

from __future__ import annotations

import pytest
import torch

from tests.checkpoints import make_tiny_videomae, make_tiny_vivit, random_pixels
from vivitcli import load_model
from vivitcli.errors import UsageError
from vivitcli.models import backends
from vivitcli.models.backends import cpu

TOL = 1e-4          # OpenVINO f32 vs torch f32, max abs on logits / features / embeddings

needs_openvino = pytest.mark.skipif(not backends.openvino_available(), reason="openvino is not installed "
                                    "(pip install 'vivitcli[openvino]')")


def _maxdiff(a, b) -> float:
    return (a.float() - b.float()).abs().max().item()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ovcache")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    return {
        "vivit": make_tiny_vivit(root / "vivit", num_labels=6),
        "videomae": make_tiny_videomae(root / "videomae", num_labels=6),
        "videomae-nomean": make_tiny_videomae(root / "videomae-nomean", use_mean_pooling=False, num_labels=5),
    }


def _fe_model():
    """A tiny random ViViT factorised encoder (spatial 2 layers, temporal 1), built directly."""
    from vivitcli.models import config as model_config
    from vivitcli.models.build import finalize
    from vivitcli.models.config import ModelConfig
    from vivitcli.models.vivit_fe import ViViTFE

    if "vivit_fe" not in model_config.MODEL_TYPES:   # the FE helper registers it (issue 14)
        pytest.skip("vivit_fe is not a registered model_type yet")

    config = dict(model_type="vivit_fe", architectures=["ViViTFEForVideoClassification"], image_size=32,
                  num_frames=4, tubelet_size=[2, 8, 8], num_channels=3, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, hidden_act="gelu_fast", layer_norm_eps=1e-6,
                  qkv_bias=True, num_temporal_layers=1, id2label={str(i): f"c{i}" for i in range(5)})
    model = ViViTFE(ModelConfig.from_dict(config), num_labels=5)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return finalize(model, name="tiny-fe", device="cpu", dtype="float32")


# ---- float32 parity -------------------------------------------------------------------------------------
@needs_openvino
@pytest.mark.parametrize("which", ["vivit", "videomae", "videomae-nomean", "fe"])
def test_openvino_float32_matches_torch(which, checkpoints, cache):
    if which == "fe":
        ref = _fe_model()
        x = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    else:
        ref = load_model(checkpoints[which], device="cpu", dtype="float32")
        x = random_pixels(checkpoints[which], batch=2, seed=1)
    ov = backends.apply_backend(ref, "openvino", dtype="float32", cache_dir=cache)
    assert ov.backend == "openvino" and ov.dtype == torch.float32
    logits = ov(x)
    expected = ref(x)
    assert logits.shape == expected.shape and logits.dtype == torch.float32
    assert _maxdiff(logits, expected) <= TOL
    assert _maxdiff(ref(x[0:1]), expected[0:1]) <= TOL
    assert _maxdiff(expected[0], expected[1]) > 1e-3          # the two clips differ: not a constant output
    assert _maxdiff(ov.forward_features(x), ref.forward_features(x)) <= TOL
    pools = ["mean"] + (["cls"] if which in ("vivit", "fe") else [])
    for pool in pools:
        assert _maxdiff(ov.embed(x, pool), ref.embed(x, pool)) <= TOL
    # Batch is dynamic: one compiled model serves batch 1 and 2 of the same shape.
    assert _maxdiff(ov(x[1:2]), expected[1:2]) <= TOL
    assert len(ov._compiled) == 1


@needs_openvino
def test_metadata_and_other_shapes(checkpoints, cache):
    ref = load_model(checkpoints["vivit"], device="cpu", dtype="float32")
    ov = backends.apply_backend(ref, "openvino", dtype="float32", cache_dir=cache)
    for attr in ("name", "labels", "label_source", "num_frames", "image_size", "hidden_size", "num_labels",
                 "preprocessor", "path"):
        assert getattr(ov, attr) == getattr(ref, attr), attr
    assert ov.device.type == "cpu" and ov.torch_model is ref
    native = random_pixels(checkpoints["vivit"], batch=1, seed=2)
    assert _maxdiff(ov(native), ref(native)) <= TOL
    # Another frame count and size: a second compiled model, interpolated positions as torch does.
    x = random_pixels(checkpoints["vivit"], batch=1, num_frames=8, image_size=48, seed=2)
    assert _maxdiff(ov(x), ref(x)) <= TOL
    assert len(ov._compiled) == 2
    with pytest.raises(UsageError, match="pool"):
        ov.embed(x, "max")
    with pytest.raises(UsageError, match="inference only"):
        ov.train()


# ---- bfloat16 -------------------------------------------------------------------------------------------
@needs_openvino
@pytest.mark.parametrize("which", ["vivit", "videomae"])
def test_openvino_bfloat16_keeps_top1(which, checkpoints, tmp_path):
    """bf16 inference hint, forced even where the CPU only emulates it (tiny models: still fast)."""
    ref = load_model(checkpoints[which], device="cpu", dtype="float32")
    x = random_pixels(checkpoints[which], batch=4, seed=5)
    ov = backends.apply_backend(ref, "openvino", precision="bf16", cache_dir=tmp_path)
    assert ov.dtype == torch.bfloat16
    logits, expected = ov(x), ref(x)
    delta = _maxdiff(logits, expected)
    print(f"{which}: OpenVINO bf16 vs torch fp32 max |delta| logits = {delta:.2e}")
    assert 0 < delta < 0.1                   # really computed in bf16 (not f32), and close
    assert torch.equal(logits.argmax(-1), expected.argmax(-1))


# ---- disk cache -----------------------------------------------------------------------------------------
@needs_openvino
def test_cache_hit_miss_and_corrupt_blob(checkpoints, tmp_path):
    path = checkpoints["videomae"]
    x = random_pixels(path, batch=1, seed=3)
    first = load_model(path, device="cpu", dtype="float32", backend="openvino")
    first._cache_dir = tmp_path                                  # keep the test out of the user's cache
    out = first(x)
    assert [e.split()[0] for e in first.cache_events] == ["compiled"]
    blobs = list(tmp_path.glob("*.blob"))
    assert len(blobs) == 1

    again = backends.apply_backend(load_model(path, device="cpu", dtype="float32"), "openvino",
                                   dtype="float32", cache_dir=tmp_path)
    assert torch.equal(again(x), out)
    assert again.cache_events == [f"hit {blobs[0].stem}"]

    # Other weights (same config, same path): another key.
    changed = load_model(path, device="cpu", dtype="float32")
    with torch.no_grad():
        changed.head.bias.add_(1.0)
    other = backends.apply_backend(changed, "openvino", dtype="float32", cache_dir=tmp_path)
    other.forward_features(x)
    assert other.cache_events[0].startswith("compiled") and len(list(tmp_path.glob("*.blob"))) == 2

    # A damaged blob is rebuilt, not trusted.
    blobs[0].write_bytes(b"not a compiled model")
    fixed = backends.apply_backend(load_model(path, device="cpu", dtype="float32"), "openvino",
                                   dtype="float32", cache_dir=tmp_path)
    assert _maxdiff(fixed(x), out) <= TOL
    assert fixed.cache_events[0].startswith("compiled")
    assert blobs[0].stat().st_size > 1000


@needs_openvino
def test_cache_dir_follows_vivit_cache(monkeypatch, tmp_path):
    from vivitcli.models.backends.openvino import default_cache_dir

    monkeypatch.setenv("VIVIT_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "openvino"


# ---- backend selection ----------------------------------------------------------------------------------
@needs_openvino
def test_load_model_backends(checkpoints):
    path = checkpoints["vivit"]
    assert not hasattr(load_model(path, device="cpu", backend="torch"), "backend")
    auto = load_model(path, device="cpu", dtype="float32", backend="auto")
    assert auto.backend == "openvino"


def test_backend_names_and_missing_openvino(monkeypatch, checkpoints):
    with pytest.raises(UsageError, match="unknown backend 'tensorrt'"):
        backends.check_backend("tensorrt")
    assert backends.resolve_backend("torch", "cpu") == "torch"
    assert backends.resolve_backend("auto", "cuda") == "torch"        # OpenVINO is for the CPU
    monkeypatch.setattr(backends, "openvino_available", lambda: False)
    assert backends.resolve_backend("auto", "cpu") == "torch"
    with pytest.raises(UsageError) as err:
        load_model(checkpoints["vivit"], device="cpu", backend="openvino")
    message = str(err.value)
    assert "pip install 'vivitcli[openvino]'" in message and "\n" not in message
    model = load_model(checkpoints["vivit"], device="cpu", backend="auto")
    assert not hasattr(model, "backend")                              # plain torch VideoModel


def test_openvino_refuses_other_devices(monkeypatch):
    monkeypatch.setattr(backends, "openvino_available", lambda: True)
    with pytest.raises(UsageError, match="runs on the CPU"):
        backends.resolve_backend("openvino", "cuda:0")


@needs_openvino
def test_explicit_bf16_without_native_support_is_refused(monkeypatch):
    from vivitcli.models.backends import openvino as ovb

    monkeypatch.setattr(ovb, "capabilities", lambda: ("FP32", "INT8"))
    assert ovb.precision_for("float32") == "f32"
    assert ovb.precision_for("auto") == "f32"
    with pytest.raises(UsageError, match="no native bfloat16"):
        ovb.precision_for("bf16")
    monkeypatch.setattr(ovb, "capabilities", lambda: ("FP32", "BF16"))
    monkeypatch.setattr(cpu, "cpu_has_native_bf16", lambda: True)
    assert ovb.precision_for("auto") == "bf16" and ovb.precision_for("bfloat16") == "bf16"


# ---- dtype auto on the CPU ------------------------------------------------------------------------------
@pytest.mark.parametrize("flags, native", [
    ("fpu sse2 avx2 avx512f avx512_vnni", False),           # Ice Lake class: AVX-512 without BF16
    ("fpu avx2 avx512f avx512_bf16 avx512_vnni", True),     # Cooper Lake, Zen 4
    ("fpu avx2 avx512f amx_bf16 amx_tile amx_int8", True),  # Sapphire Rapids
])
def test_native_bf16_from_cpu_flags(tmp_path, monkeypatch, flags, native):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert cpu.cpu_flags(str(info)) == frozenset(flags.split())
    monkeypatch.delenv(cpu.ENV_OVERRIDE, raising=False)
    monkeypatch.setattr(cpu, "cpu_flags", lambda path="": frozenset(flags.split()))
    cpu._detect.cache_clear()
    try:
        assert cpu.cpu_has_native_bf16() is native
    finally:
        cpu._detect.cache_clear()


def test_dtype_auto_follows_native_bf16(monkeypatch, checkpoints):
    from vivitcli.models.device import resolve_dtype

    monkeypatch.setenv(cpu.ENV_OVERRIDE, "1")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.bfloat16
    assert load_model(checkpoints["vivit"], device="cpu").dtype == torch.bfloat16
    assert resolve_dtype("float32", torch.device("cpu")) == torch.float32     # explicit wins
    monkeypatch.setenv(cpu.ENV_OVERRIDE, "0")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    monkeypatch.delenv(cpu.ENV_OVERRIDE)
    expected = torch.bfloat16 if cpu.cpu_has_native_bf16() else torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) == expected
