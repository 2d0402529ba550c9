"""Embeddings of many labelled clips through the shared batch job (vivitcli.tasks.embed), with the disk cache.

Clips whose (content, backbone, options) entry is in the cache are not decoded; the others go through one
embed job, and each result is stored the moment it arrives, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from vivitcli.linear_probe.cache import EmbeddingCache, file_digest, model_digest


@dataclass
class Embedded:
    """Per input path: its embedding or its error; and how many came from the cache / were computed."""

    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    from_cache: int = 0
    computed: int = 0


def embedding_settings(model, pool: str, sampling) -> dict:
    """What an embedding depends on besides the clip: the backbone, its dtype, the pool, the sampling."""
    backbone = getattr(model, "backbone", model)
    settings = sampling.settings()
    settings["frames"] = sampling.frames or model.num_frames
    return {"backbone": model_digest(backbone), "dtype": str(backbone.dtype).replace("torch.", ""),
            "pool": getattr(model, "probe_pool", pool) if pool == "default" else pool, "sampling": settings}


def embed_clips(paths: list[str], model, *, pool: str, sampling, batch_size: int = 4, workers: int | None = None,
                cache_dir=None, progress=None) -> Embedded:
    """Embed `paths` with a loaded `model`. progress: None or an object with start(total) and
    clip(path, error_or_None, cached: bool), called after each clip.

    cache_dir None: no cache. A clip that cannot be read (missing, permission) is an error, never cached;
    a clip that fails to decode is remembered as failing (its bytes will fail the same way next time).
    """
    from vivitcli.tasks import embed

    out = Embedded()
    if progress is not None:
        progress.start(len(paths))
    cache = EmbeddingCache(cache_dir, embedding_settings(model, pool, sampling)) if cache_dir is not None else None
    digests: dict[str, str] = {}
    todo: list[str] = []
    for path in paths:
        if cache is None:
            todo.append(path)
            continue
        try:
            digest = file_digest(path)
        except OSError as err:
            reason = "is a folder" if os.path.isdir(path) else (err.strerror or str(err)).lower()
            out.errors[path] = reason
            _notify(progress, path, reason, False)
            continue
        vector, reason = cache.get(digest)
        if vector is not None or reason is not None:
            out.from_cache += 1
            if vector is not None:
                out.vectors[path] = vector
            else:
                out.errors[path] = reason
            _notify(progress, path, reason, True)
            continue
        digests[path] = digest
        todo.append(path)
    if not todo:
        return out
    for rec in embed(todo, model=model, pool=pool, sampling=sampling, batch_size=batch_size, workers=workers):
        path = rec.path
        if rec.error is None:
            vector = np.asarray(rec.embedding, dtype=np.float32).reshape(-1)
            out.vectors[path] = vector
            out.computed += 1
            if cache is not None and path in digests:
                cache.put(digests[path], vector)
        else:
            out.errors[path] = rec.error
            if cache is not None and path in digests and _is_decode_failure(rec):
                cache.put_error(digests[path], rec.error)
        _notify(progress, path, rec.error, False)
    return out


def _is_decode_failure(rec) -> bool:
    """Failures that the same bytes will always reproduce (not a missing file or a permission problem)."""
    reason = rec.error or ""
    return not any(s in reason for s in ("no such file", "permission denied", "is a folder", "MemoryError"))


def _notify(progress, path, error, cached) -> None:
    if progress is not None:
        progress.clip(path, error, cached)
