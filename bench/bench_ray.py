#!/usr/bin/env python
"""The cost of running a batch job on Ray instead of the local pipeline, on one machine.

    python bench/bench_ray.py --clips 40 --models demo,videomae-b

For each model: the same N synthetic clips classified by the local pipeline (`vivitcli.classify`) and by
`vivitcli.distributed.ray.run_on_ray` on a local Ray instance (one model actor, decode tasks on the other
CPUs), alternating, median of --reps. Ray's startup (ray.init) is timed separately and not counted in the
Ray wall time. Prints a markdown table with the ratio ray/local and checks that both sides give the same
top-1 labels. `videomae-b` is VideoMAE-B with random weights saved by transformers (test extra) to a temp
folder, so nothing is downloaded.

--dry: 4 clips, demo model, 1 rep (what CI and bench/gpu.sh's dry mode run).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def make_clips(folder: Path, n: int) -> list[str]:
    from vivitcli import synthetic

    paths = []
    for i in range(n):
        label = synthetic.CLASSES[i % len(synthetic.CLASSES)]
        spec = synthetic.sample_spec(5000 + i, label=label, width=320, height=240, fps=25, duration=4.0,
                                     codec="h264")
        paths.append(synthetic.write_clip(spec, folder / f"clip{i:03d}.mp4"))
    return paths


def videomae_b(folder: Path) -> str:
    """VideoMAE-B/16 (16x224x224, Kinetics-400 head) with random weights, in the Hugging Face layout."""
    import torch
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    from vivitcli.models.presets import preset

    torch.manual_seed(0)
    config = {k: v for k, v in preset("videomae").items() if k != "architectures"}
    VideoMAEForVideoClassification(VideoMAEConfig(**config)).save_pretrained(folder)
    return str(folder)


def time_local(paths, model) -> tuple[float, list]:
    import vivitcli

    t0 = time.perf_counter()
    top1 = [r.labels[0].label if r.labels else None for r in vivitcli.classify(paths, model, top_k=1)]
    return time.perf_counter() - t0, top1


def time_ray(paths, model, decoders: int) -> tuple[float, list]:
    import vivitcli
    from vivitcli.distributed.ray import run_on_ray

    job = vivitcli.ClassifyJob(paths, model, top_k=1)
    t0 = time.perf_counter()
    top1 = [r["labels"][0]["label"] if r["labels"] else None
            for r in run_on_ray(job, job.paths, concurrency=1, decoders=decoders)]
    return time.perf_counter() - t0, top1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--models", default="demo,videomae-b")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--decoders", type=int, default=1)
    parser.add_argument("--dry", action="store_true")
    args = parser.parse_args()
    if args.dry:
        args.clips, args.models, args.reps = 4, "demo", 1

    import os

    import ray

    from vivitcli.distributed.ray import quiet_ray_logs

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_clips(tmp, args.clips)
        quiet_ray_logs()
        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
        startup = time.perf_counter() - t0
        print(f"ray.init: {startup:.1f} s (not counted below); {args.clips} clips of 320x240, 4 s; "
              f"load average at start {os.getloadavg()[0]:.1f}")
        print()
        print("| model | local s | ray s | ratio ray/local | s/clip local | s/clip ray | top-1 agree |")
        print("|---|--:|--:|--:|--:|--:|---|")
        try:
            for name in args.models.split(","):
                model = videomae_b(tmp / "videomae-b") if name == "videomae-b" else name
                local, remote, agree = [], [], True
                for _ in range(args.reps):
                    t, a = time_local(paths, model)
                    local.append(t)
                    t, b = time_ray(paths, model, args.decoders)
                    remote.append(t)
                    agree &= a == b
                lo, re = statistics.median(local), statistics.median(remote)
                print(f"| {name} | {lo:.1f} | {re:.1f} | {re / lo:.2f} | {lo / args.clips:.3f} | "
                      f"{re / args.clips:.3f} | {'yes' if agree else 'NO'} |", flush=True)
        finally:
            ray.shutdown()
        print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
