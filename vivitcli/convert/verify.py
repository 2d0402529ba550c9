"""--verify: run the source's reference forward and the written checkpoint (through load_model, as every command
would) on one seeded synthetic clip, and fail the conversion when they disagree beyond the tolerance."""

from __future__ import annotations

import contextlib
from pathlib import Path

from vivitcli.convert.options import TOLERANCE, ConvertOptions, ConvertResult
from vivitcli.errors import ConvertError, UsageError


def run_model(model, pv) -> dict:
    """{'features', 'logits'?} of a vivitcli model: what the references return, for comparison."""
    out = {"features": model.forward_features(pv)}
    if getattr(model, "has_classifier", getattr(model, "num_labels", 0) > 0):
        out["logits"] = model(pv)
    return out


def verification_clip(config: dict, seed: int = 0):
    """A seeded synthetic clip (1, T, C, S, S) at the checkpoint's native size, values like normalized pixels."""
    import torch

    size = config.get("image_size", 224)
    size = int(size[0]) if isinstance(size, (list, tuple)) else int(size)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, int(config["num_frames"]), int(config.get("num_channels", 3)), size, size, generator=gen)


@contextlib.contextmanager
def exact_float32():
    """TF32 convolutions/matmuls (cuDNN's default for conv) would blur a float32 comparison on recent GPUs."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available here (use --device cpu)")


def verify(tmp: Path, config: dict, reference, opts: ConvertOptions, out_dtype: str, result: ConvertResult) -> None:
    """Compare reference and the checkpoint written in `tmp`; fills result.compared / max_abs_diff / tolerance /
    verified, raises ConvertError ("nothing written") when they disagree."""
    import torch

    from vivitcli import load_model

    device = opts.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        pv = verification_clip(config, opts.seed).to(device)
    except (RuntimeError, AssertionError) as err:
        raise UsageError(f"--device {opts.device}: not usable ({str(err).splitlines()[0]})") from None
    with torch.no_grad(), exact_float32():
        ref = reference(pv)
        try:
            model = load_model(str(tmp), device=device, dtype="float32", attn="eager")
        except Exception as err:  # the written checkpoint must load; anything else is a converter bug
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConvertError(f"{result.dst}: the converted checkpoint does not load ({first}); nothing written")
        got = run_model(model, pv)
    what = "logits" if "logits" in got and "logits" in ref else "features"
    if what not in ref or what not in got:
        raise ConvertError(f"{result.dst}: cannot verify: source and result disagree on having a classifier")
    a, b = ref[what].float(), got[what].float()
    if a.shape != b.shape:
        raise ConvertError(f"{result.dst}: verification failed: {what} shapes {tuple(a.shape)} vs {tuple(b.shape)}")
    diff = float((a - b).abs().max())
    scale = max(1.0, float(a.abs().max()))
    tol = (opts.tolerance if opts.tolerance is not None else TOLERANCE[out_dtype]) * scale
    result.compared, result.max_abs_diff, result.tolerance = what, diff, tol
    if not diff <= tol:  # also catches NaN
        raise ConvertError(f"{result.dst}: verification failed: max |Δ{what}| = {diff:.3g} exceeds {tol:.3g}; "
                           "nothing written", hint="--no-verify writes it anyway, at your own risk")
    result.verified = True
