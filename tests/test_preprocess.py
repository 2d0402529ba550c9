"""Preprocessor parity with transformers' VivitImageProcessor and VideoMAEImageProcessor on the same frames.

The bar: max abs difference at most one 8-bit step in normalised units (1/255 / std, times 2 with
ViViT's offset rescale), mean far below that.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vivitcli.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessor

transformers = pytest.importorskip("transformers")


def hf_processor(model_type: str, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if model_type == "vivit":
            return transformers.VivitImageProcessor(**kwargs)
        # The PIL processor, also where torchvision is installed (VideoMAEImageProcessor then resizes with
        # torchvision, up to one 8-bit step away on many more values: see bench/preprocess_parity.py).
        cls = getattr(transformers, "VideoMAEImageProcessorPil", transformers.VideoMAEImageProcessor)
        return cls(**kwargs)


def hf_pixels(processor, frames: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = processor(list(frames), return_tensors="pt")["pixel_values"]
    return out[0].float()


def one_step(pre: Preprocessor) -> float:
    """One 8-bit grey step in the preprocessor's output units (the smallest for any channel)."""
    step = pre.rescale_factor if pre.do_rescale else 1.0
    if pre.offset:
        step = pre.rescale_factor
    return step / max(pre.image_std) if pre.do_normalize else step


def textured_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Noise over gradients and hard edges: the content where resize implementations disagree most."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = ((x * 7 + y * 3) % 256)[..., None] + np.array([0, 60, 120])
    edges = ((x // 5 + y // 3) % 2 * 80)[..., None]
    frames = base[None] + edges[None] + rng.integers(-40, 40, size=(t, h, w, 3))
    return np.clip(frames, 0, 255).astype(np.uint8)


CONFIGS = [
    ("vivit", dict(size={"shortest_edge": 64}, crop_size={"height": 56, "width": 56})),
    ("vivit", dict(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224})),
    ("videomae", dict(size={"shortest_edge": 48}, crop_size={"height": 48, "width": 48},
                      image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)),
    ("videomae", dict(size={"height": 40, "width": 72}, do_center_crop=False)),
    ("videomae", dict(size={"shortest_edge": 32}, crop_size={"height": 64, "width": 40})),  # crop > frame: pads
    ("vivit", dict(do_resize=False, crop_size={"height": 30, "width": 30})),
    ("videomae", dict(size={"shortest_edge": 36}, do_rescale=False, do_normalize=False,
                      crop_size={"height": 36, "width": 36})),
]
SHAPES = [(90, 160), (160, 90), (120, 160), (101, 203), (9, 17), (64, 64)]


@pytest.mark.parametrize("model_type,kwargs", CONFIGS)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_transformers(model_type, kwargs, shape):
    frames = textured_frames(3, *shape, seed=shape[0])
    processor = hf_processor(model_type, **kwargs)
    reference = hf_pixels(processor, frames)
    pre = Preprocessor.from_config(processor.to_dict(), model_type)
    ours = pre(frames)
    assert ours.dtype == torch.float32 and ours.shape == reference.shape
    diff = (ours - reference).abs()
    assert diff.max().item() <= one_step(pre) + 1e-6
    assert diff.mean().item() <= one_step(pre) / 100


def test_defaults_follow_the_architecture():
    vivit = Preprocessor.from_config({}, "vivit")
    hf = hf_processor("vivit")
    assert vivit.size == hf.size and vivit.crop_size == dict(hf.crop_size)
    assert vivit.offset and vivit.rescale_factor == pytest.approx(1 / 127.5)
    frames = textured_frames(2, 96, 128)
    ref = hf_pixels(hf, frames)
    assert (vivit(frames) - ref).abs().max().item() <= one_step(vivit)


def test_config_round_trip_and_output_size():
    pre = Preprocessor.from_config({"size": 32, "crop_size": 28}, "videomae")
    assert pre.size == {"shortest_edge": 32} and pre.crop_size == {"height": 28, "width": 28}
    assert Preprocessor.from_config(pre.to_config(), "videomae") == pre
    assert pre.output_size == (28, 28)
    assert pre(textured_frames(2, 50, 70)).shape == (2, 3, 28, 28)
    assert pre.resize_shape(50, 70) == (32, 44) and pre.resize_shape(70, 50) == (44, 32)


@pytest.mark.parametrize("model_type,kwargs", CONFIGS)
def test_table_normalisation_equals_the_float_path(model_type, kwargs):
    pre = Preprocessor.from_config(hf_processor(model_type, **kwargs).to_dict(), model_type)
    frames = textured_frames(2, 20, 24)
    assert torch.equal(pre.normalize(frames), pre._float_path(frames))


@pytest.mark.parametrize("shape", [(720, 1280), (480, 854), (90, 160), (101, 203), (160, 90), (224, 300)])
@pytest.mark.parametrize("size,crop", [(224, 224), (64, 56), (256, 224)])
def test_column_box_resize_stays_within_one_level(shape, size, crop):
    pre = Preprocessor.from_config({"size": {"shortest_edge": size}, "crop_size": crop}, "vivit")
    frame = textured_frames(1, *shape, seed=shape[1])[0]
    plain = pre.crop(pre.resize_frame(frame)).astype(np.int16)
    fast = pre.resize_crop(frame).astype(np.int16)
    assert fast.shape == plain.shape == (crop, crop, 3)
    diff = np.abs(fast - plain)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.02
    assert np.array_equal(pre.resize_crop(frame, exact=True), plain)
