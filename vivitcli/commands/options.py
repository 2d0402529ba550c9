"""Option types shared by several commands, declared once (typer `Annotated` style)."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

DEFAULT_MODEL = "google/vivit-b-16x2-kinetics400"


def default_model() -> str:
    return os.environ.get("VIVIT_MODEL") or DEFAULT_MODEL


Model = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help=f"Hub id, alias (see `vivit models`) or local directory. [env: VIVIT_MODEL; default: {DEFAULT_MODEL}]",
        show_default=False,
    ),
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
Dtype = Annotated[str, typer.Option("--dtype", help="auto, float32, float16 or bfloat16.")]
Attn = Annotated[str, typer.Option("--attn", help="Attention implementation: sdpa or eager (the reference).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no warnings on stderr.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors. [env: VIVIT_DEBUG=1]")]
