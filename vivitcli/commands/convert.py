"""`vivit convert SRC DST`: turn a checkpoint into the Hugging Face layout vivitcli and transformers load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vivitcli.commands.options import Debug, Quiet, words
from vivitcli.convert.options import DTYPES, PREPROCESS


def command(
    src: Annotated[Path, typer.Argument(help="HF directory with pytorch_model.bin (or shards), original VideoMAE "
                                             ".pth, or Scenic ViViT Flax checkpoint (model 1 or factorised encoder: "
                                             "a checkpoint_<step> file or its folder).", show_default=False)],
    dst: Annotated[Path, typer.Argument(help="Output directory (must not exist unless --force).",
                                        show_default=False)],
    dtype: Annotated[Optional[str], typer.Option(
        "--dtype", help="float32, float16 or bfloat16. (default: the source's)", show_default=False,
        autocompletion=words(DTYPES))] = None,
    labels: Annotated[Optional[str], typer.Option(
        "--labels", help="Class names: kinetics400, kinetics600, ssv2, epic-kitchens-100 (noun + verb heads), or "
                         "a file (one per line, or JSON list/object).", show_default=False)] = None,
    class_splits: Annotated[Optional[str], typer.Option(
        "--class-splits", help="Heads of one multi-head classifier in logit order, e.g. noun:300,verb:97 "
                               "(factorised encoder; default for 397 classes: EPIC-KITCHENS-100's).",
        show_default=False)] = None,
    strip_head: Annotated[bool, typer.Option(
        "--strip-head", help="Drop the classifier (or a pre-training decoder): embedding-only.")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify/--no-verify", help="Run source and result on one synthetic clip; fail if max |Δ| exceeds "
                                     "the tolerance.")] = True,
    tolerance: Annotated[Optional[float], typer.Option(
        "--tolerance", help="Allowed max |Δ| relative to max(1, max |reference|). (default: 1e-4 float32, "
                            "1e-2 float16, 6e-2 bfloat16)", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace DST if it exists.")] = False,
    num_frames: Annotated[Optional[int], typer.Option(
        "--num-frames", help="Frames per clip for VideoMAE .pth (default: 16); Scenic: read from the "
                             "position table.", show_default=False)] = None,
    image_size: Annotated[int, typer.Option("--image-size", help="Input size in pixels (original releases).")] = 224,
    head_dim: Annotated[int, typer.Option(
        "--head-dim", help="Attention head size used to count heads in VideoMAE .pth files.")] = 64,
    num_heads: Annotated[Optional[int], typer.Option(
        "--num-heads", help="Encoder heads (VideoMAE .pth), instead of width / --head-dim.",
        show_default=False)] = None,
    decoder_num_heads: Annotated[Optional[int], typer.Option(
        "--decoder-num-heads", help="Decoder heads of a VideoMAE pre-training .pth (default: width / "
                                    "--head-dim).", show_default=False)] = None,
    preprocess: Annotated[Optional[str], typer.Option(
        "--preprocess", help="Preprocessor written for original releases: hf (what the hub checkpoints ship) or "
                             "original (the release's own pipeline; differs for Scenic ViViT). (default: original "
                             "for a Scenic factorised encoder, else hf)", show_default=False,
        autocompletion=words(PREPROCESS))] = None,
    device: Annotated[str, typer.Option(
        "--device", help="Where --verify runs: cpu, cuda, cuda:N or auto.",
        autocompletion=words(("cpu", "cuda", "auto")))] = "cpu",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Convert a checkpoint to the Hugging Face layout (config.json, preprocessor_config.json, model.safetensors).

    Reads a Hugging Face directory with pytorch_model.bin (or shards), an original VideoMAE release .pth
    (fine-tuned or pre-training), or a Scenic ViViT Flax checkpoint, unfactorised or factorised encoder
    (no jax/flax needed; the msgpack package: pip install 'vivitcli[convert]'). Pickles are opened
    with torch.load(weights_only=True) only. DST appears only when everything, including --verify, succeeded.
    """
    from vivitcli.convert import ConvertOptions, convert_checkpoint

    opts = ConvertOptions(dtype=dtype, labels=labels, class_splits=class_splits, strip_head=strip_head,
                          verify=verify, force=force, num_frames=num_frames, image_size=image_size,
                          head_dim=head_dim, num_heads=num_heads, decoder_num_heads=decoder_num_heads,
                          preprocess=preprocess, tolerance=tolerance, device=device)
    result = convert_checkpoint(src, dst, opts)
    if not quiet:
        for note in result.notes:
            typer.echo(f"note: {note}", err=True)
    if result.verified:
        typer.echo(f"verify: max |Δ{result.compared}| = {result.max_abs_diff:.3g} "
                   f"(tolerance {result.tolerance:.3g}) ok")
    elif not quiet:
        typer.echo("verify: skipped (--no-verify)", err=True)
    labels_text = f"{result.num_labels} labels ({result.label_source})" if result.num_labels else "no classifier"
    if result.class_splits:
        labels_text += " in heads " + ", ".join(f"{name} {size}" for name, size in result.class_splits)
    typer.echo(f"wrote {result.dst}: {result.architecture}, {result.num_params / 1e6:.2f}M params, "
               f"{result.dtype}, {labels_text} [from {result.format}]")
