"""Window records → labelled segments: smoothing, a "no label" threshold, a minimum length.

Works on the window dicts a run writes (`WindowRecord.to_dict()`, or the lines of a --out file), with scores
rounded as the text outputs round them (6 significant digits), so segments made from a fresh run and from a
resumed one are identical. A window's probabilities are its top-k labels (classes outside its top-k count
as 0).

Time: overlapping windows are turned into a tiling of the span: window k owns the cell between the midpoints
of its centre and its neighbours' (the first cell starts at the span's start, the last ends at its end), so
segments never overlap and a boundary is placed to within one stride.

    segs = make_segments(window_dicts, smooth=3, threshold=0.3, min_segment=1.5)
    # [Segment(path, label, start, end, score, windows=[first, ..., last]), ...]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

NO_LABEL = None  # the label of a segment whose windows all scored below the threshold
SEGMENT_KEYS = ("path", "segment", "label", "start", "end", "score", "windows")


def _round_score(x: float) -> float:
    return float(f"{float(x):.6g}")


@dataclass
class Segment:
    path: str
    label: str | None  # None: "no label" (below the threshold)
    start: float
    end: float
    score: float | None  # mean (smoothed) probability of `label` over its windows; None for no label
    windows: list[int] = field(default_factory=list)
    segment: int = 0

    def to_dict(self) -> dict:
        return {"path": self.path, "segment": self.segment, "label": self.label, "start": round(self.start, 6),
                "end": round(self.end, 6), "score": None if self.score is None else _round_score(self.score),
                "windows": list(self.windows)}


def window_cells(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(W + 1,) boundaries: cell k = [b[k], b[k+1]) is the part of the span window k stands for."""
    centres = (np.asarray(starts, dtype=np.float64) + np.asarray(ends, dtype=np.float64)) / 2
    bounds = np.empty(len(centres) + 1, dtype=np.float64)
    bounds[0] = float(np.min(starts))
    bounds[-1] = float(np.max(ends))
    bounds[1:-1] = (centres[:-1] + centres[1:]) / 2
    return bounds


def score_matrix(windows: list[dict]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """(W, C) probabilities from the windows' labels, and the classes (index, name) in column order."""
    classes: dict[int, str] = {}
    for w in windows:
        for item in w.get("labels") or []:
            classes.setdefault(int(item["index"]), item["label"])
    cols = sorted(classes)
    where = {c: j for j, c in enumerate(cols)}
    probs = np.zeros((len(windows), len(cols)), dtype=np.float64)
    for i, w in enumerate(windows):
        for item in w.get("labels") or []:
            probs[i, where[int(item["index"])]] = _round_score(item["score"])
    return probs, [(c, classes[c]) for c in cols]


def smooth_scores(probs: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average over n windows (truncated at the ends); n <= 1 leaves probs as they are."""
    if n <= 1 or len(probs) == 0:
        return probs
    before, after = (n - 1) // 2, n // 2
    csum = np.vstack([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0)])
    idx = np.arange(len(probs))
    lo = np.maximum(idx - before, 0)
    hi = np.minimum(idx + after + 1, len(probs))
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None]


def make_segments(windows: list[dict], *, smooth: int = 1, threshold: float = 0.0,
                  min_segment: float = 0.0) -> list[Segment]:
    """Segments of ONE video's windows (dicts with window, start, end, labels; error records are skipped)."""
    wins = sorted((w for w in windows if not w.get("error") and w.get("window") is not None),
                  key=lambda w: int(w["window"]))
    if not wins:
        return []
    path = wins[0]["path"]
    probs, classes = score_matrix(wins)
    probs = smooth_scores(probs, smooth)
    bounds = window_cells(np.array([w["start"] for w in wins]), np.array([w["end"] for w in wins]))
    if probs.shape[1]:
        best = np.argmax(probs, axis=1)  # ties: the lower class index (columns are sorted by index)
        best_score = probs[np.arange(len(wins)), best]
        label_col = np.where(best_score >= threshold, best, -1)
    else:
        label_col = np.full(len(wins), -1)
    # Runs of equal labels, as [first window position, last window position, column].
    runs: list[list[int]] = []
    for i, col in enumerate(label_col.tolist()):
        if runs and runs[-1][2] == col:
            runs[-1][1] = i
        else:
            runs.append([i, i, col])
    segs = _absorb_short([{"a": a, "b": b, "col": col, "start": float(bounds[a]), "end": float(bounds[b + 1])}
                          for a, b, col in runs], min_segment, bounds)
    segments = []
    for k, s in enumerate(segs):
        col = s["col"]
        label = None if col < 0 else classes[col][1]
        score = None if col < 0 else float(np.mean(probs[s["a"] : s["b"] + 1, col]))
        segments.append(Segment(path=path, label=label, start=s["start"], end=s["end"], score=score,
                                windows=[int(wins[i]["window"]) for i in range(s["a"], s["b"] + 1)], segment=k))
    return segments


def _absorb_short(segs: list[dict], min_segment: float, bounds: np.ndarray) -> list[dict]:
    """Merge segments shorter than min_segment into their neighbours, the shortest first (ties: the earlier).
    One at either end joins its only neighbour; one between two neighbours of the same label joins them; one
    between two different labels is split at its middle (each window goes to the side its cell's centre
    lies on)."""
    while min_segment > 0 and len(segs) > 1:
        k = min(range(len(segs)), key=lambda j: (segs[j]["end"] - segs[j]["start"], j))
        s = segs[k]
        if s["end"] - s["start"] >= min_segment - 1e-9:
            break
        if k == 0:
            segs[1].update(a=s["a"], start=s["start"])
            del segs[0]
        elif k == len(segs) - 1:
            segs[k - 1].update(b=s["b"], end=s["end"])
            del segs[k]
        else:
            prev, nxt = segs[k - 1], segs[k + 1]
            if prev["col"] == nxt["col"]:
                prev.update(b=nxt["b"], end=nxt["end"])
                del segs[k : k + 2]
            else:
                mid = (s["start"] + s["end"]) / 2
                a, b = s["a"], s["b"]
                centres = (bounds[a : b + 1] + bounds[a + 1 : b + 2]) / 2
                to_prev = int(np.sum(centres < mid))
                prev.update(b=a + to_prev - 1 if to_prev else prev["b"], end=mid)
                nxt.update(a=a + to_prev, start=mid)
                del segs[k]
        j = 1
        while j < len(segs):  # neighbours that now carry the same label become one
            if segs[j]["col"] == segs[j - 1]["col"]:
                segs[j - 1].update(b=segs[j]["b"], end=segs[j]["end"])
                del segs[j]
            else:
                j += 1
    return segs


def segments_text(segments: list[Segment], kind: str) -> str:
    """The --segments file: "json" (one array of segment objects) or "csv" (SEGMENT_KEYS columns; windows as
    "first-last")."""
    rows = [s.to_dict() for s in segments]
    if kind == "json":
        # One segment per line: readable, and diffable run to run.
        body = ",\n".join("  " + json.dumps(r, ensure_ascii=False, separators=(", ", ": ")) for r in rows)
        return "[\n" + body + "\n]\n" if rows else "[]\n"
    from vivitcli.output.formats import csv_text  # one CSV writer (a CR in a file name stays quoted)

    table = [list(SEGMENT_KEYS)]
    for r in rows:
        wins = r["windows"]
        r = dict(r, label="" if r["label"] is None else r["label"], score="" if r["score"] is None else r["score"],
                 windows=f"{wins[0]}-{wins[-1]}" if wins else "")
        table.append([r[k] for k in SEGMENT_KEYS])
    return csv_text(table)
