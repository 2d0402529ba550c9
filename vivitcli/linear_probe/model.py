"""A probe model directory, and the classifier it loads as: head(backbone.embed(x, pool)).

    MYMODEL/probe.json          format, backbone reference, pool, sampling, class names, fit summary
    MYMODEL/head.safetensors    weight (K, D) and bias (K,), float32
    MYMODEL/backbone/           only with standalone=True: a copy of the backbone checkpoint

The backbone is referenced the way the user named it (alias or hub id), or by its absolute path for a local
directory, so its weights are not copied unless asked. `vivitcli.load_model(MYMODEL)` returns a ProbeModel:
it answers like a VideoModel (name = the directory, labels = the probe's classes, label_source "probe",
num_frames = the frames it was trained with), computes logits as head(backbone.embed(x, pool)) and hands
anything else to the backbone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from vivitcli.errors import CheckpointError, ModelNotFoundError, UsageError

PROBE_FILE = "probe.json"
HEAD_FILE = "head.safetensors"
BACKBONE_DIR = "backbone"
FORMAT = "vivitcli-probe"
VERSION = 1
POOLS = ("default", "mean", "cls")
MAX_CLASSES = 100_000


def is_probe_dir(path) -> bool:
    return (Path(path) / PROBE_FILE).is_file()


class ProbeModel(nn.Module):
    """A frozen backbone and a linear head on one of its pooled embeddings."""

    label_source = "probe"
    class_splits = None
    head_labels = None

    def __init__(self, backbone, weight, bias, labels: list[str], *, pool: str = "default",
                 sampling: dict | None = None, name: str | None = None, path=None, info: dict | None = None):
        super().__init__()
        weight = torch.as_tensor(weight, dtype=torch.float32)
        bias = torch.as_tensor(bias, dtype=torch.float32)
        self.backbone = backbone
        self.head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias)
        self.head.to(device=backbone.device, dtype=backbone.dtype)
        self.probe_pool = pool
        self.sampling = dict(sampling or {})
        self.labels = list(labels)
        self.name = name or f"probe({backbone.name})"
        self.path = path
        self.info = dict(info or {})
        self.eval()

    # ---- what the batch jobs read ------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.sampling.get("frames") or self.backbone.num_frames)

    @property
    def num_labels(self) -> int:
        return self.head.out_features

    @property
    def has_classifier(self) -> bool:
        return True

    @property
    def hidden_size(self) -> int:
        return self.backbone.hidden_size

    @property
    def preprocessor(self):
        return self.backbone.preprocessor

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.dtype

    def _pool_name(self, pool: str) -> str:
        return self.probe_pool if pool == "default" else pool

    def pool(self, x: torch.Tensor, pool: str = "default") -> torch.Tensor:
        return self.backbone.pool(x, self._pool_name(pool))

    def embed(self, pixel_values: torch.Tensor, pool: str = "default") -> torch.Tensor:
        """(B, T, C, H, W) → (B, D); pool "default" is the embedding the probe's head reads."""
        return self.backbone.embed(pixel_values, self._pool_name(pool))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) → logits (B, K) = head(backbone.embed(x, pool))."""
        x = self.backbone.embed(pixel_values, self.probe_pool)
        with torch.no_grad() if not self.training else torch.enable_grad():
            return self.head(x.to(self.head.weight.dtype))

    def read_clip(self, path, **kwargs):
        kwargs.setdefault("num_frames", self.num_frames)
        return self.backbone.read_clip(path, **kwargs)

    def set_attn(self, impl: str) -> "ProbeModel":
        self.backbone.set_attn(impl)
        return self

    def __getattr__(self, name: str):
        # Anything a VideoModel has and a probe does not redefine (config, cfg, image_size, attn, ...) is the
        # backbone's.
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("__") or name == "backbone":
                raise
            return getattr(super().__getattr__("backbone"), name)

    def extra_repr(self) -> str:
        return f"pool={self.probe_pool}, labels={self.num_labels}"


# ---- writing -------------------------------------------------------------------------------------------------


def backbone_reference(model, given=None) -> str:
    """How probe.json names the backbone: an alias or hub id as given, else an absolute directory path."""
    from vivitcli.models.names import ALIASES

    if isinstance(model, ProbeModel) or (given is not None and is_probe_dir(given)):
        raise UsageError(f"{given or model.name}: is a probe model", "train on its backbone instead")
    text = str(given) if given is not None else str(getattr(model, "name", "") or "")
    if text in ALIASES:
        return text
    if text and Path(text).expanduser().is_dir():
        return str(Path(text).expanduser().resolve())
    if given is not None and text:
        return text  # a hub id
    path = getattr(model, "path", None)
    if path is not None and Path(path).is_dir():
        return str(Path(path).resolve())
    if text:
        return text
    raise UsageError("the backbone has no name or directory to refer to", "pass it by name or path")


def prepare_out_dir(out) -> Path:
    """The output folder, refusing one that holds anything but a previous probe (never overwrite others' files)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder", "pick a new folder for the probe model")
    # Only what save_probe writes (an interrupted save may have left no probe.json, or a temporary file).
    ours = {PROBE_FILE, HEAD_FILE, BACKBONE_DIR}
    if out.is_dir() and not all(p.name in ours or p.name.startswith(".") for p in out.iterdir()):
        raise UsageError(f"{out}: folder is not empty and holds no {PROBE_FILE}",
                         "pick a new or empty folder (a previous probe model there is replaced)")
    return out


def save_probe(out, *, head_weight, head_bias, labels: list[str], backbone: str, pool: str, sampling: dict,
               info: dict, backbone_model=None, standalone: bool = False) -> Path:
    """Write a probe model folder (see the module docstring); probe.json last, so a half-written folder never
    loads. standalone copies the backbone checkpoint's files into MYMODEL/backbone/."""
    import numpy as np
    from safetensors.numpy import save_file

    out = prepare_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / PROBE_FILE).exists():
        (out / PROBE_FILE).unlink()  # the folder is invalid until the new probe.json lands
    tensors = {"weight": np.ascontiguousarray(head_weight, dtype=np.float32),
               "bias": np.ascontiguousarray(head_bias, dtype=np.float32)}
    _atomic(out / HEAD_FILE, lambda tmp: save_file(tensors, tmp))
    backbone_dir = None
    if standalone:
        _copy_backbone(backbone_model, backbone, out / BACKBONE_DIR)
        backbone_dir = BACKBONE_DIR
    elif (out / BACKBONE_DIR).is_dir():
        shutil.rmtree(out / BACKBONE_DIR)
    doc = {"format": FORMAT, "version": VERSION, "backbone": backbone, "backbone_dir": backbone_dir,
           "pool": pool, "sampling": sampling, "labels": list(labels), "dim": int(tensors["weight"].shape[1]),
           **info}
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    _atomic(out / PROBE_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return out


def _copy_backbone(model, reference: str, dest: Path) -> None:
    from vivitcli.models.files import weight_files
    from vivitcli.models.hub import resolve_model_path

    src = getattr(model, "path", None)
    if src is None:
        src, _ = resolve_model_path(reference, download=False)
    src = Path(src)
    files = [src / "config.json"] + [p for p in [src / "preprocessor_config.json"] if p.is_file()]
    files += weight_files(src)
    for name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (src / name).is_file():
            files.append(src / name)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        for f in files:
            shutil.copyfile(f, tmp / f.name)  # follows HF-cache symlinks: the copy holds the bytes
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---- reading -------------------------------------------------------------------------------------------------


def read_probe_json(path) -> dict:
    """probe.json, checked field by field before anything is allocated; CheckpointError naming the file."""
    from vivitcli.models.files import read_json

    file = Path(path) / PROBE_FILE
    doc = read_json(file, what="probe")

    def bad(what: str):
        return CheckpointError(f"{file}: {what}", "retrain it with `vivit probe train`")

    if doc.get("format") != FORMAT:
        raise bad(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
    if not isinstance(doc.get("version"), int) or doc["version"] > VERSION:
        raise bad(f"version {doc.get('version')!r} is newer than this vivitcli reads ({VERSION})")
    labels = doc.get("labels")
    if (not isinstance(labels, list) or not 2 <= len(labels) <= MAX_CLASSES
            or not all(isinstance(s, str) and s for s in labels)):
        raise bad("'labels' must be a list of at least 2 class names")
    if not isinstance(doc.get("backbone"), str) or not doc["backbone"]:
        raise bad("'backbone' must name the backbone model")
    bdir = doc.get("backbone_dir")
    if bdir is not None:
        from vivitcli.models.files import is_plain_name

        if not is_plain_name(bdir):
            raise bad(f"'backbone_dir' {bdir!r} must be a folder name inside the probe folder")
    if doc.get("pool") not in POOLS:
        raise bad(f"'pool' must be one of {', '.join(POOLS)}")
    sampling = doc.get("sampling", {})
    if not isinstance(sampling, dict):
        raise bad("'sampling' must be an object")
    frames = sampling.get("frames")
    if frames is not None and (not isinstance(frames, int) or isinstance(frames, bool) or not 1 <= frames <= 4096):
        raise bad("'sampling.frames' must be a frame count from 1 to 4096")
    if not isinstance(doc.get("dim"), int) or doc["dim"] < 1:
        raise bad("'dim' must be a positive integer")
    return doc


def load_probe(path, *, name: str | None = None, device="auto", dtype="auto", attn: str = "sdpa", **kwargs
               ) -> ProbeModel:
    """Load a probe model folder: its backbone (by reference, or the bundled copy) and its head."""
    from safetensors.numpy import load_file

    from vivitcli.models.files import checkpoint_file, safetensors_shapes
    from vivitcli.models.hub import load_from_dir, load_model

    path = Path(path)
    doc = read_probe_json(path)
    k, d = len(doc["labels"]), doc["dim"]
    head_path = checkpoint_file(path, HEAD_FILE)
    shapes = safetensors_shapes(head_path)
    want = {"weight": (k, d), "bias": (k,)}
    got = {n: s for n, (_, s) in shapes.items()}
    if got != want:
        raise CheckpointError(f"{head_path}: tensors {got} do not match {k} classes of dimension {d}",
                              "retrain it with `vivit probe train`")
    if doc["backbone_dir"] is not None:
        backbone = load_from_dir(path / doc["backbone_dir"], name=doc["backbone"], device=device, dtype=dtype,
                                 attn=attn, **kwargs)
    else:
        try:
            backbone = load_model(doc["backbone"], device=device, dtype=dtype, attn=attn, **kwargs)
        except ModelNotFoundError as err:
            raise ModelNotFoundError(f"{path}: its backbone {err.message}", err.hint or
                                     "make the backbone available, or retrain with --standalone") from None
    if isinstance(backbone, ProbeModel):
        raise CheckpointError(f"{path}: its backbone {doc['backbone']!r} is itself a probe model")
    hidden = getattr(backbone, "hidden_size", None)
    if hidden is not None and hidden != d:
        raise CheckpointError(f"{path}: the head reads {d}-dimensional embeddings but the backbone "
                              f"{doc['backbone']!r} gives {hidden}", "retrain the probe on this backbone")
    tensors = load_file(str(head_path))
    return ProbeModel(backbone, tensors["weight"], tensors["bias"], doc["labels"], pool=doc["pool"],
                      sampling=doc.get("sampling") or {}, name=name or str(path), path=path, info=doc)
