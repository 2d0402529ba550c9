"""vivitcli: label and embed video clips with ViViT and VideoMAE, natively in PyTorch.

The public API is imported lazily so that `import vivitcli` (and `vivit --help`) never pulls in torch or av.
"""

from __future__ import annotations

from vivitcli._lazy import lazy_exports

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access.
_LAZY = {
    "classify": "vivitcli.tasks",
    "embed": "vivitcli.tasks",
    "Sampling": "vivitcli.tasks",
    "ClassifyJob": "vivitcli.tasks",
    "EmbedJob": "vivitcli.tasks",
    "timeline": "vivitcli.window_tasks",
    "embed_windows": "vivitcli.window_tasks",
    "load_model": "vivitcli.models.hub",
    "probe": "vivitcli.video.probe",
    "VideoInfo": "vivitcli.video.probe",
    "sample_indices": "vivitcli.video.sampling",
    "read_frames": "vivitcli.video.decode",
    "read_clip": "vivitcli.video.read",
    "ClipInfo": "vivitcli.video.read",
    "Preprocessor": "vivitcli.preprocess",
    "convert_checkpoint": "vivitcli.convert",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports("vivitcli", _LAZY, globals())
