"""The typed records a batch job yields, one per input (or per window), in input order.

Stdlib only. `to_dict()` gives the serialisable form every output writes: all keys present (None where
unknown), in a fixed order, numbers as plain Python values except `embedding`, which stays a float32 array
(the writers decide how to store it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def plain(value):
    """numpy arrays / scalars -> lists / Python numbers; nested lists kept."""
    if value is None:
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass
class Label:
    """One class with its softmax probability and its index in the model's output."""

    label: str
    score: float
    index: int

    def to_dict(self) -> dict:
        return {"label": self.label, "score": float(self.score), "index": int(self.index)}


def _labels(items) -> list[dict]:
    return [item.to_dict() for item in items]


@dataclass
class FrameFields:
    """Which frames a record was computed from (shared by every record kind)."""

    frame_indices: Any = None  # (T,) or (K, T) for several views
    timestamps: Any = None  # seconds from the first frame, same shape
    approximate: bool | None = None  # frames moved to keyframes (--sampling keyframes)
    # The exception behind `error`, for --debug tracebacks; never serialised.
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def frame_dict(self) -> dict:
        return {"frame_indices": plain(self.frame_indices), "timestamps": plain(self.timestamps),
                "approximate": self.approximate}


@dataclass
class ClassifyRecord(FrameFields):
    """Top-k labels for one input. Multi-head models fill `heads` and put the top-k actions in `labels`."""

    kind = "classify"
    path: str = ""
    labels: list[Label] = field(default_factory=list)
    heads: dict[str, list[Label]] | None = None
    model: str | None = None
    dtype: str | None = None  # what the model computed in (--dtype auto resolves per machine)
    label_source: str | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        heads = None if self.heads is None else {name: _labels(items) for name, items in self.heads.items()}
        return {"path": self.path, "labels": _labels(self.labels), "heads": heads, "model": self.model,
                "dtype": self.dtype, "label_source": self.label_source, **self.frame_dict(), "error": self.error}


@dataclass
class EmbedRecord(FrameFields):
    """One vector for one input: `embedding` float32 (D,), None when the input failed."""

    kind = "embed"
    path: str = ""
    dim: int | None = None
    pool: str | None = None
    embedding: Any = None
    model: str | None = None
    dtype: str | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "dim": self.dim, "pool": self.pool, "embedding": self.embedding,
                "model": self.model, "dtype": self.dtype, **self.frame_dict(), "error": self.error}


@dataclass
class WindowRecord(FrameFields):
    """Top-k labels for one window of a video (vivit timeline): `window` is 0-based, `start`/`end` seconds."""

    kind = "window"
    path: str = ""
    window: int = 0
    start: float | None = None
    end: float | None = None
    labels: list[Label] = field(default_factory=list)
    heads: dict[str, list[Label]] | None = None
    model: str | None = None
    dtype: str | None = None
    label_source: str | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        heads = None if self.heads is None else {name: _labels(items) for name, items in self.heads.items()}
        return {"path": self.path, "window": self.window, "start": self.start, "end": self.end,
                "labels": _labels(self.labels), "heads": heads, "model": self.model, "dtype": self.dtype,
                "label_source": self.label_source, **self.frame_dict(), "error": self.error}


# The key order of each kind's dict form (what every writer follows).
RECORD_KEYS = {
    "classify": ("path", "labels", "heads", "model", "dtype", "label_source", "frame_indices", "timestamps",
                 "approximate", "error"),
    "embed": ("path", "dim", "pool", "embedding", "model", "dtype", "frame_indices", "timestamps", "approximate",
              "error"),
    "window": ("path", "window", "start", "end", "labels", "heads", "model", "dtype", "label_source",
               "frame_indices", "timestamps", "approximate", "error"),
}
