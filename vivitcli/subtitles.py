"""Subtitles (SubRip .srt and WebVTT .vtt) from segments or windows, for players to show over the video.

Cues never overlap: segments tile the video already, and in "windows" mode each window's cue covers its
cell (see segments.window_cells), not its whole overlapping span. Times are whole milliseconds; a cue that
rounds to nothing is left out. "No label" segments get no cue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vivitcli.segments import Segment, window_cells

SUBTITLE_SOURCES = ("segments", "windows")


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    text: str


def _text(label: str, score: float | None) -> str:
    label = " ".join(str(label).split())  # one line: a label never spans cues or breaks the format
    return label if score is None else f"{label} ({float(score):.2f})"


def segment_cues(segments: list[Segment]) -> list[Cue]:
    cues = []
    for s in segments:
        if s.label is None:
            continue
        a, b = int(round(s.start * 1000)), int(round(s.end * 1000))
        if b > a:
            cues.append(Cue(a, b, _text(s.label, s.score)))
    return cues


def window_cues(windows: list[dict]) -> list[Cue]:
    """One cue per window (its best label and score) over the window's cell."""
    wins = sorted((w for w in windows if not w.get("error") and w.get("window") is not None),
                  key=lambda w: int(w["window"]))
    if not wins:
        return []
    bounds = window_cells(np.array([w["start"] for w in wins]), np.array([w["end"] for w in wins]))
    cues = []
    for k, w in enumerate(wins):
        if not w.get("labels"):
            continue
        best = w["labels"][0]
        a, b = int(round(bounds[k] * 1000)), int(round(bounds[k + 1] * 1000))
        if b > a:
            cues.append(Cue(a, b, _text(best["label"], best["score"])))
    return cues


def _clock(ms: int, sep: str) -> str:
    h, rest = divmod(int(ms), 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(cues: list[Cue]) -> str:
    blocks = [f"{i}\n{_clock(c.start_ms, ',')} --> {_clock(c.end_ms, ',')}\n{c.text}\n"
              for i, c in enumerate(cues, 1)]
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: list[Cue]) -> str:
    blocks = ["WEBVTT\n"]
    blocks += [f"{i}\n{_clock(c.start_ms, '.')} --> {_clock(c.end_ms, '.')}\n{_vtt_escape(c.text)}\n"
               for i, c in enumerate(cues, 1)]
    return "\n".join(blocks)
