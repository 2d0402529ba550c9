"""`vivit sample-clip`: write a synthetic clip of one of the demo model's six classes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from vivitcli.commands.options import Quiet, words
from vivitcli.demo.names import BACKGROUNDS, CLASSES, CODECS, CONTAINERS, SHAPES, class_words
from vivitcli.errors import UsageError, VivitError


def command(
    output: Annotated[Path, typer.Argument(help="Where to write the clip (.mp4, .webm, .mkv, .mov or .avi).")] = Path(
        "sample.mp4"
    ),
    label: Annotated[
        Optional[str],
        typer.Option("--class", "-c", help=f"One of: {', '.join(CLASSES)}. [default: drawn from the seed]",
                     show_default=False, autocompletion=words(class_words())),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed for everything not fixed by an option.")] = 0,
    size: Annotated[
        Optional[str], typer.Option("--size", help="WIDTHxHEIGHT, e.g. 320x240. [default: drawn from the seed]",
                                    show_default=False)
    ] = None,
    fps: Annotated[Optional[float], typer.Option("--fps", help="Frames per second. [default: drawn]",
                                                 show_default=False)] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", help="Seconds. [default: drawn]",
                                                      show_default=False)] = None,
    codec: Annotated[
        Optional[str],
        typer.Option("--codec", help=f"{', '.join(CODECS)}. [default: vp9 for .webm, else h264]",
                     show_default=False, autocompletion=words(list(CODECS))),
    ] = None,
    shape: Annotated[Optional[str], typer.Option("--shape", help=f"{' or '.join(SHAPES)}. [default: drawn]",
                                                 show_default=False, autocompletion=words(SHAPES))] = None,
    background: Annotated[
        Optional[str], typer.Option("--background", help=f"{' or '.join(BACKGROUNDS)}. [default: drawn]",
                                    show_default=False, autocompletion=words(BACKGROUNDS))
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Write a synthetic clip (an object moving left/right/up/down, growing or shrinking) for `--model demo`.

    Needs no network: `vivit sample-clip clip.mp4 --class "moving left"` then `vivit classify --model demo clip.mp4`.
    Prints one line describing the clip on stdout (nothing with --quiet).
    """
    if label is not None:
        matches = [c for c in CLASSES if c == label.strip().lower().replace("-", " ").replace("_", " ")]
        if not matches:
            raise UsageError(f"unknown class {label!r}; use one of: {', '.join(repr(c) for c in CLASSES)}")
        label = matches[0]
    width = height = None
    if size is not None:
        try:
            width, height = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise UsageError(f"--size {size!r}: expected WIDTHxHEIGHT, e.g. 320x240") from None
        if not (16 <= width <= 4096 and 16 <= height <= 4096) or width % 2 or height % 2:
            raise UsageError(f"--size {size!r}: width and height must be even numbers from 16 to 4096")
    if fps is not None and not 1 <= fps <= 240:
        raise UsageError(f"--fps {fps:g}: expected 1 to 240")
    if duration is not None and not 0.1 <= duration <= 600:
        raise UsageError(f"--duration {duration:g}: expected 0.1 to 600 seconds")
    ext = output.suffix.lower()
    if ext not in CONTAINERS:
        raise UsageError(f"{output}: unsupported extension {ext or '(none)'}; use one of {', '.join(sorted(CONTAINERS))}")
    if codec is None:
        codec = "vp9" if ext == ".webm" else "h264"
    for name, value, allowed in (("--codec", codec, tuple(CODECS)), ("--shape", shape, SHAPES),
                                 ("--background", background, BACKGROUNDS)):
        if value is not None and value not in allowed:
            raise UsageError(f"{name} {value!r}: use one of {', '.join(allowed)}")

    from vivitcli import synthetic

    spec = synthetic.sample_spec(seed, label=label, width=width, height=height, fps=fps, duration=duration,
                                 codec=codec, shape=shape, background=background)
    if spec.codec not in CONTAINERS[ext]:
        raise UsageError(f"{output}: {spec.codec} cannot go into a {ext} file; "
                         f"use one of {', '.join(CONTAINERS[ext])} or another extension")
    if output.parent and not output.parent.exists():
        raise VivitError(f"{output}: directory {output.parent} does not exist")
    tmp = output.with_name(f".{output.stem}.partial{output.suffix}")
    try:
        synthetic.write_clip(spec, tmp)
        os.replace(tmp, output)
    except OSError as err:
        raise VivitError(f"{output}: cannot write the clip ({err.strerror or err})") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    if not quiet:
        typer.echo(f"{output}  {spec.describe()}")
