"""Shared inputs for the CLI tests (owner: CLI): a tiny checkpoint and a folder of generated videos.

    from tests.cli_data import make_video_folder, make_checkpoint, run_cli
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.checkpoints import make_tiny_vivit
from tests.videos import write_empty, write_not_video, write_video

LABELS = ["abseiling", "bowling", "cooking", "dancing", "eating spaghetti"]


def make_checkpoint(dir) -> Path:
    """A tiny ViViT classifier (4 frames, 32 px, 5 named classes)."""
    return make_tiny_vivit(Path(dir), num_labels=len(LABELS), label_names=LABELS)


def make_video_folder(root, *, bad: bool = True) -> dict:
    """Videos in nested folders plus (bad=True) broken files. Returns {"good": [...], "bad": [...]} as str paths,
    each list in the order a folder walk yields them."""
    root = Path(root)
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / ".hidden").mkdir(exist_ok=True)
    good = [
        write_video(root / "a.mp4", num_frames=30, gop=12),
        write_video(root / "c.webm", num_frames=16, codec="libvpx-vp9", width=48, height=64),
        write_video(root / "d.mkv", num_frames=24, fps=30),
        write_video(root / "sub" / "b.mp4", num_frames=20, width=80, height=40),
    ]
    write_video(root / ".hidden" / "skip.mp4", num_frames=8)
    (root / "notes.txt").write_text("not picked up by the folder walk\n")
    bad_files = []
    if bad:
        bad_files = [write_not_video(root / "bad.mp4"), write_empty(root / "empty.mkv")]
    order = sorted(good + bad_files, key=lambda p: p.relative_to(root).parts)
    return {"good": [str(p) for p in good], "bad": [str(p) for p in bad_files], "all": [str(p) for p in order]}


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
