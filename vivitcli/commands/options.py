"""Option types shared by several commands, declared once (typer `Annotated` style).

Stdlib + typer only: `vivit --help` and shell completion import this module.
"""

from __future__ import annotations

import os
from enum import Enum
from typing import Annotated, List, Optional

import typer

from vivitcli.models.device import DEVICE_NAMES, DTYPE_NAMES
from vivitcli.models.names import DEFAULT_MODEL


def default_model() -> str:
    return os.environ.get("VIVIT_MODEL") or DEFAULT_MODEL


class Sampling(str, Enum):
    uniform = "uniform"
    stride = "stride"
    clips = "clips"
    keyframes = "keyframes"


class Pool(str, Enum):
    default = "default"
    mean = "mean"
    cls = "cls"


class OutputFormat(str, Enum):
    table = "table"
    jsonl = "jsonl"
    json = "json"
    csv = "csv"


MODEL_PANEL = "Model"
CLUSTER_PANEL = "Cluster (Ray)"
SAMPLING_PANEL = "Frame sampling"
INPUT_PANEL = "Inputs"
OUTPUT_PANEL = "Output"

Model = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help=f"Hub id, alias (see `vivit models`) or local directory. (env: VIVIT_MODEL; default: {DEFAULT_MODEL})",
        show_default=False,
        rich_help_panel=MODEL_PANEL,
    ),
]
def words(values):
    """A Typer autocompletion callback offering `values`; completions/generate.py writes them into the static
    scripts, so each option's values are listed once, where the option is declared."""
    values = list(values)
    return lambda ctx, args, incomplete: [v for v in values if v.startswith(incomplete)]


# Device names a shell offers on TAB (cuda:N is a pattern, not a word to complete).
DEVICE_WORDS = tuple(name for name in DEVICE_NAMES if ":" not in name)
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.", rich_help_panel=MODEL_PANEL,
                                     autocompletion=words(DEVICE_WORDS))]
Dtype = Annotated[
    str, typer.Option("--dtype", help=f"auto, {', '.join(DTYPE_NAMES)} (also fp32, fp16, bf16).",
                      rich_help_panel=MODEL_PANEL, autocompletion=words(["auto", *DTYPE_NAMES]))
]


class AttnImpl(str, Enum):
    sdpa = "sdpa"
    eager = "eager"


class Backend(str, Enum):
    torch = "torch"
    openvino = "openvino"
    auto = "auto"


Attn = Annotated[
    AttnImpl,
    typer.Option("--attn", help="Attention implementation: sdpa or eager (the reference).", rich_help_panel=MODEL_PANEL),
]
BackendOpt = Annotated[
    Backend,
    typer.Option("--backend", help="torch (the reference), openvino (CPU; needs the openvino extra), or auto "
                 "(openvino on a CPU when installed, else torch).", rich_help_panel=MODEL_PANEL),
]
BatchSize = Annotated[
    int,
    typer.Option("--batch-size", "-b", min=1, help="Clips per forward pass (batched across files).",
                 rich_help_panel=MODEL_PANEL),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no warnings on stderr.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors. (or env VIVIT_DEBUG=1)")]

Inputs = Annotated[
    List[str],
    typer.Argument(
        help="Video files, folders (searched recursively, sorted), or - to read paths from stdin, one per line.",
        show_default=False,
    ),
]
Ext = Annotated[
    Optional[List[str]],
    typer.Option(
        "--ext",
        help="Extensions to pick up when walking folders, comma-separated (replaces the default set: "
        "3gp,avi,flv,m2ts,m4v,mkv,mov,mp4,mpeg,mpg,mts,ogv,ts,webm,wmv).",
        show_default=False,
        rich_help_panel=INPUT_PANEL,
    ),
]
NullSeparated = Annotated[
    bool,
    typer.Option("--null", "-0", help="Paths on stdin are separated by NUL bytes (find -print0).",
                 rich_help_panel=INPUT_PANEL),
]
MaxPixels = Annotated[
    Optional[int],
    typer.Option("--max-pixels", min=1, help="Refuse videos whose frames have more pixels than this (width x "
                 "height), before decoding them. (default: 8192x8192)", show_default=False,
                 rich_help_panel=INPUT_PANEL),
]
AllowImages = Annotated[
    bool,
    typer.Option("--allow-images", help="Label still pictures (PNG, JPEG, ...) as one-frame videos instead of "
                 "refusing them.", rich_help_panel=INPUT_PANEL),
]
Workers = Annotated[
    Optional[int],
    typer.Option("--workers", min=1, help="Decoding threads (they run ahead of the model). (default: min(4, CPUs))",
                 show_default=False, rich_help_panel=INPUT_PANEL),
]

SamplingOpt = Annotated[
    Optional[Sampling],
    typer.Option(
        "--sampling",
        help="uniform: frames spread over the video; stride: every --frame-step frames around the middle; "
        "clips: --clips uniform windows, outputs averaged over them; keyframes: keyframes only, fast, "
        "marked approximate. (default: uniform, or clips when --clips > 1)",
        show_default=False,
        rich_help_panel=SAMPLING_PANEL,
    ),
]
Frames = Annotated[
    Optional[int],
    typer.Option("--frames", min=1, help="Frames per clip. (default: the model's)", show_default=False,
                 rich_help_panel=SAMPLING_PANEL),
]
FrameStep = Annotated[
    int, typer.Option("--frame-step", min=1, help="Frame step for --sampling stride.", rich_help_panel=SAMPLING_PANEL)
]
Clips = Annotated[
    Optional[int],
    typer.Option("--clips", min=1, help="Views for --sampling clips; the outputs are averaged over them. (default: 3)",
                 show_default=False, rich_help_panel=SAMPLING_PANEL),
]
WINDOW_PANEL = "Windows"
Window = Annotated[
    Optional[float],
    typer.Option("--window", "-w", min=0.001, help="Window length in seconds. (default: the span the model's "
                 "frames cover at its usual sampling: frames x step (ViViT 2, VideoMAE 4) at 30 fps, at least 2 s; "
                 "2.133 s for ViViT-B and VideoMAE-B)", show_default=False, rich_help_panel=WINDOW_PANEL),
]
Stride = Annotated[
    Optional[float],
    typer.Option("--stride", min=0.001, help="Seconds from one window's start to the next. (default: window/2)",
                 show_default=False, rich_help_panel=WINDOW_PANEL),
]
Crops = Annotated[
    int,
    typer.Option("--crops", min=1, max=3, help="Spatial views per clip: 1 (the checkpoint's centre crop) or 3 "
                 "(left/centre/right, or top/middle/bottom, after the resize; outputs averaged with --clips').",
                 rich_help_panel=SAMPLING_PANEL),
]
Start = Annotated[
    Optional[float],
    typer.Option("--start", min=0, help="Sample from this time on (seconds).", show_default=False,
                 rich_help_panel=SAMPLING_PANEL),
]
End = Annotated[
    Optional[float],
    typer.Option("--end", min=0, help="Sample up to this time (seconds).", show_default=False,
                 rich_help_panel=SAMPLING_PANEL),
]
Seed = Annotated[
    Optional[int],
    typer.Option("--seed", help="Seed for randomised sampling (jittered windows).", show_default=False,
                 rich_help_panel=SAMPLING_PANEL),
]
Ray = Annotated[
    Optional[str],
    typer.Option("--ray", help="Run on Ray: local (a private instance on this machine), auto (the running "
                 "cluster, else a new local one) or a cluster address (ray://host:10001). Needs the ray extra.",
                 show_default=False, rich_help_panel=CLUSTER_PANEL),
]
Concurrency = Annotated[
    int, typer.Option("--concurrency", min=1, help="Model actors (each loads the model once).",
                      rich_help_panel=CLUSTER_PANEL),
]
Decoders = Annotated[
    Optional[int],
    typer.Option("--decoders", min=1, help="Decoding tasks running at once (CPU). (default: half the CPUs)",
                 show_default=False, rich_help_panel=CLUSTER_PANEL),
]
GpusPerWorker = Annotated[
    float, typer.Option("--gpus-per-worker", min=0, help="GPUs each model actor holds (0: CPU actors).",
                        rich_help_panel=CLUSTER_PANEL),
]
Resume = Annotated[
    bool,
    typer.Option("--resume", help="Continue an interrupted run into the same --out file, skipping finished inputs.",
                 rich_help_panel=OUTPUT_PANEL),
]
Force = Annotated[
    bool,
    typer.Option("--force", help="Replace an existing --out file.", rich_help_panel=OUTPUT_PANEL),
]
Labels = Annotated[
    Optional[str],
    typer.Option("--labels", help="Class names replacing the checkpoint's: kinetics400, ssv2, a file with one name "
                 "per line in index order, or JSON (a list, or {index: name}).", show_default=False,
                 rich_help_panel=OUTPUT_PANEL),
]
TopK = Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels per video.", rich_help_panel=OUTPUT_PANEL)]


def job_options(values: dict) -> dict:
    """The vivitcli.tasks.Job keyword arguments from a command's parameters (passed as `locals()`), so every
    command that runs a batch job maps the shared options the same way."""
    from vivitcli.tasks import Sampling

    sampling = values.get("sampling")
    return {
        "sampling": Sampling(sampling=sampling.value if sampling else None, frames=values.get("frames"),
                             frame_step=values.get("frame_step", 4), clips=values.get("clips"),
                             start=values.get("start"), end=values.get("end"), seed=values.get("seed"),
                             max_pixels=values.get("max_pixels"), crops=values.get("crops", 1),
                             allow_images=bool(values.get("allow_images"))),
        "batch_size": values.get("batch_size", 4), "workers": values.get("workers"),
        "device": values.get("device", "auto"), "dtype": values.get("dtype", "auto"),
        "attn": getattr(values.get("attn"), "value", values.get("attn") or "sdpa"),
        "backend": getattr(values.get("backend"), "value", values.get("backend") or "torch"),
        "ext": values.get("ext"), "null_separated": bool(values.get("null")),
    }


def cluster_options(values: dict) -> dict | None:
    """--ray and its companions as keyword arguments of commands.batch.run_job (None: a local run)."""
    if values.get("ray") is None:
        return None
    return {"address": values["ray"], "concurrency": values.get("concurrency", 1),
            "decoders": values.get("decoders"), "gpus_per_worker": values.get("gpus_per_worker", 0.0)}
