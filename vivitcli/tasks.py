"""The batch job as a library: inputs -> decode-ahead -> batched model -> typed records, in input order.

    import vivitcli
    for rec in vivitcli.classify(["videos/", "extra.mp4"], model="demo", top_k=3):
        print(rec.path, rec.error or rec.labels[0].label)
    vectors = [rec.embedding for rec in vivitcli.embed(paths, model=model, pool="mean") if rec.error is None]

The CLI, Ray workers, probes and tests all call this. A job is built in three steps so a caller can act
between them: the constructor checks the options and collects the input paths (cheap, no torch); `load()`
loads the model (or takes a loaded one); `run(skip=...)` yields one record per input. A file that fails is a
record with `error` set; the iterator never raises for one bad file. Nothing here prints, exits or looks at
a terminal: outputs, progress and exit codes belong to the caller (vivitcli/commands, vivitcli/output).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from vivitcli.errors import UsageError
from vivitcli.records import ClassifyRecord, EmbedRecord, Label

SAMPLINGS = ("uniform", "stride", "clips", "keyframes")
POOLS = ("default", "mean", "cls")
ATTNS = ("sdpa", "eager")
MAX_VIEWS = 64  # --clips beyond this is a typo, not a sampling plan: each view is a full forward pass
MAX_SEED = 2**32 - 1  # numpy's SeedSequence-free generators take 32-bit seeds


@dataclass
class Sampling:
    """Which frames of each video a model sees.

    sampling: uniform (spread over the video) | stride (every frame_step frames around the middle) |
    clips (`clips` uniform windows, outputs averaged) | keyframes (keyframes only: fast, approximate);
    None = uniform, or clips when clips > 1. frames: frames per clip (None = the model's). start/end: seconds.
    seed: randomised placement (stride). max_pixels: refuse frames larger than this before decoding.
    allow_images: read a still picture (PNG, JPEG, ...) as a one-frame video instead of refusing it.
    crops: 1 (the checkpoint's centre crop) or 3 (three views along the long side, outputs averaged with the
    clips': the papers' multi-view evaluation).
    """

    sampling: str | None = None
    frames: int | None = None
    frame_step: int = 4
    clips: int | None = None
    start: float | None = None
    end: float | None = None
    seed: int | None = None
    max_pixels: int | None = None
    allow_images: bool = False
    crops: int = 1

    def resolved(self) -> str:
        return self.sampling or ("clips" if (self.clips or 1) > 1 else "uniform")

    def check(self) -> None:
        """UsageError for contradictions and out-of-range values, before anything is loaded."""
        sampling = self.resolved()
        if sampling not in SAMPLINGS:
            raise UsageError(f"unknown sampling {sampling!r} (use {', '.join(SAMPLINGS)})")
        if self.clips is not None and self.clips > 1 and sampling != "clips":
            raise UsageError(f"--clips {self.clips} needs --sampling clips (got --sampling {sampling})")
        if self.clips is not None and not 1 <= self.clips <= MAX_VIEWS:
            raise UsageError(f"--clips {self.clips} is out of range (1..{MAX_VIEWS})")
        if self.frames is not None and not 1 <= self.frames <= 4096:
            raise UsageError(f"--frames {self.frames} is out of range (1..4096)")
        if self.crops not in (1, 3):
            raise UsageError(f"--crops {self.crops}: use 1 (centre crop) or 3 (three views along the long side)")
        if self.frame_step < 1:
            raise UsageError(f"--frame-step {self.frame_step} must be at least 1")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed {self.seed} is out of range (0..{MAX_SEED})")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not (value >= 0 and value < float("inf")):
                raise UsageError(f"--{name} {value} must be a finite number of seconds >= 0")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError(f"--end {self.end} must be after --start {self.start}")

    def read_kwargs(self) -> dict:
        """Keyword arguments of read_clip (frames excluded: they depend on the model)."""
        kw: dict[str, Any] = {"sampling": self.resolved(), "frame_step": self.frame_step, "start": self.start,
                              "end": self.end, "seed": self.seed}
        if kw["sampling"] == "clips":
            kw["clips"] = self.clips or 3
        if self.max_pixels is not None:
            kw["max_pixels"] = self.max_pixels
        if self.allow_images:
            kw["allow_images"] = True
        if self.crops != 1:
            kw["crops"] = self.crops
        return kw

    def settings(self) -> dict:
        """What shapes results, for --resume checks (max_pixels only decides which files fail)."""
        out = asdict(self)
        out.pop("max_pixels")  # both decide only which files fail, not what a result is
        out.pop("allow_images")
        out["sampling"] = self.resolved()
        if out["sampling"] == "clips":
            out["clips"] = self.clips or 3
        return out


def load(model=None, *, device="auto", dtype="auto", attn: str = "sdpa", backend: str = "torch"):
    """A loaded model: `model` itself when it already is one, else load_model(model or the default name)."""
    if model is not None and not isinstance(model, (str, Path)):
        return model
    from vivitcli.models.hub import load_model
    from vivitcli.models.names import DEFAULT_MODEL

    return load_model(str(model) if model is not None else DEFAULT_MODEL, device=device, dtype=dtype, attn=attn,
                      backend=backend)


class Job:
    """One batch job over many inputs. Subclasses set `task`, `prepare()`, `compute()` and `record()`."""

    task = ""

    def __init__(self, inputs: str | Path | Iterable[str | Path], model=None, *, sampling: Sampling | None = None,
                 batch_size: int = 4, workers: int | None = None, device: str = "auto", dtype: str = "auto",
                 attn: str = "sdpa", backend: str = "torch", ext: Iterable[str] | None = None, stdin=None,
                 null_separated: bool = False):
        from vivitcli.inputs import collect_paths, parse_extensions
        from vivitcli.models.backends import check_backend
        from vivitcli.models.device import canonical_dtype, check_device_name

        self.sampling = sampling or Sampling()
        self.sampling.check()
        if batch_size < 1:
            raise UsageError(f"--batch-size {batch_size} must be at least 1")
        if workers is not None and workers < 1:
            raise UsageError(f"--workers {workers} must be at least 1")
        if attn not in ATTNS:
            raise UsageError(f"unknown attention {attn!r} (use {', '.join(ATTNS)})")
        backend = check_backend(backend)  # openvino not installed: one line before anything loads
        self.device, self.dtype = check_device_name(device), canonical_dtype(dtype)
        self.attn, self.backend = attn, backend
        self.batch_size, self.workers = batch_size, workers
        if isinstance(inputs, (str, Path)):
            inputs = [inputs]
        # inputs=None: a job that runs records for inputs someone else lists and decodes (a Ray actor).
        self.paths: list[str] = [] if inputs is None else collect_paths(
            [str(p) for p in inputs], parse_extensions(ext), stdin=stdin, null_separated=null_separated)
        self._model_spec = model
        self.model = None if model is None or isinstance(model, (str, Path)) else model
        self._prepared = False
        self.options = {"sampling": self.sampling, "batch_size": batch_size, "workers": workers,
                        "device": device, "dtype": dtype, "attn": attn, "backend": backend}

    # ---- steps ------------------------------------------------------------------------------------------
    def load(self):
        """Load the model (once) and check the task's options against it; returns the model."""
        if self.model is None:
            self.model = load(self._model_spec, device=self.device, dtype=self.dtype, attn=self.attn,
                              backend=self.backend)
        if not self._prepared:
            self.prepare()
            self._prepared = True
        return self.model

    @property
    def dtype_name(self) -> str:
        """What the loaded model computes in ("bfloat16", ...): `--dtype auto` depends on the machine."""
        return str(self.load().dtype).removeprefix("torch.")

    @property
    def settings(self) -> dict:
        """The options that shape this job's results (model included): a resumed run must match them."""
        model = self.load()
        return {"task": self.task, "model": model.name, "dtype": self.dtype_name, "backend": self.backend,
                "frames": self.sampling.frames or model.num_frames,
                **{k: v for k, v in self.sampling.settings().items() if k != "frames"}, **self.task_settings()}

    def spec(self):
        """The job without its inputs, to rebuild it elsewhere (a Ray actor): task, model name, options."""
        import os

        from vivitcli.distributed.ray import JobSpec

        if not isinstance(self._model_spec, (str, Path)):
            raise UsageError("a distributed job needs the model by name or path, not a loaded model")
        model = str(self._model_spec)
        if os.path.isdir(model):
            model = os.path.abspath(model)  # actors may run in another working directory
        return JobSpec(self.task, model, {**self.options, **self.task_options()})

    def reader(self) -> "ClipReader":
        """What decodes one input for this job (picklable: Ray decode workers run it without the model)."""
        model = self.load()
        return ClipReader(model.preprocessor, self.sampling.frames or model.num_frames, self.sampling.read_kwargs())

    def run(self, skip: Iterable[str] = ()) -> Iterator[Any]:
        """One record per input path in order, except the paths in `skip` (compared normalised)."""
        import os

        skipped = {os.path.normpath(p) for p in skip}
        todo = [p for p in self.paths if os.path.normpath(p) not in skipped]
        return self.run_decoded(todo, self.reader())

    def run_decoded(self, keys: Sequence, read) -> Iterator[Any]:
        """Records for `keys` in order, each decoded by `read(key) -> (clip, info)` (a ClipReader, or a lookup
        of clips decoded elsewhere) and batched through the model."""
        from vivitcli.pipeline import Pipeline

        self.load()
        results = Pipeline(read, self.compute, batch_size=self.batch_size, workers=self.workers).run(list(keys))
        try:
            for res in results:
                yield self.record(res)
        finally:
            results.close()

    def __iter__(self):
        return self.run()

    # ---- per task -----------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check the task's options against the loaded model (before any output is touched)."""

    def task_settings(self) -> dict:
        return {}

    def task_options(self) -> dict:
        """The task's own constructor arguments (top_k, pool, ...), for spec()."""
        return {}

    def compute(self, batch):
        raise NotImplementedError

    def to_model(self, batch):
        """A CPU batch on the model's device and dtype. To a GPU: cast on the CPU (half the bytes to move),
        then copy from pinned memory without blocking, so the copy overlaps the previous batch's kernels; the
        outputs' .cpu() is where the host waits."""
        model = self.model
        device = model.device
        if getattr(device, "type", "cpu") == "cuda":
            return batch.to(dtype=model.dtype).pin_memory().to(device, non_blocking=True)
        return batch.to(device=device, dtype=model.dtype)

    def record(self, res) -> Any:
        raise NotImplementedError


@dataclass
class ClipReader:
    """path -> (clip, ClipInfo) with a model's preprocessing and frame count and a job's sampling."""

    preprocessor: Any
    num_frames: int
    read_kw: dict

    def __call__(self, path: str):
        from vivitcli.pipeline import check_input_file
        from vivitcli.video.read import read_clip

        check_input_file(path)
        return read_clip(path, self.preprocessor, num_frames=self.num_frames, return_info=True, **self.read_kw)


def frame_fields(info) -> dict:
    """frame_indices / timestamps / approximate of a record, from read_clip's ClipInfo."""
    if info is None:
        return {}
    return {"frame_indices": info.indices, "timestamps": info.timestamps, "approximate": bool(info.approximate)}


class ClassifyJob(Job):
    """Top-k labels per input. labels: a `--labels` spec replacing the checkpoint's class names."""

    task = "classify"

    def __init__(self, inputs, model=None, *, top_k: int = 5, labels: str | None = None, **kwargs):
        from vivitcli.labels import read_labels

        if top_k < 1:
            raise UsageError(f"--top-k {top_k} must be at least 1")
        self.top_k, self.labels_spec = top_k, labels
        # Read now: an unreadable or malformed list must cost no model load. Its length is checked in prepare().
        self.labels_given = read_labels(labels) if labels else None
        super().__init__(inputs, model, **kwargs)

    def prepare(self) -> None:
        from vivitcli.labels import check_count

        model = self.model
        if not getattr(model, "has_classifier", True):
            raise UsageError(f"{model.name}: this checkpoint has no classification head",
                             "use `vivit embed`, or a fine-tuned checkpoint")
        self.names, self.label_source = list(model.labels), model.label_source
        if self.labels_given is not None:
            check_count(self.labels_given[0], self.labels_spec, len(self.names))
            self.names, self.label_source = self.labels_given
        self.splits = getattr(model, "class_splits", None)
        self.head_labels = getattr(model, "head_labels", None) or {}

    def task_settings(self) -> dict:
        return {"top_k": self.top_k, "labels": self.labels_spec}

    def task_options(self) -> dict:
        return {"top_k": self.top_k, "labels": self.labels_spec}

    def compute(self, batch):
        model = self.model
        return model(self.to_model(batch))

    def record(self, res) -> ClassifyRecord:
        rec = ClassifyRecord(path=res.path, model=self.model.name, dtype=self.dtype_name,
                             label_source=self.label_source, error=res.error, exception=res.exception)
        if res.error is None:
            rec.labels, rec.heads = labels_from_logits(res.output, self.names, self.top_k, self.splits,
                                                       self.head_labels)
            for key, value in frame_fields(res.info).items():
                setattr(rec, key, value)
        return rec


def softmax(logits) -> Any:
    """float64 softmax of a (K,) vector."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


def top_labels(probs, names: Sequence[str], k: int) -> list[Label]:
    """The k most probable classes, best first (ties: lower index first)."""
    import numpy as np

    order = np.argsort(-np.asarray(probs), kind="stable")[: min(k, len(probs))]
    return [Label(names[i] if i < len(names) else f"LABEL_{i}", float(probs[i]), int(i)) for i in order]


def labels_from_logits(logits, names: Sequence[str], k: int, splits=None, head_labels=None):
    """(labels, heads) for one input's logits.

    Single head: softmax over all logits, heads None. Several heads (splits = [(name, size), ...] in logit
    order, e.g. EPIC-KITCHENS' noun 300 then verb 97): a softmax per head, and `labels` holds the top-k
    actions, the pairs of the first two heads in reading order (verb before noun when both exist) scored by
    the product of their probabilities.
    """
    import numpy as np

    if not splits:
        return top_labels(softmax(logits), names, k), None
    heads, probs, offset = {}, {}, 0
    for name, size in splits:
        part = np.asarray(logits)[offset: offset + size]
        probs[name] = softmax(part)
        heads[name] = top_labels(probs[name], (head_labels or {}).get(name, []), k)
        offset += size
    order = sorted(probs, key=lambda n: (n != "verb", n != "noun", list(probs).index(n)))[:2]
    if len(order) < 2:
        return heads[order[0]], heads
    a, b = order
    joint = np.outer(probs[a], probs[b]).reshape(-1)
    best = np.argsort(-joint, kind="stable")[:k]
    na, nb = (head_labels or {}).get(a, []), (head_labels or {}).get(b, [])
    actions = []
    for flat in best:
        i, j = divmod(int(flat), len(probs[b]))
        label = f"{na[i] if i < len(na) else i} {nb[j] if j < len(nb) else j}"
        actions.append(Label(label, float(joint[flat]), int(flat)))
    return actions, heads


class EmbedJob(Job):
    """One vector per input. pool: default (what the classifier reads) | mean | cls (ViViT only)."""

    task = "embed"

    def __init__(self, inputs, model=None, *, pool: str = "default", **kwargs):
        if pool not in POOLS:
            raise UsageError(f"unknown pool {pool!r} (use {', '.join(POOLS)})")
        self.pool = pool
        super().__init__(inputs, model, **kwargs)

    def prepare(self) -> None:
        import torch

        model = self.model
        hidden = getattr(model, "hidden_size", None)
        if hidden and hasattr(model, "pool"):
            # A pool the model lacks (VideoMAE has no CLS) is refused now, before any output file is touched.
            with torch.inference_mode():
                model.pool(torch.zeros(1, 2, hidden, device=model.device, dtype=model.dtype), self.pool)

    @property
    def dim(self) -> int | None:
        """The embedding width (known once loaded): an all-failed run still writes (0, dim)."""
        return getattr(self.load(), "hidden_size", None)

    def task_settings(self) -> dict:
        return {"pool": self.pool}

    def task_options(self) -> dict:
        return {"pool": self.pool}

    def compute(self, batch):
        model = self.model
        return model.embed(self.to_model(batch), pool=self.pool)

    def record(self, res) -> EmbedRecord:
        rec = EmbedRecord(path=res.path, pool=self.pool, model=self.model.name, dtype=self.dtype_name,
                          error=res.error, exception=res.exception)
        if res.error is None:
            rec.embedding, rec.dim = res.output, int(res.output.shape[-1])
            for key, value in frame_fields(res.info).items():
                setattr(rec, key, value)
        return rec


def classify(inputs, model=None, *, top_k: int = 5, labels: str | None = None, **kwargs) -> Iterator[ClassifyRecord]:
    """Top-k labels for each input video, in input order (see ClassifyJob / Job for the options)."""
    return ClassifyJob(inputs, model, top_k=top_k, labels=labels, **kwargs).run()


def embed(inputs, model=None, *, pool: str = "default", **kwargs) -> Iterator[EmbedRecord]:
    """One embedding per input video, in input order (see EmbedJob / Job for the options)."""
    return EmbedJob(inputs, model, pool=pool, **kwargs).run()
