"""One self-contained HTML page to watch a video with its timeline: no network, no external files but the video.

The page holds a `<video>` linking to the file by a relative URL, the WebVTT subtitles inline as a data: URL
(a relative .vtt would be refused by browsers for pages opened from disk: tracks must be same-origin), an SVG
timeline with one column per window (height = the window's best score, colour = its best class) and a line
per top class, and the segment list. A click on the timeline or on a segment seeks the video. The same inputs
give the same bytes (no dates, fixed number formats).
"""

from __future__ import annotations

import base64
import html
import json
import os
from urllib.parse import quote

import numpy as np

from vivitcli.segments import Segment, score_matrix, window_cells

# Colours of the top classes, in rank order; every other class is drawn grey.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
OTHER = "#9a9a9a"
WIDTH, HEIGHT = 1000, 200  # SVG user units; the SVG is stretched to the page width


def video_url(video_path: str, page_path: str) -> str:
    """The video's URL relative to the page's folder (percent-encoded, forward slashes)."""
    rel = os.path.relpath(os.path.abspath(video_path), os.path.dirname(os.path.abspath(page_path)))
    # Percent-encode the name's bytes (os.fsencode): a name that is not valid UTF-8 still opens the real file.
    return quote(os.fsencode(rel.replace(os.sep, "/")))


def _num(x: float) -> str:
    return f"{float(x):.3f}".rstrip("0").rstrip(".") or "0"


def _clock(t: float) -> str:
    m, s = divmod(max(float(t), 0.0), 60)
    return f"{int(m)}:{s:06.3f}"


def render_page(video_path: str, page_path: str, windows: list[dict], segments: list[Segment], vtt: str,
                *, top_classes: int = len(PALETTE)) -> str:
    """The page's HTML for one video's window dicts (as written) and segments."""
    wins = sorted((w for w in windows if not w.get("error") and w.get("window") is not None),
                  key=lambda w: int(w["window"]))
    probs, classes = score_matrix(wins)
    if wins:
        bounds = window_cells(np.array([w["start"] for w in wins]), np.array([w["end"] for w in wins]))
        t0, t1 = float(bounds[0]), float(bounds[-1])
    else:
        bounds, t0, t1 = np.zeros(1), 0.0, 1.0
    span = max(t1 - t0, 1e-9)

    def x(t: float) -> str:
        return _num((float(t) - t0) / span * WIDTH)

    # The classes that are best in some window, by total score over the video (ties: lower class index).
    totals = probs.sum(axis=0) if probs.size else np.zeros(len(classes))
    winners = set(np.argmax(probs, axis=1).tolist()) if probs.size else set()
    ranked = sorted(winners, key=lambda j: (-round(float(totals[j]), 9), classes[j][0]))[:top_classes]
    colour = {j: PALETTE[r] for r, j in enumerate(ranked)}
    name_colour = {classes[j][1]: colour[j] for j in ranked}

    columns = []
    for k, w in enumerate(wins):
        best = (w.get("labels") or [None])[0]
        score = float(best["score"]) if best else 0.0
        fill = name_colour.get(best["label"], OTHER) if best else OTHER
        h = score * HEIGHT
        title = f"window {w['window']}: {_clock(w['start'])}-{_clock(w['end'])}"
        if best:
            title += f"  {best['label']} {score:.3f}"
        columns.append(
            f'<rect class="win" data-window="{int(w["window"])}" data-start="{_num(w["start"])}" '
            f'x="{x(bounds[k])}" y="{_num(HEIGHT - h)}" width="{_num((bounds[k + 1] - bounds[k]) / span * WIDTH)}" '
            f'height="{_num(h)}" fill="{fill}" fill-opacity="0.35"><title>{html.escape(title)}</title></rect>')
    lines = []
    centres = [(float(w["start"]) + float(w["end"])) / 2 for w in wins]
    for j in ranked:
        pts = " ".join(f"{x(c)},{_num(HEIGHT - p * HEIGHT)}" for c, p in zip(centres, probs[:, j]))
        lines.append(f'<polyline class="score" data-label="{html.escape(classes[j][1])}" points="{pts}" '
                     f'fill="none" stroke="{colour[j]}" stroke-width="2" vector-effect="non-scaling-stroke"/>')
    legend = "".join(f'<span class="key"><i style="background:{colour[j]}"></i>{html.escape(classes[j][1])}</span>'
                     for j in ranked)
    items = []
    for s in segments:
        label = "no label" if s.label is None else s.label
        score = "" if s.score is None else f" <span class=\"score\">{s.score:.3f}</span>"
        fill = name_colour.get(s.label, OTHER) if s.label is not None else "transparent"
        items.append(f'<li class="segment" data-start="{_num(s.start)}" data-end="{_num(s.end)}">'
                     f'<i style="background:{fill}"></i>'
                     f'<span class="time">{_clock(s.start)} – {_clock(s.end)}</span> '
                     f'{html.escape(label)}{score}</li>')
    name = os.path.basename(video_path)
    track = "data:text/vtt;base64," + base64.b64encode(vtt.encode("utf-8")).decode("ascii")
    meta = json.dumps({"start": t0, "end": t1})
    return _TEMPLATE.format(
        title=html.escape(f"{name} — vivit timeline"), name=html.escape(name),
        src=html.escape(video_url(video_path, page_path)), track=track, width=WIDTH, height=HEIGHT,
        columns="\n".join(columns), lines="\n".join(lines), legend=legend, segments="\n".join(items),
        meta=html.escape(meta), count=len(wins),
    )


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1em auto; max-width: 960px; padding: 0 1em; color: #222; }}
h1 {{ font-size: 1.2em; }}
video {{ width: 100%; max-height: 60vh; background: #000; }}
#timeline {{ width: 100%; height: 160px; display: block; cursor: pointer; background: #fafafa;
  border: 1px solid #ddd; margin-top: .5em; }}
#legend .key {{ margin-right: 1em; white-space: nowrap; }}
#legend i, #segments i {{ display: inline-block; width: .8em; height: .8em; margin-right: .3em; }}
#segments {{ padding-left: 1.5em; }}
#segments li {{ cursor: pointer; padding: .15em .3em; }}
#segments li:hover, #segments li.now {{ background: #eef; }}
.time {{ font-variant-numeric: tabular-nums; color: #555; }}
.score {{ color: #777; }}
</style>
</head>
<body>
<h1>{name}</h1>
<video id="video" controls preload="metadata" src="{src}">
<track id="track" kind="subtitles" label="vivit" srclang="en" default src="{track}">
</video>
<svg id="timeline" viewBox="0 0 {width} {height}" preserveAspectRatio="none" data-windows="{count}"
 data-span="{meta}" role="img" aria-label="scores of the top classes over time">
<g id="columns">
{columns}
</g>
<g id="lines">
{lines}
</g>
<line id="playhead" x1="0" x2="0" y1="0" y2="{height}" stroke="#000" stroke-width="1"
 vector-effect="non-scaling-stroke"/>
</svg>
<div id="legend">{legend}</div>
<h2>Segments</h2>
<ol id="segments">
{segments}
</ol>
<script>
"use strict";
(function () {{
  const video = document.getElementById("video");
  const svg = document.getElementById("timeline");
  const span = JSON.parse(svg.dataset.span);
  const width = {width};
  // A cue's end time counts as inside it, so a seek to a segment's start lands 1 ms in, past the cue before.
  function seek(t) {{ video.currentTime = Math.max(0, t + 0.001); }}
  svg.addEventListener("click", function (ev) {{
    const box = svg.getBoundingClientRect();
    seek(span.start + (ev.clientX - box.left) / box.width * (span.end - span.start));
  }});
  const items = Array.from(document.querySelectorAll("#segments li"));
  items.forEach(function (li) {{
    li.addEventListener("click", function () {{ seek(parseFloat(li.dataset.start)); }});
  }});
  const head = document.getElementById("playhead");
  function update() {{
    const t = video.currentTime;
    const x = (t - span.start) / (span.end - span.start) * width;
    head.setAttribute("x1", x);
    head.setAttribute("x2", x);
    items.forEach(function (li) {{
      li.classList.toggle("now", t >= parseFloat(li.dataset.start) && t < parseFloat(li.dataset.end));
    }});
  }}
  video.addEventListener("timeupdate", update);
  video.addEventListener("seeking", update);
  update();
}})();
</script>
</body>
</html>
"""
