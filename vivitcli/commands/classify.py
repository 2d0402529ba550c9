"""`vivit classify`: top-k labels for many videos per call (a thin shell over vivitcli.tasks.ClassifyJob)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from vivitcli.commands import options as o


def command(
    inputs: o.Inputs,
    model: o.Model = None,
    top_k: o.TopK = 5,
    fmt: Annotated[Optional[o.OutputFormat], typer.Option(
        "--format", "-f", help="Output format. (default: from --out's suffix; else table on a terminal, jsonl "
        "when piped)", show_default=False, rich_help_panel=o.OUTPUT_PANEL)] = None,
    out: Annotated[Optional[str], typer.Option(
        "--out", "-o", help="Write results to this file instead of stdout (.jsonl, .json, .csv, .txt, .parquet); "
        "needed for --resume.", show_default=False, rich_help_panel=o.OUTPUT_PANEL)] = None,
    labels: o.Labels = None,
    resume: o.Resume = False,
    force: o.Force = False,
    sampling: o.SamplingOpt = None,
    frames: o.Frames = None,
    frame_step: o.FrameStep = 4,
    clips: o.Clips = None,
    crops: o.Crops = 1,
    start: o.Start = None,
    end: o.End = None,
    seed: o.Seed = None,
    ext: o.Ext = None,
    null: o.NullSeparated = False,
    max_pixels: o.MaxPixels = None,
    allow_images: o.AllowImages = False,
    workers: o.Workers = None,
    device: o.Device = "auto",
    dtype: o.Dtype = "auto",
    attn: o.Attn = o.AttnImpl.sdpa,
    backend: o.BackendOpt = o.Backend.torch,
    batch_size: o.BatchSize = 4,
    ray: o.Ray = None,
    concurrency: o.Concurrency = 1,
    decoders: o.Decoders = None,
    gpus_per_worker: o.GpusPerWorker = 0.0,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Label videos: the top-k classes of each input, one record per file.

    A record holds the path, labels [{label, score, index}] (softmax scores), the model, where the class names
    came from, the frame indices and timestamps used, whether frames are approximate (--sampling keyframes), and
    `error` for a file that failed. With --sampling clips the logits are averaged over the K views before the
    softmax. A file that fails is reported on stderr and the run goes on; exit code 0 when all succeeded,
    1 when any failed, 2 on usage errors, 130 when interrupted.

    \b
    Examples:
      vivit classify clip.mp4
      vivit classify videos/ -o labels.jsonl --resume
      find . -name '*.mp4' -print0 | vivit classify -0 - --format csv
    """
    from vivitcli.commands.batch import announce_stdin, run_job
    from vivitcli.tasks import ClassifyJob

    announce_stdin(inputs, quiet)
    job = ClassifyJob(inputs, model or o.default_model(), top_k=top_k, labels=labels,
                      **o.job_options(locals()))
    run_job(job, out=out, fmt=fmt.value if fmt else None, resume=resume, force=force, quiet=quiet, debug=debug,
            cluster=o.cluster_options(locals()))
