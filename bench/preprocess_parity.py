"""How far vivitcli's preprocessing is from transformers' VideoMAE/ViViT image processors, in 8-bit steps.

transformers 5 has two VideoMAE processors: `VideoMAEImageProcessor` resizes with torchvision when torchvision
is installed (its default) and falls back to `VideoMAEImageProcessorPil` without it; VivitImageProcessor has
only the PIL path. vivitcli resizes like PIL. This prints, for the test configs and shapes of
tests/test_preprocess.py, the largest and mean difference (in 8-bit levels) of each backend from vivitcli's two paths:
`exact` (Preprocessor(frames), = read_clip(exact=True)) and `columns` (read_clip's default).

    python bench/preprocess_parity.py          # needs transformers; torchvision for the torchvision rows
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_preprocess import CONFIGS, SHAPES, textured_frames  # noqa: E402
from vivitcli.preprocess import Preprocessor  # noqa: E402


# Video-sized frames with each processor's defaults (shortest edge 224 for VideoMAE, 256 → crop 224 for
# ViViT): large downscales, where resize implementations differ most.
VIDEO_SHAPES = [(360, 640), (480, 854), (720, 1280), (1080, 1920)]
CASES = [(m, k, s) for m, k in CONFIGS for s in SHAPES] + [(m, {}, s) for m in ("videomae", "vivit")
                                                          for s in VIDEO_SHAPES]


def processors(model_type: str, kwargs: dict) -> dict:
    import transformers

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if model_type == "vivit":
            out["pil"] = transformers.VivitImageProcessor(**kwargs)
        else:
            out["pil"] = transformers.VideoMAEImageProcessorPil(**kwargs)
            default = transformers.VideoMAEImageProcessor(**kwargs)
            if "Torchvision" in "".join(c.__name__ for c in type(default).__mro__):
                out["torchvision"] = default
    return out


def main() -> None:
    import torch
    import transformers

    try:
        import torchvision
        tv = torchvision.__version__
    except ImportError:
        tv = "not installed"
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, torchvision {tv}")
    worst: dict = {}
    for model_type, kwargs, shape in CASES:
        frames = textured_frames(3, *shape, seed=shape[0])
        for backend, proc in processors(model_type, kwargs).items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = proc(list(frames), return_tensors="pt")["pixel_values"][0].float()
            pre = Preprocessor.from_config(proc.to_dict(), model_type)
            # One 8-bit level per channel, in output units.
            std = torch.tensor(pre.image_std if pre.do_normalize else (1.0, 1.0, 1.0), dtype=torch.float32)
            step = (pre.rescale_factor if pre.do_rescale else 1.0) / std[:, None, None]
            exact = pre(frames)
            columns = pre.normalize(np.stack([pre.resize_crop(f) for f in frames]))
            for path, ours in (("exact", exact), ("columns", columns)):
                d = (ours - ref).abs() / step
                key = (model_type, backend, path)
                m, mean = d.max().item(), d.mean().item()
                w = worst.setdefault(key, [0.0, 0.0])
                w[0], w[1] = max(w[0], m), max(w[1], mean)
    print(f"{'model':9} {'processor':12} {'vivitcli path':14} {'max (8-bit levels)':>19} {'worst mean':>11}")
    for (model_type, backend, path), (m, mean) in sorted(worst.items()):
        print(f"{model_type:9} {backend:12} {path:14} {m:19.2f} {mean:11.4f}")


if __name__ == "__main__":
    main()
