"""Masked reconstruction with a VideoMAE pre-training model: what `vivit reconstruct` computes and draws.

    model = load_model("demo-mae", task="pretraining")
    result = reconstruct("clip.mp4", model, mask_ratio=0.9, seed=0)     # Reconstruction
    write_reconstruction(result, "r.png")                                # also r.png.json (the sidecar)

Four views of the clip at the model's sampling, as uint8 (T, S, S, 3): the original (the model's input,
un-normalised), the masked input (hidden patches grey), the reconstruction (the decoder's patches; the
visible patches, which it does not predict, grey) and the reconstruction with the visible patches pasted back.

Un-normalisation is exact: the decoder predicts each hidden token's patch in (t, p, q, C) order in the loss's
target space (pixels with ImageNet mean/std undone, and with norm_pix_loss per-patch normalised); the way back
undoes each step, then the checkpoint's own preprocessor (mean/std, rescale, offset). With norm_pix_loss the
per-patch mean and std of the *hidden* patches are needed, and only the ground truth has them: the picture
then shows more than the model predicts, which the caption and the sidecar (`uses_target_stats`) say.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vivitcli.errors import UsageError, VivitError

PANELS = ("original", "masked", "reconstruction", "reconstruction + visible")
FORMATS = (".png", ".gif", ".mp4")
HIDDEN_GREY = 96            # fill for patches a view does not show
PNG_CELL = 96               # a PNG cell (one frame of one view) is upscaled to at least this many pixels
VIDEO_PANEL = 192           # ... a GIF/MP4 panel to at least this many
VIDEO_FPS = 4               # the model sees 8-16 frames: slow enough to follow


@dataclass
class Reconstruction:
    video: str
    model: str
    views: dict                      # PANELS name -> uint8 (T, S, S, 3)
    mask: np.ndarray                 # bool (N,) over the (t, h, w) token grid, True = hidden
    grid: tuple
    loss: float
    mask_ratio: float
    masking: str
    seed: int
    norm_pix_loss: bool
    uses_target_stats: bool
    dtype: str                       # what the model computed in ("float32", ...): the loss depends on it
    clip: dict = field(default_factory=dict)

    def caption(self) -> list[str]:
        hidden, total = int(self.mask.sum()), int(self.mask.size)
        lines = [f"{Path(self.video).name} | {self.model} | {self.masking} mask {self.mask_ratio:g} "
                 f"({hidden}/{total} tokens hidden) | seed {self.seed} | loss {self.loss:.4f}"]
        if self.uses_target_stats:
            lines.append("norm_pix_loss: hidden patches drawn with their TRUE mean/std (target stats), "
                         "so this looks better than the model predicts")
        return lines

    def to_dict(self) -> dict:
        return {
            "video": self.video, "model": self.model, "loss": self.loss, "mask_ratio": self.mask_ratio,
            "masking": self.masking, "seed": self.seed, "tokens": int(self.mask.size),
            "hidden_tokens": int(self.mask.sum()), "grid": list(self.grid), "norm_pix_loss": self.norm_pix_loss,
            "uses_target_stats": self.uses_target_stats, "dtype": self.dtype, "panels": list(PANELS),
            "clip": self.clip,
        }


def reconstruct(video, model, *, mask_ratio: float = 0.9, seed: int = 0, masking: str = "tube") -> Reconstruction:
    """Read `video` at the model's sampling, hide tokens with a seeded mask, run the model, build the views.

    model: a pre-training model (load_model(..., task="pretraining")). Raises VideoError for an unreadable
    video, UsageError for a bad mask ratio/masking or a model without a decoder."""
    from vivitcli.masking import make_mask
    from vivitcli.models.device import canonical_dtype

    if not hasattr(model, "decoder_head"):
        raise UsageError(f"{model.name}: not a pre-training model; load it with task='pretraining'")
    mask = make_mask(model.cfg.grid, mask_ratio, masking=masking, seed=seed)        # (1, N)
    clip, info = model.read_clip(video, return_info=True)
    pixel_values = clip[None]                                                      # (1, T, C, S, S)
    logits, loss = model(pixel_values, mask)
    views = render_views(model, pixel_values.float(), mask, logits.float())
    return Reconstruction(
        video=str(video), model=model.name, views={k: v[0] for k, v in views.items()}, mask=mask[0].numpy(),
        grid=tuple(model.cfg.grid), loss=float(loss), mask_ratio=float(mask_ratio), masking=masking,
        seed=int(seed), norm_pix_loss=model.norm_pix_loss, uses_target_stats=model.norm_pix_loss,
        clip=info.to_dict() if hasattr(info, "to_dict") else {},
        dtype=canonical_dtype(model.dtype, allow_auto=False))


# ---- the way back to pixels -----------------------------------------------------------------------------
def predicted_patches(model, pixel_values, mask, logits):
    """Decoder output (B, M, P) → target-space patches (B, M, P); with norm_pix_loss through the hidden
    patches' true mean/std (the only way back: the prediction carries neither)."""
    from vivitcli.models.videomae_pretraining import patch_stats, patchify, target_space

    if not model.norm_pix_loss:
        return logits
    c = model.cfg.num_channels
    targets = patchify(target_space(pixel_values.to(logits.device)), model.cfg.tubelet)  # (B, N, P)
    mean, std = patch_stats(targets, c)                                                  # (B, N, 1, C)
    b, m, p = logits.shape
    mean, std = mean[mask].reshape(b, m, 1, c), std[mask].reshape(b, m, 1, c)
    return (logits.reshape(b, m, -1, c) * std + mean).reshape(b, m, p)


def to_uint8(target_pixels, preprocessor) -> np.ndarray:
    """(B, T, C, H, W) in the loss's target space → uint8 (B, T, H, W, C): undo the loss's ImageNet step
    (RGB), then the checkpoint preprocessor's normalize and rescale (with its offset)."""
    import torch

    from vivitcli.preprocess import IMAGENET_MEAN, IMAGENET_STD

    x = target_pixels.detach().to("cpu", torch.float64)
    c = x.shape[2]

    def per_channel(values):
        return torch.tensor(values, dtype=torch.float64)[None, None, :, None, None]

    if c == 3:
        x = (x - per_channel(IMAGENET_MEAN)) / per_channel(IMAGENET_STD)         # back to pixel_values
    if preprocessor.do_normalize:
        x = x * per_channel(preprocessor.image_std) + per_channel(preprocessor.image_mean)
    if preprocessor.do_rescale:
        if preprocessor.offset:
            x = x + 1
        x = x / preprocessor.rescale_factor
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()


def render_views(model, pixel_values, mask, logits) -> dict:
    """The four PANELS as uint8 (B, T, H, W, C) from the model's input, the mask and the decoder output."""
    import torch

    from vivitcli.models.videomae_pretraining import patchify, target_space, unpatchify

    cfg = model.cfg
    tubelet, grid, c = cfg.tubelet, cfg.grid, cfg.num_channels
    pixel_values = pixel_values.to("cpu", torch.float32)
    mask = mask.to("cpu")
    logits = logits.to("cpu", torch.float32)
    target = patchify(target_space(pixel_values), tubelet)                          # (B, N, P)
    predicted = predicted_patches(model, pixel_values, mask, logits)                # (B, M, P)
    grey = patchify(target_space(_grey_pixels(pixel_values, model.preprocessor)), tubelet)

    def frames(patches):
        return to_uint8(unpatchify(patches, tubelet, grid, c), model.preprocessor)

    masked = torch.where(mask[..., None], grey, target)
    recon = grey.clone()
    recon[mask] = predicted.reshape(-1, predicted.shape[-1])
    pasted = target.clone()
    pasted[mask] = predicted.reshape(-1, predicted.shape[-1])
    return dict(zip(PANELS, (frames(target), frames(masked), frames(recon), frames(pasted))))


def _grey_pixels(pixel_values, preprocessor):
    """pixel_values of a uniform HIDDEN_GREY clip, shaped like `pixel_values`."""
    import torch

    t, s1, s2 = pixel_values.shape[1], pixel_values.shape[3], pixel_values.shape[4]
    flat = preprocessor.normalize(np.full((t, s1, s2, 3), HIDDEN_GREY, dtype=np.uint8))     # (T, C, H, W)
    return flat[None].expand(pixel_values.shape[0], -1, -1, -1, -1).to(torch.float32)


# ---- pictures -------------------------------------------------------------------------------------------
def _scale(size: int, at_least: int) -> int:
    return max(1, math.ceil(at_least / size))


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=13)     # Pillow's bundled font when built with FreeType
    except (TypeError, ValueError, OSError, ImportError):
        return ImageFont.load_default()            # the tiny bitmap font otherwise


def _text_height(draw, font) -> int:
    box = draw.textbbox((0, 0), "Ag|", font=font)
    return box[3] - box[1] + 6


def _upscale(frame: np.ndarray, k: int) -> np.ndarray:
    return frame.repeat(k, axis=0).repeat(k, axis=1) if k > 1 else frame


@dataclass
class _Layout:
    """What both pictures measure first: the views, their frame count t, the upscale k to at least a given
    panel size, the font, a text line's height, the caption and its widest line's width."""

    views: list
    t: int
    k: int
    font: object
    line: int
    caption: list
    caption_width: int

    @classmethod
    def of(cls, result: Reconstruction, at_least: int) -> "_Layout":
        from PIL import Image, ImageDraw

        views = [result.views[name] for name in PANELS]
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        font = _font()
        caption = result.caption()
        return cls(views, views[0].shape[0], _scale(views[0].shape[1], at_least), font, _text_height(probe, font),
                   caption, max(int(probe.textlength(c, font=font)) for c in caption))


def png_image(result: Reconstruction):
    """One still: a row per view (original, masked, ...), a column per frame, captions above and below."""
    from PIL import Image, ImageDraw

    lay = _Layout.of(result, PNG_CELL)
    views, t, k, font, line, caption = lay.views, lay.t, lay.k, lay.font, lay.line, lay.caption
    cell, gap = views[0].shape[1] * k, 4
    width = max(t * (cell + gap) + gap, lay.caption_width + 2 * gap)
    height = len(PANELS) * (line + cell + gap) + gap + line * len(caption)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    y = gap
    for name, frames in zip(PANELS, views):
        draw.text((gap, y), name, fill=(0, 0, 0), font=font)
        y += line
        for i in range(t):
            img.paste(Image.fromarray(_upscale(frames[i], k)), (gap + i * (cell + gap), y))
        y += cell + gap
    for i, text in enumerate(caption):
        draw.text((gap, y + i * line), text, fill=(160, 0, 0) if i else (0, 0, 0), font=font)
    return img


def video_frames(result: Reconstruction) -> list:
    """One picture per model frame: the four views side by side, titles above, the caption below."""
    from PIL import Image, ImageDraw

    lay = _Layout.of(result, VIDEO_PANEL)
    views, t, k, font, line, caption = lay.views, lay.t, lay.k, lay.font, lay.line, lay.caption
    panel, gap = views[0].shape[1] * k, 6
    width = max(len(PANELS) * (panel + gap) + gap, lay.caption_width + 2 * gap)
    height = line + panel + gap + line * (len(caption) + 1)
    width, height = width + width % 2, height + height % 2          # even sizes for yuv420p
    out = []
    for i in range(t):
        img = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        for j, (name, frames) in enumerate(zip(PANELS, views)):
            x = gap + j * (panel + gap)
            draw.text((x, gap // 2), name, fill=(0, 0, 0), font=font)
            img.paste(Image.fromarray(_upscale(frames[i], k)), (x, line))
        y = line + panel + gap
        for n, text in enumerate(caption + [f"frame {i + 1}/{t}"]):
            draw.text((gap, y + n * line), text, fill=(160, 0, 0) if 0 < n < len(caption) else (0, 0, 0), font=font)
        out.append(img)
    return out


def _write_mp4(images, path: Path) -> None:
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = images[0].width, images[0].height, "yuv420p"
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def sidecar_path(out) -> Path:
    """Where the JSON sidecar of `out` goes: next to it, `.json` appended (r.png → r.png.json)."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def check_out(out) -> Path:
    """The output path, checked before any work: a known extension and an existing directory."""
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in FORMATS:
        raise UsageError(f"{out}: unsupported extension {ext or '(none)'}; use one of {', '.join(FORMATS)}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise VivitError(f"{out}: directory {parent} does not exist")
    if out.is_dir():
        raise VivitError(f"{out}: is a directory; give a file name ending in {', '.join(FORMATS)}")
    return out


def write_reconstruction(result: Reconstruction, out) -> Path:
    """Write the picture (.png still, .gif or .mp4 animation) and its JSON sidecar, each atomically (a
    temporary file renamed into place, so a failed run leaves any earlier file as it was). Returns the
    sidecar's path."""
    out = check_out(out)
    ext = out.suffix.lower()
    side = sidecar_path(out)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    tmp_side = side.with_name(f".{side.name}.partial")
    try:
        if ext == ".png":
            png_image(result).save(tmp, format="PNG", optimize=True)
        else:
            images = video_frames(result)
            if ext == ".gif":
                images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                               duration=int(1000 / VIDEO_FPS), loop=0)
            else:
                _write_mp4(images, tmp)
        tmp_side.write_text(json.dumps({**result.to_dict(), "out": str(out)}, indent=2) + "\n")
        os.replace(tmp, out)
        os.replace(tmp_side, side)
    except OSError as err:
        raise VivitError(f"{out}: cannot write ({err.strerror or err})") from None
    finally:
        for path in (tmp, tmp_side):
            if path.exists():
                path.unlink()
    return side
