"""`vivit classify`: top-k labels for many videos per call."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from vivitcli.commands import options as o


def command(
    inputs: o.Inputs,
    model: o.Model = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels per video.",
                                       rich_help_panel=o.OUTPUT_PANEL)] = 5,
    fmt: Annotated[Optional[o.OutputFormat], typer.Option(
        "--format", "-f", help="Output format. (default: from --out's suffix; else table on a terminal, jsonl "
        "when piped)", show_default=False, rich_help_panel=o.OUTPUT_PANEL)] = None,
    out: Annotated[Optional[str], typer.Option(
        "--out", "-o", help="Write results to this file instead of stdout (.jsonl, .json, .csv, .txt); "
        "needed for --resume.", show_default=False, rich_help_panel=o.OUTPUT_PANEL)] = None,
    labels: Annotated[Optional[str], typer.Option(
        "--labels", help="Class names, one per line in index order (replaces the checkpoint's).",
        show_default=False, rich_help_panel=o.OUTPUT_PANEL)] = None,
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
      find . -name '*.mp4' | vivit classify - --format csv
    """
    from vivitcli.commands import _common

    opts = _common.RunOptions(
        task="classify", inputs=inputs, ext=ext, model=model, device=device, dtype=dtype, attn=attn,
        batch_size=batch_size, workers=workers, sampling=sampling.value if sampling else None, frames=frames,
        frame_step=frame_step, clips=clips, start=start, end=end, seed=seed, out=out,
        fmt=fmt.value if fmt else None, resume=resume, quiet=quiet, debug=debug,
        extra={"top_k": top_k, "labels_file": labels},
    )
    _common.run(opts, _record, _prepare)


def _prepare(model, opts):
    from vivitcli.commands._common import read_labels_file

    names = list(model.labels)
    source = model.label_source
    if opts.extra["labels_file"]:
        names = read_labels_file(opts.extra["labels_file"], len(names))
        source = f"file:{opts.extra['labels_file']}"
    device, dtype = model.device, model.dtype

    def compute(batch):
        return model(batch.to(device=device, dtype=dtype))

    meta = {"model": model.name, "labels": names, "label_source": source, "top_k": opts.extra["top_k"],
            "resume_keys": {"model": model.name}}
    return compute, meta


def top_labels(logits, names: list[str], k: int) -> list[dict]:
    """Softmax over (K,) logits, then the k best as [{label, score, index}] (ties: lower index first)."""
    import numpy as np

    logits = np.asarray(logits, dtype=np.float64)
    z = np.exp(logits - logits.max())
    probs = z / z.sum()
    order = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return [{"label": names[i] if i < len(names) else f"LABEL_{i}", "score": float(probs[i]), "index": int(i)}
            for i in order]


def _record(res, meta) -> dict:
    from vivitcli.commands._common import info_fields
    from vivitcli.writers import make_record

    if res.error is not None:
        return make_record("classify", path=res.path, labels=[], model=meta["model"],
                           label_source=meta["label_source"], error=res.error)
    return make_record("classify", path=res.path, labels=top_labels(res.output, meta["labels"], meta["top_k"]),
                       model=meta["model"], label_source=meta["label_source"], **info_fields(res.info))
