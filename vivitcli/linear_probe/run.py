"""train(DATA, model) and evaluate(DATA, probe): the library behind `vivit probe train|eval`.

    import vivitcli.linear_probe
    result = vivitcli.linear_probe.train("clips/", model="demo", out="my-probe/")
    print(result.metrics["accuracy"], result.head.weight.shape)
    report = vivitcli.linear_probe.evaluate("test-clips/", model="my-probe/")

Nothing here prints: progress goes to an optional `progress` object (`start(total)`, then
`clip(path, error, cached)` per clip), unreadable clips come back in `errors` (path -> reason) and are left
out of every count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vivitcli.errors import UsageError
from vivitcli.linear_probe import dataset, fit, metrics

_USE_DEFAULT = object()


@dataclass
class TrainResult:
    """A fitted probe: the head (on raw embeddings), class names, validation metrics of the chosen strength
    (head fit on the training split only), the strength sweep, class counts, skipped clips, cache use,
    the in-memory ProbeModel and the folder it was saved to (None without `out`)."""

    head: fit.Head
    classes: list[str]
    metrics: dict
    sweep: list[dict]
    counts: dict
    errors: dict[str, str]
    stats: dict
    model: object = None
    model_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"classes": self.classes, "l2": self.head.l2, "metrics": self.metrics, "counts": self.counts,
                "sweep": self.sweep, "errors": [{"path": p, "error": e} for p, e in self.errors.items()],
                "stats": self.stats, "model_dir": None if self.model_dir is None else str(self.model_dir),
                "notes": self.notes}


@dataclass
class EvalResult:
    """Metrics of a probe on a labelled folder, and the clips that could not be read."""

    metrics: dict
    errors: dict[str, str]
    stats: dict
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "errors": [{"path": p, "error": e} for p, e in self.errors.items()],
                "stats": self.stats, "notes": self.notes}


def _sampling(sampling, frames):
    from vivitcli.tasks import Sampling

    if sampling is None:
        s = Sampling()
    elif isinstance(sampling, Sampling):
        s = Sampling(**{k: getattr(sampling, k) for k in sampling.__dataclass_fields__})
    elif isinstance(sampling, str):
        s = Sampling(sampling=sampling)
    elif isinstance(sampling, dict):
        s = Sampling(**sampling)
    else:
        raise UsageError(f"sampling must be a vivitcli.Sampling, a dict or a name, not {type(sampling).__name__}")
    if frames is not None:
        s.frames = frames
    s.check()
    return s


def _cache_dir(cache):
    from vivitcli.linear_probe.cache import default_cache_dir

    if cache is _USE_DEFAULT or cache is True:
        return default_cache_dir()
    return None if cache is None or cache is False else Path(cache)


def train(data, model, *, out=None, pool: str = "default", sampling=None, frames: int | None = None,
          balanced: bool = False, val_fraction: float = 0.2, split_seed: int = 0, classes: list[str] | None = None,
          standalone: bool = False, cache=_USE_DEFAULT, batch_size: int = 4, workers: int | None = None,
          device: str = "auto", dtype: str = "auto", attn: str = "sdpa", ext=None,
          progress=None) -> TrainResult:
    """Embed the labelled clips under `data` with the backbone `model`, fit a linear probe, report metrics.

    data: DATA/<class>/ clips (DATA/labels.txt may fix the order), or DATA/train/<class> + DATA/val/<class>;
    else a stratified split with `val_fraction` of each class (seeded by split_seed) validates.
    model: a backbone name / alias / hub id / directory, or a loaded VideoModel. pool, sampling (a
    vivitcli.Sampling, a dict of its fields or a sampling name) and frames: how clips are embedded, as in
    `vivit embed`. balanced: weight classes inversely to their size. out: write a probe model folder there
    (standalone: with a copy of the backbone). cache: embeddings cache folder (default: the user cache,
    None: off). Raises UsageError for unusable folders (no classes, one class, a class with < 2 clips).
    """
    from vivitcli.inputs import parse_extensions
    from vivitcli.linear_probe.embeddings import embed_clips
    from vivitcli.linear_probe.model import (ProbeModel, backbone_reference, is_probe_dir, prepare_out_dir,
                                             save_probe)
    from vivitcli.tasks import POOLS, load

    if pool not in POOLS:
        raise UsageError(f"unknown pool {pool!r} (use {', '.join(POOLS)})")
    samp = _sampling(sampling, frames)
    clips = dataset.scan(data, classes=classes, exts=parse_extensions(ext))
    dataset.check_counts(clips, list(range(len(clips.paths))))
    if out is not None:
        prepare_out_dir(out)
    if isinstance(model, (str, Path)) and is_probe_dir(model):
        raise UsageError(f"{model}: is a probe model", "train on its backbone instead")
    backbone = load(model, device=device, dtype=dtype, attn=attn)
    reference = backbone_reference(backbone, model if isinstance(model, (str, Path)) else None)

    got = embed_clips(clips.paths, backbone, pool=pool, sampling=samp, batch_size=batch_size, workers=workers,
                      cache_dir=_cache_dir(cache), progress=progress)
    keep = [i for i, p in enumerate(clips.paths) if p in got.vectors]
    train_idx, val_idx = dataset.split(clips, keep, val_fraction=val_fraction, seed=split_seed)
    x = np.stack([got.vectors[p] for p in clips.paths if p in got.vectors]).astype(np.float32)
    row = {i: r for r, i in enumerate(keep)}
    y = np.asarray(clips.targets)
    xt, yt = x[[row[i] for i in train_idx]], y[train_idx]
    xv, yv = x[[row[i] for i in val_idx]], y[val_idx]
    k = len(clips.classes)

    weights = fit.class_weights(yt, k) if balanced else None
    sw_train = weights[yt] if balanced else None
    sw_val = fit.class_weights(yv, k)[yv] if balanced else None
    l2, history = fit.sweep(xt, yt, xv, yv, k, sample_weight=sw_train, val_weight=sw_val)
    val_head = fit.fit(xt, yt, k, l2, sample_weight=sw_train)
    report = metrics.classification_report(yv, val_head.predict(xv), clips.classes)
    # CLIP's recipe: the validation split goes back into the training set for the final fit.
    x_all, y_all = np.concatenate([xt, xv]), np.concatenate([yt, yv])
    head = fit.fit(x_all, y_all, k, l2, sample_weight=fit.class_weights(y_all, k)[y_all] if balanced else None)

    counts = {"train": metrics.imbalance(clips.counts(train_idx), clips.classes),
              "val": metrics.imbalance(clips.counts(val_idx), clips.classes)}
    notes = []
    ratio = metrics.imbalance(clips.counts(keep), clips.classes)["ratio"]
    if ratio is not None and ratio >= 1.5:
        notes.append(f"classes are imbalanced: the largest has {ratio:.1f}x the clips of the smallest"
                     + ("; weighted by --balanced" if balanced else "; --balanced weights them equally"))
    stats = {"clips": len(clips.paths), "used": len(keep), "failed": len(got.errors),
             "from_cache": got.from_cache, "embedded": got.computed}
    sampling_doc = samp.settings()
    sampling_doc["frames"] = samp.frames or backbone.num_frames
    info = {"l2": l2, "balanced": balanced, "val_metrics": report, "counts": counts,
            "split": "folders" if clips.has_splits else {"val_fraction": val_fraction, "seed": split_seed}}
    probe = ProbeModel(backbone, head.weight, head.bias, clips.classes, pool=pool, sampling=sampling_doc,
                       name=None if out is None else str(out), path=None if out is None else Path(out), info=info)
    model_dir = None
    if out is not None:
        model_dir = save_probe(out, head_weight=head.weight, head_bias=head.bias, labels=clips.classes,
                               backbone=reference, pool=pool, sampling=sampling_doc, info=info,
                               backbone_model=backbone, standalone=standalone)
    return TrainResult(head=head, classes=clips.classes, metrics=report, sweep=history, counts=counts,
                       errors={p: got.errors[p] for p in clips.paths if p in got.errors}, stats=stats, model=probe,
                       model_dir=model_dir, notes=notes)


def evaluate(data, model, *, clips: int | None = None, sampling=None, cache=_USE_DEFAULT, batch_size: int = 4,
             workers: int | None = None, device: str = "auto", dtype: str = "auto", attn: str = "sdpa", ext=None,
             progress=None) -> EvalResult:
    """Accuracy, per-class precision/recall and the confusion matrix of a probe model on DATA/<class>/ clips.

    model: a probe folder or a loaded ProbeModel (any classifier whose labels name the class folders works).
    Clips are embedded as the probe was trained (its pool, sampling, frames) unless `sampling` is given;
    clips=K averages K views (as `vivit classify --clips K`: the head is linear, so averaging embeddings
    averages logits).
    """
    from vivitcli.inputs import parse_extensions
    from vivitcli.linear_probe.embeddings import embed_clips
    from vivitcli.tasks import load

    found = dataset.scan(data, exts=parse_extensions(ext), min_classes=1)
    probe = load(model, device=device, dtype=dtype, attn=attn)
    labels = list(probe.labels)
    unknown = [c for c in found.classes if c not in labels]
    if unknown:
        raise UsageError(f"{os.path.join(found.root, unknown[0])}: class {unknown[0]!r} is not one of the "
                         f"model's labels", f"{probe.name} knows: {', '.join(labels[:10])}"
                         f"{' ...' if len(labels) > 10 else ''}")
    stored = dict(getattr(probe, "sampling", None) or {})
    if sampling is None:
        sampling = {k: v for k, v in stored.items() if k in ("sampling", "frames", "frame_step", "start", "end",
                                                             "seed", "clips")}
        if clips is not None:
            sampling["sampling"] = "clips" if clips > 1 else "uniform"
            sampling["clips"] = clips
    elif clips is not None:
        raise UsageError("give either clips or sampling, not both")
    samp = _sampling(sampling, None)
    got = embed_clips(found.paths, probe, pool="default", sampling=samp, batch_size=batch_size, workers=workers,
                      cache_dir=_cache_dir(cache), progress=progress)
    keep = [i for i, p in enumerate(found.paths) if p in got.vectors]
    if not keep:
        raise UsageError(f"{found.root}: none of the {len(found.paths)} clips could be read")
    x = np.stack([got.vectors[found.paths[i]] for i in keep])
    y_true = np.asarray([labels.index(found.classes[found.targets[i]]) for i in keep])
    y_pred = _predict(probe, x)
    report = metrics.classification_report(y_true, y_pred, labels)
    stats = {"clips": len(found.paths), "used": len(keep), "failed": len(got.errors),
             "from_cache": got.from_cache, "embedded": got.computed}
    return EvalResult(metrics=report, errors={p: got.errors[p] for p in found.paths if p in got.errors},
                      stats=stats)


def _predict(probe, x: np.ndarray) -> np.ndarray:
    import torch

    head = probe.head
    with torch.no_grad():
        logits = head(torch.from_numpy(x).to(device=head.weight.device, dtype=head.weight.dtype))
    return logits.float().argmax(dim=1).cpu().numpy()
