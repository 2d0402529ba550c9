"""Native ViViT and VideoMAE runners for Hugging Face checkpoints (no transformers at run time).

    from vivitcli.models import load_model, build_model
    model = load_model("vivit")                  # alias, hub id, or a local HF-layout directory
    logits = model(pixel_values)                 # (B, T, C, H, W) float → (B, num_labels)

Names resolve lazily so `import vivitcli.models` stays cheap.
"""

from __future__ import annotations

from vivitcli._lazy import lazy_exports

_LAZY = {
    "load_model": "vivitcli.models.hub",
    "resolve_model_path": "vivitcli.models.hub",
    "ALIASES": "vivitcli.models.names",
    "build_model": "vivitcli.models.build",
    "VideoModel": "vivitcli.models.base",
    "ViViT": "vivitcli.models.vivit",
    "VideoMAE": "vivitcli.models.videomae",
    "ModelConfig": "vivitcli.models.config",
    "PRESETS": "vivitcli.models.presets",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports("vivitcli.models", _LAZY, globals())
