#!/usr/bin/env python
"""The cost of running a batch job on Ray instead of the local pipeline, on one machine.

    python bench/bench_ray.py --clips 40 --models demo,videomae-b

For each model: the same N synthetic clips classified by the local pipeline (`vivitcli.classify`) and by
`vivitcli.distributed.ray.run_on_ray` on a local Ray instance (one model actor, decode tasks on the other
CPUs), alternating, median of --reps. Ray's startup (ray.init) is timed separately and not counted in the
Ray wall time. Prints a markdown table with the ratio ray/local and checks that both sides give the same
top-1 labels. `videomae-b` is VideoMAE-B with random weights saved by transformers (test extra) to a temp
folder, so nothing is downloaded.

On a GPU machine (bench/gpu.sh runs this): `--device cuda --gpus-per-worker 1 --decoders N` puts the model in
one GPU actor fed by N CPU decode tasks, and the local pipeline uses the same GPU with --workers N decode
threads; the table then adds clips/s and the GPU's mean utilisation (nvidia-smi, sampled every 0.2 s).

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


class GpuUtilisation:
    """Mean GPU utilisation (%) while the block runs, from nvidia-smi; None without an NVIDIA GPU."""

    def __enter__(self):
        import shutil
        import subprocess

        self.samples: list[float] = []
        self.proc = None
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                          "-lms", "200"], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            out, _ = self.proc.communicate(timeout=10)
            self.samples = [float(x) for x in out.split() if x.replace(".", "", 1).isdigit()]

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def time_local(paths, model, args) -> tuple[float, list, float | None]:
    import vivitcli

    with GpuUtilisation() as gpu:
        t0 = time.perf_counter()
        top1 = [r.labels[0].label if r.labels else None
                for r in vivitcli.classify(paths, model, top_k=1, device=args.device, batch_size=args.batch_size,
                                           workers=args.decoders)]
        seconds = time.perf_counter() - t0
    return seconds, top1, gpu.mean


def time_ray(paths, model, args) -> tuple[float, list, float | None]:
    import vivitcli
    from vivitcli.distributed.ray import run_on_ray

    job = vivitcli.ClassifyJob(paths, model, top_k=1, device=args.device, batch_size=args.batch_size)
    with GpuUtilisation() as gpu:
        t0 = time.perf_counter()
        top1 = [r["labels"][0]["label"] if r["labels"] else None
                for r in run_on_ray(job, job.paths, concurrency=1, decoders=args.decoders,
                                    gpus_per_worker=args.gpus_per_worker)]
        seconds = time.perf_counter() - t0
    return seconds, top1, gpu.mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--models", default="demo,videomae-b")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--decoders", type=int, default=1, help="decode tasks (Ray) / threads (local)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--json", help="also write the rows to this JSON file")
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
        print("| model | device | local s | ray s | ratio ray/local | clips/s local | clips/s ray | "
              "GPU util local / ray | top-1 agree |")
        print("|---|---|--:|--:|--:|--:|--:|---|---|")
        rows = []
        try:
            for name in args.models.split(","):
                model = videomae_b(tmp / "videomae-b") if name == "videomae-b" else name
                local, remote, util, agree = [], [], [None, None], True
                for _ in range(args.reps):
                    t, a, util[0] = time_local(paths, model, args)
                    local.append(t)
                    t, b, util[1] = time_ray(paths, model, args)
                    remote.append(t)
                    agree &= a == b
                lo, re = statistics.median(local), statistics.median(remote)
                gpu = " / ".join("-" if u is None else f"{u:.0f}%" for u in util)
                rows.append({"model": name, "device": args.device, "local_s": lo, "ray_s": re, "ratio": re / lo,
                             "clips": args.clips, "gpu_util_local": util[0], "gpu_util_ray": util[1],
                             "top1_agree": agree, "ray_init_s": startup})
                print(f"| {name} | {args.device} | {lo:.1f} | {re:.1f} | {re / lo:.2f} | {args.clips / lo:.2f} | "
                      f"{args.clips / re:.2f} | {gpu} | {'yes' if agree else 'NO'} |", flush=True)
        finally:
            ray.shutdown()
        if args.json:
            import json

            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
        print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
