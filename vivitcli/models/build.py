"""build_model (random weights from a config dict) and the finishing step shared with load_model."""

from __future__ import annotations

import torch

from vivitcli.labels import resolve_labels
from vivitcli.models.base import VideoModel, check_attn
from vivitcli.models.config import ModelConfig
from vivitcli.models.device import resolve_device, resolve_dtype
from vivitcli.models.layers import init_weights, sinusoid_table


def build_model(config: dict, *, device="auto", dtype="auto", attn: str = "sdpa", name: str | None = None,
                preprocessor_config: dict | None = None, seed: int | None = None) -> VideoModel:
    """A VideoModel with random weights for a config.json dict (e.g. presets.PRESETS[...]), in eval mode.

    A classifier is built when the config has labels (id2label / num_labels) and its architectures are
    not a bare model or pre-training one. seed makes the weights reproducible.
    """
    from vivitcli.models.videomae import VideoMAE
    from vivitcli.models.vivit import ViViT

    check_attn(attn)
    cfg = ModelConfig.from_dict(config, source=name or "config")
    arch = (config.get("architectures") or ["ForVideoClassification"])[0]
    num_labels = len(cfg.id2label) or int(config.get("num_labels", 0) or 0)
    if not arch.endswith("ForVideoClassification"):
        num_labels = 0
    gen_state = torch.random.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        # Built on the meta device and initialised once: PyTorch's own per-layer init would double the cost.
        with torch.device("meta"):
            if cfg.model_type == "vivit":
                model = ViViT(cfg, num_labels=num_labels, attn=attn)
            else:
                model = VideoMAE(cfg, num_labels=num_labels, attn=attn)
        model.to_empty(device="cpu")
        init_weights(model)
        with torch.no_grad():
            if cfg.model_type == "vivit":
                model.cls_token.normal_(0.0, 0.02).clamp_(-0.04, 0.04)
                model.pos_embed.normal_(0.0, 0.02).clamp_(-0.04, 0.04)
            else:
                model.pos_embed = sinusoid_table(cfg.num_patches, cfg.hidden_size)
    finally:
        if seed is not None:
            torch.random.set_rng_state(gen_state)
    return finalize(model, name=name or config.get("_name_or_path") or cfg.model_type, device=device,
                    dtype=dtype, preprocessor_config=preprocessor_config)


def finalize(model: VideoModel, *, name: str, device="auto", dtype="auto",
             preprocessor_config: dict | None = None) -> VideoModel:
    """Attach name, labels and preprocessor (checked like a checkpoint's file, whoever passes it); move to
    device / dtype; eval mode."""
    from vivitcli.models.config import validate_preprocessor_config
    from vivitcli.preprocess import Preprocessor

    if preprocessor_config is not None:
        validate_preprocessor_config(preprocessor_config, f"{name}: preprocessor_config", model=model.cfg)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    model.name = name
    model.labels, model.label_source = resolve_labels(model.cfg.id2label, model.num_labels)
    model.preprocessor = default_preprocessor(model.cfg) if preprocessor_config is None else \
        Preprocessor.from_config(preprocessor_config, model.cfg.model_type)
    return model.to(device=dev, dtype=dt).eval()


def default_preprocessor(cfg: ModelConfig):
    """The architecture's processor defaults at the model's image size (preprocess.default_config)."""
    from vivitcli.preprocess import Preprocessor, default_config

    return Preprocessor.from_config(default_config(cfg.model_type, cfg.image_size), cfg.model_type)
