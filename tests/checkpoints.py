"""Tiny random Hugging Face checkpoints for tests, written by transformers' own save_pretrained.

Shared test helper (owner: models). Every function writes a directory in the HF layout — config.json,
model.safetensors or pytorch_model.bin (optionally sharded with its index), preprocessor_config.json — and
returns its Path. Checkpoints are small (a few hundred KB) and take well under a second to write.

Every parameter is perturbed with seeded noise, so no weight is trivially zero or one (a loader that drops
a bias or a LayerNorm shows up as a numeric mismatch). transformers is imported inside the functions: it is a
test-only dependency.

    from tests.checkpoints import make_tiny_vivit, make_tiny_videomae, load_reference
    path = make_tiny_vivit(tmp_path / "vivit", num_labels=5)
    ref = load_reference(path, attn="eager")        # the transformers model, eval mode, float32
"""

from __future__ import annotations

import json
from pathlib import Path

# Small enough that a forward pass is a few milliseconds, big enough to exercise every code path:
# 4 frames of 32x32 px, tubelet (2, 8, 8) -> 2 x 4 x 4 = 32 tokens (+1 CLS for ViViT).
TINY_IMAGE_SIZE = 32
TINY_FRAMES = 4

VIVIT_TINY = dict(
    image_size=TINY_IMAGE_SIZE, num_frames=TINY_FRAMES, tubelet_size=[2, 8, 8], num_channels=3,
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    hidden_act="gelu_fast", layer_norm_eps=1e-6, qkv_bias=True,
)
VIDEOMAE_TINY = dict(
    image_size=TINY_IMAGE_SIZE, num_frames=TINY_FRAMES, patch_size=8, tubelet_size=2, num_channels=3,
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    hidden_act="gelu", layer_norm_eps=1e-12, qv_bias=True,
    decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
    decoder_intermediate_size=32,
)

# What the hub checkpoints ship, scaled down to the tiny image size (shortest edge = crop = 32 px).
VIVIT_PREPROCESSOR = {
    "image_processor_type": "VivitImageProcessor",
    "do_resize": True, "size": {"shortest_edge": TINY_IMAGE_SIZE}, "resample": 2,
    "do_center_crop": True, "crop_size": {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
    "do_rescale": True, "rescale_factor": 1 / 127.5, "offset": True,
    "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
}
VIDEOMAE_PREPROCESSOR = {
    "image_processor_type": "VideoMAEImageProcessor",
    "do_resize": True, "size": {"shortest_edge": TINY_IMAGE_SIZE}, "resample": 2,
    "do_center_crop": True, "crop_size": {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
    "do_rescale": True, "rescale_factor": 1 / 255,
    "do_normalize": True, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
}


def perturb_(model, seed: int = 0, scale: float = 0.05) -> None:
    """Add seeded Gaussian noise to every parameter (zeros, ones and the default init all move)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.add_(torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.dtype) * scale)


def _id2label(num_labels: int, label_names: list[str] | None) -> dict:
    names = label_names or [f"LABEL_{i}" for i in range(num_labels)]
    if len(names) != num_labels:
        raise ValueError(f"label_names has {len(names)} entries, num_labels is {num_labels}")
    return {i: n for i, n in enumerate(names)}


def _quiet_transformers() -> None:
    """No progress bars or info logs from transformers in test output."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _save(model, path: Path, *, safe_serialization: bool, max_shard_size, preprocessor: dict | None) -> Path:
    _quiet_transformers()
    path.mkdir(parents=True, exist_ok=True)
    kwargs = {"safe_serialization": safe_serialization}
    if max_shard_size is not None:
        kwargs["max_shard_size"] = max_shard_size
    try:
        model.save_pretrained(path, **kwargs)
    except TypeError:
        # transformers versions without the safe_serialization switch always write safetensors.
        if safe_serialization:
            kwargs.pop("safe_serialization")
            model.save_pretrained(path, **kwargs)
        else:
            raise
    if not safe_serialization and any(path.glob("*.safetensors")):
        # Some transformers versions ignore safe_serialization=False: write the pickle layout ourselves.
        _to_pytorch_bin(path)
    if preprocessor is not None:
        (path / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    return path


def _to_pytorch_bin(path: Path) -> None:
    """Rewrite safetensors files (single or sharded with index) as pytorch_model*.bin with the same layout."""
    import torch
    from safetensors.torch import load_file

    index = path / "model.safetensors.index.json"
    if index.exists():
        meta = json.loads(index.read_text())
        renamed = {}
        for shard in sorted(set(meta["weight_map"].values())):
            target = shard.replace("model-", "pytorch_model-").replace(".safetensors", ".bin")
            torch.save(load_file(str(path / shard)), path / target)
            (path / shard).unlink()
            renamed[shard] = target
        meta["weight_map"] = {k: renamed[v] for k, v in meta["weight_map"].items()}
        (path / "pytorch_model.bin.index.json").write_text(json.dumps(meta, indent=2))
        index.unlink()
    else:
        torch.save(load_file(str(path / "model.safetensors")), path / "pytorch_model.bin")
        (path / "model.safetensors").unlink()


def make_tiny_vivit(
    dir,
    *,
    num_labels: int = 5,
    label_names: list[str] | None = None,
    safe_serialization: bool = True,
    perturb: bool = True,
    seed: int = 0,
    base_model: bool = False,
    max_shard_size=None,
    preprocessor: dict | None | bool = True,
    **config_overrides,
) -> Path:
    """Write a tiny random ViViT checkpoint (VivitForVideoClassification, or VivitModel with base_model=True).

    config_overrides go into VivitConfig (e.g. num_frames=8, tubelet_size=[4, 8, 8], num_attention_heads=2,
    image_size=48). label_names replaces the LABEL_i placeholders. preprocessor=True writes a 32 px
    VivitImageProcessor config sized to the image (a dict writes that dict, False/None writes none).
    max_shard_size (e.g. "30KB") writes a sharded checkpoint with its index json.
    """
    import torch
    from transformers import VivitConfig, VivitForVideoClassification, VivitModel

    values = {**VIVIT_TINY, **config_overrides}
    config = VivitConfig(**values, id2label=_id2label(num_labels, label_names),
                         label2id={v: k for k, v in _id2label(num_labels, label_names).items()})
    torch.manual_seed(seed)
    model = (VivitModel(config) if base_model else VivitForVideoClassification(config)).eval()
    if perturb:
        perturb_(model, seed)
    return _save(model, Path(dir), safe_serialization=safe_serialization, max_shard_size=max_shard_size,
                 preprocessor=_preprocessor(preprocessor, VIVIT_PREPROCESSOR, values["image_size"]))


def make_tiny_videomae(
    dir,
    *,
    num_labels: int = 5,
    label_names: list[str] | None = None,
    use_mean_pooling: bool = True,
    pretraining: bool = False,
    base_model: bool = False,
    safe_serialization: bool = True,
    perturb: bool = True,
    seed: int = 0,
    max_shard_size=None,
    preprocessor: dict | None | bool = True,
    **config_overrides,
) -> Path:
    """Write a tiny random VideoMAE checkpoint.

    Default: VideoMAEForVideoClassification. pretraining=True: VideoMAEForPreTraining (encoder + decoder,
    no classifier). base_model=True: a bare VideoMAEModel. config_overrides go into VideoMAEConfig
    (e.g. patch_size=4, tubelet_size=1, num_frames=6, qv_bias=False).
    """
    import torch
    from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification, VideoMAEModel

    values = {**VIDEOMAE_TINY, "use_mean_pooling": use_mean_pooling, **config_overrides}
    labels = _id2label(num_labels, label_names)
    config = VideoMAEConfig(**values, id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(seed)
    if pretraining:
        model = VideoMAEForPreTraining(config)
    elif base_model:
        model = VideoMAEModel(config)
    else:
        model = VideoMAEForVideoClassification(config)
    model.eval()
    if perturb:
        perturb_(model, seed)
    return _save(model, Path(dir), safe_serialization=safe_serialization, max_shard_size=max_shard_size,
                 preprocessor=_preprocessor(preprocessor, VIDEOMAE_PREPROCESSOR, values["image_size"]))


def _preprocessor(choice, default: dict, image_size) -> dict | None:
    if choice is True:
        size = image_size if isinstance(image_size, int) else int(min(image_size))
        return {**default, "size": {"shortest_edge": size}, "crop_size": {"height": size, "width": size}}
    if not choice:
        return None
    return dict(choice)


def load_reference(path, *, attn: str = "eager", dtype=None):
    """The transformers model for a checkpoint written above, in eval mode (float32 unless dtype is given).

    Picks the class from config.json's architectures: ForVideoClassification, Model or ForPreTraining.
    """
    import torch
    import transformers

    _quiet_transformers()
    config = json.loads((Path(path) / "config.json").read_text())
    arch = (config.get("architectures") or [None])[0]
    cls = getattr(transformers, arch)
    model = cls.from_pretrained(str(path), attn_implementation=attn, dtype=dtype or torch.float32)
    return model.eval()


def random_pixels(path_or_config, *, batch: int = 2, num_frames: int | None = None,
                  image_size: int | None = None, seed: int = 0):
    """Seeded float pixel values (B, T, C, H, W) shaped for a checkpoint's config (or given sizes)."""
    import torch

    if isinstance(path_or_config, (str, Path)):
        config = json.loads((Path(path_or_config) / "config.json").read_text())
    else:
        config = dict(path_or_config)
    t = num_frames or config["num_frames"]
    s = image_size or config["image_size"]
    h, w = (s, s) if isinstance(s, int) else tuple(s)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, t, config.get("num_channels", 3), h, w, generator=gen)
