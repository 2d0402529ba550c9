"""On-disk embedding cache: one .npy per clip, keyed by the clip's content, the backbone and the options.

    <cache>/embeddings/<run key>/options.json        what the key stands for (backbone, pool, sampling, dtype)
    <cache>/embeddings/<run key>/<h[:2]>/<h>.npy     float32 (D,) for the clip whose bytes hash to h
    <cache>/embeddings/<run key>/<h[:2]>/<h>.err     the one-line reason a clip could not be decoded

The run key hashes the backbone's weights, config and preprocessor (not its name: a renamed or re-downloaded
copy of the same weights shares entries; a changed file does not) with the pool and sampling options and the
dtype. Each entry is written to a temporary name and renamed when its clip is done, so an interrupted run
keeps everything finished so far and the next run carries on from there. Entries are read with
allow_pickle=False. <cache> is --cache, else $VIVIT_CACHE, else $XDG_CACHE_HOME/vivitcli (~/.cache/vivitcli).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    from vivitcli.cache import cache_dir

    return cache_dir()


def file_digest(path) -> str:
    """sha256 of the file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def model_digest(model) -> str:
    """sha256 over a VideoModel's config, preprocessor and every parameter and buffer (names, dtypes, bytes)."""
    import torch

    model = getattr(model, "torch_model", model)  # an OpenVINO-compiled model: the weights it was built from
    h = hashlib.sha256()
    h.update(json.dumps(model.config, sort_keys=True, default=str).encode())
    pre = model.preprocessor.to_config() if hasattr(model.preprocessor, "to_config") else None
    h.update(json.dumps(pre, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class EmbeddingCache:
    """Entries for one (backbone, options) key under `root`."""

    def __init__(self, root, key_fields: dict):
        text = json.dumps(key_fields, sort_keys=True, default=str)
        self.key = hashlib.sha256(text.encode()).hexdigest()[:32]
        self.dir = Path(root) / "embeddings" / self.key
        self.key_fields = key_fields

    def _entry(self, digest: str, suffix: str) -> Path:
        return self.dir / digest[:2] / f"{digest}{suffix}"

    def get(self, digest: str) -> tuple[np.ndarray | None, str | None]:
        """(embedding, None), (None, error reason) for a clip known not to decode, or (None, None) if absent."""
        path = self._entry(digest, ".npy")
        if path.is_file():
            try:
                value = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                return None, None  # a damaged entry is computed again
            if value.ndim == 1 and value.dtype == np.float32:
                return value, None
            return None, None
        err = self._entry(digest, ".err")
        if err.is_file():
            try:
                return None, err.read_text(encoding="utf-8").strip() or "cannot be decoded"
            except OSError:
                return None, None
        return None, None

    def put(self, digest: str, embedding: np.ndarray) -> None:
        self._write(self._entry(digest, ".npy"), lambda f: np.save(f, np.asarray(embedding, dtype=np.float32),
                                                                   allow_pickle=False))

    def put_error(self, digest: str, reason: str) -> None:
        self._write(self._entry(digest, ".err"), lambda f: f.write(reason.encode("utf-8")))

    def _write(self, path: Path, write) -> None:
        """Write to a temporary file next to `path`, then rename: readers never see half an entry."""
        path.parent.mkdir(parents=True, exist_ok=True)
        info = self.dir / "options.json"
        if not info.is_file():
            self._atomic(info, lambda f: f.write(json.dumps(self.key_fields, indent=1, sort_keys=True,
                                                            default=str).encode()))
        self._atomic(path, write)

    @staticmethod
    def _atomic(path: Path, write) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
