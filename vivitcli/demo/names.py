"""The demo's vocabulary: its six classes and the clip generator's choices. Stdlib only, so `vivit --help`
and the completion generator read it without numpy or PyAV (vivitcli.synthetic imports it)."""

from __future__ import annotations

CLASSES = ("moving left", "moving right", "moving up", "moving down", "growing", "shrinking")
SHAPES = ("disc", "square")
BACKGROUNDS = ("solid", "noise")
# codec name -> (PyAV encoder, default container extension)
CODECS = {"h264": ("libx264", ".mp4"), "mpeg4": ("mpeg4", ".mp4"), "vp9": ("libvpx-vp9", ".webm")}
# Containers each codec may be written into (by file extension).
CONTAINERS = {
    ".mp4": ("h264", "mpeg4", "vp9"), ".mov": ("h264", "mpeg4"), ".mkv": ("h264", "mpeg4", "vp9"),
    ".webm": ("vp9",), ".avi": ("h264", "mpeg4"),
}


def class_words() -> list[str]:
    """The class names as single shell words (`moving-left`; `--class` accepts either spelling)."""
    return [c.replace(" ", "-") for c in CLASSES]
