"""Native ViViT and VideoMAE runners for Hugging Face checkpoints (no transformers at run time).

    from vivitcli.models import load_model, build_model
    model = load_model("vivit")                  # alias, hub id, or a local HF-layout directory
    logits = model(pixel_values)                 # (B, T, C, H, W) float → (B, num_labels)

Names resolve lazily so `import vivitcli.models` stays cheap.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "load_model": "vivitcli.models.hub",
    "resolve_model_path": "vivitcli.models.hub",
    "ALIASES": "vivitcli.models.hub",
    "build_model": "vivitcli.models.build",
    "VideoModel": "vivitcli.models.base",
    "ViViT": "vivitcli.models.vivit",
    "VideoMAE": "vivitcli.models.videomae",
    "ModelConfig": "vivitcli.models.config",
    "PRESETS": "vivitcli.models.presets",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vivitcli.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
