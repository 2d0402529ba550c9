"""`vivit embed`: one feature vector per video, to an .npy/.npz/.safetensors file or jsonl on stdout."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from vivitcli.commands import options as o


def command(
    inputs: o.Inputs,
    model: o.Model = None,
    out: Annotated[Optional[str], typer.Option(
        "--out", "-o", help="Embeddings file: .npy (float32 (N, D)), .npz, .safetensors, or .jsonl; a sidecar "
        "FILE.json lists the source path of each row. (default: jsonl on stdout)", show_default=False,
        rich_help_panel=o.OUTPUT_PANEL)] = None,
    pool: Annotated[o.Pool, typer.Option(
        "--pool", help="default: the vector the classifier reads (ViViT: final CLS token; VideoMAE: token mean "
        "+ fc_norm); mean: mean of the final tokens; cls: the CLS token (ViViT only).",
        rich_help_panel=o.OUTPUT_PANEL)] = o.Pool.default,
    resume: o.Resume = False,
    sampling: o.SamplingOpt = None,
    frames: o.Frames = None,
    frame_step: o.FrameStep = 4,
    clips: o.Clips = None,
    start: o.Start = None,
    end: o.End = None,
    seed: o.Seed = None,
    ext: o.Ext = None,
    workers: o.Workers = None,
    device: o.Device = "auto",
    dtype: o.Dtype = "auto",
    attn: o.Attn = "sdpa",
    batch_size: o.BatchSize = 4,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Embed videos: one vector per input, rows in input order.

    With --out feats.npy: a float32 (N, D) array, and the sidecar feats.npy.json whose "rows" list gives the
    source path of each array row, in order (failed inputs get no row; they are listed under "errors"). The file is written atomically when the run
    ends, also on Ctrl-C; --resume continues an interrupted run. Without --out: one jsonl record per file on
    stdout (path, dim, pool, embedding, model, frame indices, timestamps, error). With --sampling clips the
    embeddings are averaged over the K views. Exit code 0 when all succeeded, 1 when any failed, 2 on usage
    errors, 130 when interrupted.

    \b
    Examples:
      vivit embed videos/ --out feats.npy
      vivit embed clip.mp4 --pool mean --sampling clips --clips 3
    """
    from vivitcli.commands import _common

    opts = _common.RunOptions(
        task="embed", inputs=inputs, ext=ext, model=model, device=device, dtype=dtype, attn=attn,
        batch_size=batch_size, workers=workers, sampling=sampling.value if sampling else None, frames=frames,
        frame_step=frame_step, clips=clips, start=start, end=end, seed=seed, out=out, fmt=None, resume=resume,
        quiet=quiet, debug=debug, extra={"pool": pool.value},
    )
    _common.run(opts, _record, _prepare)


def _prepare(model, opts):
    import torch

    pool = opts.extra["pool"]
    device, dtype = model.device, model.dtype
    hidden = (getattr(model, "config", None) or {}).get("hidden_size")
    if hidden and hasattr(model, "pool"):
        # A pool the model lacks (VideoMAE has no CLS) is refused now, before any output file is touched.
        with torch.inference_mode():
            model.pool(torch.zeros(1, 2, hidden, device=device, dtype=dtype), pool)

    def compute(batch):
        return model.embed(batch.to(device=device, dtype=dtype), pool=pool)

    meta = {"model": model.name, "pool": pool, "resume_keys": {"model": model.name, "pool": pool}}
    return compute, meta


def _record(res, meta) -> dict:
    from vivitcli.commands._common import info_fields
    from vivitcli.writers import make_record

    if res.error is not None:
        return make_record("embed", path=res.path, model=meta["model"], pool=meta["pool"], error=res.error)
    return make_record("embed", path=res.path, dim=int(res.output.shape[-1]), pool=meta["pool"],
                       embedding=res.output, model=meta["model"], **info_fields(res.info))
