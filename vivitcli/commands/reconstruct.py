"""`vivit reconstruct`: hide most of a clip's tubes, let a VideoMAE pre-training model fill them in, draw it."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from vivitcli.commands import options as o


class Masking(str, Enum):
    tube = "tube"
    random = "random"


def command(
    video: Annotated[Path, typer.Argument(help="The video file.", show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Picture to write: .png (a still: one row per view, one column per frame), .gif or "
        ".mp4 (the views side by side, frame by frame). A sidecar OUT.json holds the loss and the settings.",
        show_default=False, rich_help_panel=o.OUTPUT_PANEL)],
    model: Annotated[str, typer.Option(
        "--model", "-m", help="A VideoMAE pre-training checkpoint (with its decoder): alias, hub id or local "
        "directory, e.g. demo-mae or MCG-NJU/videomae-base.", rich_help_panel=o.MODEL_PANEL)] = "demo-mae",
    mask_ratio: Annotated[float, typer.Option(
        "--mask-ratio", help="Share of tokens hidden (tube masking: of each frame's patches).")] = 0.9,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of the mask.")] = 0,
    masking: Annotated[Masking, typer.Option(
        "--masking", help="tube: one spatial mask repeated over time (the paper's); random: tokens drawn over "
        "the whole clip.")] = Masking.tube,
    device: o.Device = "auto",
    dtype: o.Dtype = "auto",
    attn: o.Attn = "sdpa",
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Show what a masked autoencoder makes of a clip: original | masked input | reconstruction | reconstruction
    with the visible patches pasted back.

    Frames are read at the model's sampling; the reconstruction loss (MSE over the hidden patches, as in
    training) goes to stderr and to the sidecar OUT.json. With a norm_pix_loss checkpoint the hidden patches
    can only be drawn with their true mean/std; the caption and the sidecar (uses_target_stats: true) say so.

    \b
    Examples:
      vivit sample-clip c.mp4 && vivit reconstruct c.mp4 --model demo-mae --out r.png
      vivit reconstruct clip.mp4 --model MCG-NJU/videomae-base --mask-ratio 0.75 --out r.mp4
    """
    from vivitcli.masking import check_masking
    from vivitcli.reconstruct import check_out, reconstruct, write_reconstruction

    check_masking(masking.value, mask_ratio)
    check_out(out)
    from vivitcli.models import load_model

    net = load_model(model, device=device, dtype=dtype, attn=attn.value, task="pretraining")
    result = reconstruct(video, net, mask_ratio=mask_ratio, seed=seed, masking=masking.value)
    side = write_reconstruction(result, out)
    if not quiet:
        typer.echo(f"{out}: loss {result.loss:.4f} ({int(result.mask.sum())}/{result.mask.size} tokens hidden"
                   f"{'; hidden patches drawn with target stats' if result.uses_target_stats else ''}); "
                   f"sidecar {side}", err=True)
