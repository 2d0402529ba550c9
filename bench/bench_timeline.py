"""vivit timeline against what a user does today, in the same run, on one long file.

    ours        vivitcli.timeline: one forward decode pass, each frame once, decode overlapping the model
    cut         cut-and-classify: `ffmpeg -ss S -i FILE -t W` per window (exact cuts, re-encoded with x264
                veryfast, one ffmpeg after another as a shell loop runs them), then `vivit classify` on the pieces
    read_clip   per-window read_clip (start/end = the window: one seek per window), batched through the model
                with vivitcli's decode-ahead Pipeline (4 threads)

Each method runs in its own subprocess; reported: wall time (model load included), frames decoded, peak RSS
(the largest process of the method: ffmpeg pieces and the classify run are separate processes), and the
agreement of each window's top-1 label with ours. Frames decoded: ours and read_clip count what the decoder
returned; for cut it is computed from the packet scan (ffmpeg decodes from the keyframe before each window
to its end) plus every frame of each piece decoded by classify, a lower bound.

    python bench/bench_timeline.py                          # 10 min 720p H.264, demo model, first 120 s
    python bench/bench_timeline.py --seconds 600 --methods ours,read_clip
    python bench/bench_timeline.py --model random-videomae-b --seconds 20
    python bench/bench_timeline.py --clip-minutes 2.5       # a shorter 720p clip (busy machine)
    python bench/bench_timeline.py --rss                    # ours on a 6-minute and a 60-minute 256x144 file

Clips are generated on first use into bench/_work/ with Debian's ffmpeg (testsrc2 + grain, x264, 30 fps,
GOP 250, as bench/make_clips.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
ROOT = HERE.parent


def make_clip(name: str, seconds: int, size: str, preset: str) -> Path:
    path = WORK / name
    if not path.exists():
        WORK.mkdir(exist_ok=True)
        tmp = WORK / f"tmp_{name}"
        subprocess.run(["nice", "-n", "5", "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={size}:rate=30,noise=alls=2:allf=t", "-t", str(seconds), "-c:v", "libx264",
                        "-crf", "23", "-pix_fmt", "yuv420p", "-sc_threshold", "0", "-bf", "3", "-preset", preset,
                        "-g", "250", str(tmp)], check=True)
        tmp.rename(path)
    return path


def random_checkpoint(name: str) -> str:
    """`random-videomae-b`: VideoMAE-B (16 x 224 x 224, 400 classes) with seeded random weights, saved once by
    transformers into bench/_work/ so that every method (and `vivit classify`) loads the same checkpoint."""
    path = WORK / name
    if name != "random-videomae-b":
        raise SystemExit(f"unknown random model {name!r} (use random-videomae-b)")
    if not (path / "config.json").exists():
        import torch
        from transformers import VideoMAEConfig, VideoMAEForVideoClassification

        torch.manual_seed(0)
        VideoMAEForVideoClassification(VideoMAEConfig(num_labels=400)).save_pretrained(path)
        (path / "preprocessor_config.json").write_text(json.dumps({
            "do_resize": True, "size": {"shortest_edge": 224}, "resample": 2, "do_center_crop": True,
            "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 1 / 255,
            "do_normalize": True, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}))
    return str(path)


# ------------------------------------------------------------------------------------------- child side
def _windows(args):
    from vivitcli.window_tasks import TimelineJob

    import vivitcli

    job = TimelineJob(args.video, args.model, window=args.window, stride=args.stride,
                      sampling=vivitcli.Sampling(end=args.seconds), batch_size=args.batch_size, top_k=1)
    return job


def run_ours(args) -> dict:
    job = _windows(args)
    labels = [r.labels[0].label for r in job.run()]
    return {"labels": labels, "frames": sum(s.get("frames", 0) for s in job.stats),
            "peak_frames_held": max(s.get("peak_frames", 0) for s in job.stats)}


def run_read_clip(args) -> dict:
    from vivitcli.pipeline import Pipeline
    from vivitcli.tasks import labels_from_logits
    from vivitcli.video.decode import last_read_stats
    from vivitcli.video.read import read_clip
    from vivitcli.video.scan import frame_table
    from vivitcli.video.windows import plan_windows

    job = _windows(args)
    model = job.load()
    table = frame_table(args.video)
    wins = plan_windows(table.times, table.duration, job.num_frames, job.window, job.stride, end=args.seconds)
    frames = []

    def read(key):
        w = wins[int(key)]
        clip, info = read_clip(args.video, model.preprocessor, job.num_frames, start=w.start, end=w.end,
                               return_info=True)
        frames.append(last_read_stats().get("frames", 0))
        return clip, info

    pipe = Pipeline(read, job.compute, batch_size=args.batch_size, workers=4)
    labels = []
    for res in pipe.run([str(i) for i in range(len(wins))]):
        labels.append(labels_from_logits(res.output, job.names, 1)[0][0].label)
    return {"labels": labels, "frames": sum(frames)}


def run_cut(args) -> dict:
    import numpy as np

    from vivitcli.video.scan import frame_table
    from vivitcli.video.windows import plan_windows

    job = _windows(args)
    # The window layout only (no model needed for it): num_frames from the model's config.
    job.load()
    table = frame_table(args.video)
    wins = plan_windows(table.times, table.duration, job.num_frames, job.window, job.stride, end=args.seconds)
    tmp = Path(tempfile.mkdtemp(prefix="vivit-cut-"))
    frames = 0
    try:
        for w in wins:
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", f"{w.start:.6f}", "-i", args.video, "-t",
                            f"{w.end - w.start:.6f}", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
                            str(tmp / f"w{w.index:06d}.mp4")], check=True)
            first = int(np.searchsorted(table.times, w.start - 1e-9))
            last = int(np.searchsorted(table.times, w.end - 1e-9))
            key = int(table.key_positions[max(table.keyframe_before(first), 0)])
            frames += (last - key) + (last - first)  # ffmpeg's decode + classify decoding the piece
        out = tmp / "out.jsonl"
        subprocess.run([sys.executable, "-m", "vivitcli", "classify", str(tmp), "--model", args.model, "-o", str(out),
                        "-q", "-k", "1", "--batch-size", str(args.batch_size)], check=True)
        labels = [json.loads(line)["labels"][0]["label"] for line in out.read_text().splitlines()]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"labels": labels, "frames": frames,
            "children_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


METHODS = {"ours": run_ours, "cut": run_cut, "read_clip": run_read_clip}


def child(argv) -> None:
    p = _parser()
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    result = METHODS[args.methods](args)
    result["wall_s"] = time.perf_counter() - t0
    print(json.dumps(result))


# ------------------------------------------------------------------------------------------ parent side
def measure(method: str, args) -> dict:
    cmd = [sys.executable, __file__, "_child", "--methods", method, "--video", args.video, "--model", args.model,
           "--seconds", str(args.seconds), "--batch-size", str(args.batch_size)]
    for name in ("window", "stride"):
        if getattr(args, name) is not None:
            cmd += [f"--{name}", str(getattr(args, name))]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{method} failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mib"] = max(usage.ru_maxrss / 1024, result.pop("children_peak_rss_mib", 0))
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--video", default=None, help="default: a 720p H.264 clip of --clip-minutes (generated)")
    p.add_argument("--clip-minutes", type=float, default=10.0, help="length of the generated 720p clip")
    p.add_argument("--model", default="demo")
    p.add_argument("--seconds", type=float, default=120.0, help="span of the file to label (from 0)")
    p.add_argument("--window", type=float, default=None)
    p.add_argument("--stride", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--methods", default="ours,cut,read_clip")
    p.add_argument("--rss", action="store_true", help="peak RSS of ours on a 6- and a 60-minute 256x144 file")
    return p


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2:])
        return
    args = _parser().parse_args()
    if args.rss:
        rows = {}
        for minutes in (6, 60):
            args.video = str(make_clip(f"144p_{minutes}min_gop250.mp4", minutes * 60, "256x144", "ultrafast"))
            args.seconds = minutes * 60
            rows[minutes] = measure("ours", args)
            r = rows[minutes]
            print(f"{minutes:3d} min: wall {r['wall_s']:7.1f} s  frames decoded {r['frames']:7d}  "
                  f"peak RSS {r['peak_rss_mib']:7.1f} MiB  frames held at most {r['peak_frames_held']}")
        print(f"peak RSS 60 min / 6 min: {rows[60]['peak_rss_mib'] / rows[6]['peak_rss_mib']:.3f} (target <= 1.15)")
        return
    if args.video is None:
        m = args.clip_minutes
        args.video = str(make_clip(f"720p_{m:g}min_gop250.mp4", int(m * 60), "1280x720", "veryfast"))
    if args.model.startswith("random-"):
        args.model = random_checkpoint(args.model)
    results = {}
    for method in args.methods.split(","):
        results[method] = measure(method, args)
    ours = results.get("ours")
    from vivitcli.video.scan import frame_table

    import numpy as np

    table = frame_table(args.video)
    span_frames = int(np.searchsorted(table.times, args.seconds - 1e-9))
    print(f"{args.video}: first {args.seconds:g} s ({span_frames} frames), model {args.model}")
    print(f"{'method':10s} {'wall s':>8s} {'frames decoded':>15s} {'peak RSS MiB':>13s} {'windows':>8s} "
          f"{'agree w/ ours':>14s} {'ours faster':>12s}")
    for method, r in results.items():
        agree = ""
        if ours is not None:
            same = sum(a == b for a, b in zip(r["labels"], ours["labels"]))
            agree = f"{same}/{len(ours['labels'])}"
        ratio = f"{r['wall_s'] / ours['wall_s']:.2f}x" if ours is not None else ""
        print(f"{method:10s} {r['wall_s']:8.1f} {r['frames']:15d} {r['peak_rss_mib']:13.1f} {len(r['labels']):8d} "
              f"{agree:>14s} {ratio:>12s}")
    if ours is not None:
        print(f"ours: frames decoded {ours['frames']} <= one sequential decode of the span {span_frames}: "
              f"{ours['frames'] <= span_frames}")


if __name__ == "__main__":
    main()
