"""vivitcli: label and embed video clips with ViViT and VideoMAE, natively in PyTorch.

The public API is imported lazily so that `import vivitcli` (and `vivit --help`) never pulls in torch or av.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access.
_LAZY = {
    "load_model": "vivitcli.models.hub",
    "probe": "vivitcli.video.probe",
    "VideoInfo": "vivitcli.video.probe",
    "sample_indices": "vivitcli.video.sampling",
    "read_frames": "vivitcli.video.decode",
    "read_clip": "vivitcli.clip",
    "ClipInfo": "vivitcli.clip",
    "Preprocessor": "vivitcli.preprocess",
    "convert_checkpoint": "vivitcli.convert",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vivitcli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
