#!/usr/bin/env python
"""End to end against what users run today: a folder of 12 clips labelled by `vivit classify`, by
transformers' `pipeline("video-classification")` and by the docs recipe, with the same model.

    python bench/bench_e2e.py                          # every side, 12 clips (6 x 720p, 6 x 360p, 10 s)
    python bench/bench_e2e.py --sides vivit,pipeline --clips 4

Clips: ffmpeg's testsrc2 pattern with moving grain, 30 fps, 10 s, libx264 (veryfast preset, x264's default
GOP: a keyframe every 250 frames), written once into --dir. Model: VideoMAE-B (16 x 224², MCG-NJU's
fine-tuned config) with random weights, classifier scaled up so the top-1 is not a near tie, saved with
save_pretrained together with a VideoMAEImageProcessor: every side loads that one folder, offline.

Sides (each a fresh process, timed from start to exit, so imports and model loading count as users see them;
peak RSS is the child's own, from wait4):
    vivit            `vivit classify DIR` at its defaults (16 frames spread over the whole clip)
    vivit-openvino   the same with --backend openvino (its compiled model cached in $VIVIT_CACHE)
    vivit-first16    `vivit classify --start 0 --end 0.5167`: frames 0-15, the frames the pipeline reads
    vivit-first16-openvino   the same on OpenVINO
    pipeline         transformers.pipeline("video-classification", model=DIR) over the files, one by one
    recipe           the VideoMAE docs recipe: PyAV read_video_pyav + sample_frame_indices(clip_len=16,
                     frame_sample_rate=1, random start, seed 0) + VideoMAEImageProcessor + the model

Top-1 agreement is reported where both sides read the same frames (vivit-first16* against the pipeline).
With --rounds N the sides run N times, in reversed order every other round, and each round gives a paired
ratio (side / pipeline, measured minutes apart rather than an hour): the table shows the median wall time and
the median ratio with its range. The ratio column is each side's wall time over the pipeline's (< 1: faster).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from vivitcli.benchmark.gpu import timed_command  # noqa: E402

SIDES = ("vivit", "vivit-openvino", "vivit-first16", "vivit-first16-openvino", "pipeline", "recipe")
FIRST16 = ["--start", "0", "--end", f"{15.5 / 30:.4f}"]   # frames 0..15 of a 30 fps clip

PIPELINE = r"""
import json, sys
from transformers import pipeline
from transformers.utils import logging
logging.set_verbosity_error()
clf = pipeline("video-classification", model=sys.argv[1], device=-1)
for path in sys.argv[2:]:
    print(json.dumps({"path": path, "top1": clf(path, top_k=1)[0]["label"]}), flush=True)
"""

RECIPE = f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r})" + r"""
import json
import av, numpy as np, torch
from transformers import VideoMAEForVideoClassification, VideoMAEImageProcessor
from docs_recipe import read_video_pyav, sample_frame_indices
np.random.seed(0)

processor = VideoMAEImageProcessor.from_pretrained(sys.argv[1])
model = VideoMAEForVideoClassification.from_pretrained(sys.argv[1]).eval()
for path in sys.argv[2:]:
    container = av.open(path)
    indices = sample_frame_indices(clip_len=16, frame_sample_rate=1, seg_len=container.streams.video[0].frames)
    video = read_video_pyav(container, indices)
    inputs = processor(list(video), return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    print(json.dumps({"path": path, "top1": model.config.id2label[logits.argmax(-1).item()]}), flush=True)
"""


def make_clips(folder: Path, count: int) -> list[Path]:
    """count clips, half 1280x720 and half 640x360, 10 s at 30 fps; existing ones are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        size = "1280x720" if i % 2 == 0 else "640x360"
        path = folder / f"clip{i:02d}_{size.split('x')[1]}p.mp4"
        if not path.exists():
            tmp = path.with_suffix(".tmp.mp4")
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                            f"testsrc2=size={size}:rate=30:duration=10", "-vf", f"noise=alls={8 + i}:allf=t",
                            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(tmp)], check=True)
            tmp.rename(path)
        paths.append(path)
    return paths


def make_model(folder: Path) -> Path:
    """VideoMAE-B with random weights (bench_models' reference init), saved with its image processor."""
    if (folder / "config.json").exists():
        return folder
    from transformers import VideoMAEImageProcessor

    from bench_models import reference_model
    from vivitcli.models.presets import preset

    model = reference_model("videomae", preset("videomae"), "sdpa")
    tmp = Path(tempfile.mkdtemp(dir=folder.parent))
    model.save_pretrained(tmp)
    VideoMAEImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(tmp)
    tmp.rename(folder)
    return folder


def run_side(side: str, model: Path, clips: list[Path]) -> dict:
    files = [str(p) for p in clips]
    if side.startswith("vivit"):
        argv = [sys.executable, "-m", "vivitcli", "classify", *files, "--model", str(model), "--format", "jsonl",
                "--top-k", "1"]
        if "first16" in side:
            argv += FIRST16
        if side.endswith("openvino"):
            argv += ["--backend", "openvino"]
    else:
        argv = [sys.executable, "-c", PIPELINE if side == "pipeline" else RECIPE, str(model), *files]
    result = timed_command(argv)
    top1 = {}
    for line in result.pop("stdout").splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if "top1" in rec:
                top1[rec["path"]] = rec["top1"]
            elif rec.get("labels"):
                top1[rec["path"]] = rec["labels"][0]["label"]
    result.update(side=side, top1=top1, s_per_clip=result["seconds"] / len(files))
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sides", default=",".join(SIDES), type=lambda s: s.split(","))
    p.add_argument("--clips", type=int, default=12)
    p.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "vivit-bench-e2e",
                   help="where the clips and the model are kept between runs")
    p.add_argument("--json", type=Path, help="write every side's result here")
    p.add_argument("--rounds", type=int, default=1, help="run the sides this many times (alternating order)")
    args = p.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        sys.exit("bench_e2e.py: needs the ffmpeg CLI to write the clips")
    clips = make_clips(args.dir / "clips", args.clips)
    model = make_model(args.dir / "videomae-b-random")
    print(f"# {len(clips)} clips in {args.dir / 'clips'}; model {model}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    rounds: list[dict] = []
    for k in range(args.rounds):
        results = {}
        for side in (args.sides if k % 2 == 0 else list(reversed(args.sides))):
            results[side] = run_side(side, model, clips)
            r = results[side]
            print(f"# round {k + 1} {side}: {r['seconds']:.1f} s, exit {r['returncode']}, {len(r['top1'])} labels",
                  flush=True)
            if r["returncode"] != 0:
                print(r["stderr_tail"], file=sys.stderr)
        rounds.append(results)
    import statistics

    results = {side: dict(rounds[0][side], seconds=statistics.median(r[side]["seconds"] for r in rounds),
                          peak_rss_mib=max(r[side]["peak_rss_mib"] for r in rounds)) for side in args.sides}
    for r in results.values():
        r["s_per_clip"] = r["seconds"] / len(clips)
    ref = results.get("pipeline")
    print()
    print("| side | wall s (median) | s/clip | peak RSS MiB | / pipeline time (median [range] of rounds) | "
          "top-1 = pipeline (same frames) |")
    print("|---|---:|---:|---:|---:|---|")
    for side, r in results.items():
        ratio = ""
        if ref and side != "pipeline":
            pairs = [x[side]["seconds"] / x["pipeline"]["seconds"] for x in rounds]
            ratio = f"{statistics.median(pairs):.2f}" + (f" [{min(pairs):.2f}–{max(pairs):.2f}]" if len(pairs) > 1 else "")
        agree = ""
        if ref and "first16" in side:
            same = sum(r["top1"].get(k) == v for k, v in ref["top1"].items())
            agree = f"{same}/{len(ref['top1'])}"
        print(f"| {side} | {r['seconds']:.1f} | {r['s_per_clip']:.2f} | {r['peak_rss_mib']:.0f} | {ratio} | {agree} |")
    print(f"\n# load average {os.getloadavg()[0]:.1f} at end")
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
