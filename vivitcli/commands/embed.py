"""`vivit embed`: one feature vector per video (a thin shell over vivitcli.tasks.EmbedJob)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from vivitcli.commands import options as o


def command(
    inputs: o.Inputs,
    model: o.Model = None,
    out: Annotated[Optional[str], typer.Option(
        "--out", "-o", help="Embeddings file: .npy (float32 (N, D)), .npz, .safetensors, .parquet, .json or "
        ".jsonl; a sidecar FILE.json lists the source path of each row. (default: jsonl on stdout)",
        show_default=False, rich_help_panel=o.OUTPUT_PANEL)] = None,
    pool: Annotated[o.Pool, typer.Option(
        "--pool", help="default: the vector the classifier reads (ViViT: final CLS token; VideoMAE: token mean "
        "+ fc_norm); mean: mean of the final tokens; cls: the CLS token (ViViT only).",
        rich_help_panel=o.OUTPUT_PANEL)] = o.Pool.default,
    window: o.Window = None,
    stride: o.Stride = None,
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
    """Embed videos: one vector per input, rows in input order.

    With --out feats.npy: a float32 (N, D) array, and the sidecar feats.npy.json whose "rows" list gives the
    source path of each array row, in order (failed inputs get no row; they are listed under "errors"). The
    file is written atomically when the run ends, also on Ctrl-C; --resume continues an interrupted run.
    Without --out: one jsonl record per file on stdout (path, dim, pool, embedding, model, frame indices,
    timestamps, error). With --sampling clips the embeddings are averaged over the K views. Exit code 0 when
    all succeeded, 1 when any failed, 2 on usage errors, 130 when interrupted.

    \b
    Examples:
      vivit embed videos/ --out feats.npy
      vivit embed clip.mp4 --pool mean --sampling clips --clips 3
    """
    from vivitcli.commands.batch import WindowHooks, announce_stdin, run_job
    from vivitcli.errors import UsageError
    from vivitcli.tasks import EmbedJob

    announce_stdin(inputs, quiet)
    cluster = o.cluster_options(locals())
    hooks = None
    if window is None and stride is None:
        job = EmbedJob(inputs, model or o.default_model(), pool=pool.value, **o.job_options(locals()))
    else:
        from vivitcli.window_tasks import EmbedWindowsJob

        if cluster is not None:
            raise UsageError("--window with --ray is not supported yet", "run windowed embeddings locally")
        job = EmbedWindowsJob(inputs, model or o.default_model(), window=window, stride=stride, pool=pool.value,
                              **o.job_options(locals()))
        hooks = WindowHooks()
    run_job(job, out=out, fmt=None, resume=resume, force=force, quiet=quiet, debug=debug, cluster=cluster,
            hooks=hooks)
