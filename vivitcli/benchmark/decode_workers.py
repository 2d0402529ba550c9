"""Decode workers: threads against processes, measured on real files (what `vivit classify --workers` scales).

    python -m vivitcli.benchmark.decode_workers --kind thread,process --workers 1,8,16 --json out.json clips/*.mp4

Each worker reads whole clips the way `vivit classify` does (vivitcli.read_clip: probe, sample, decode,
preprocess to float32 (T, 3, S, S)), with one torch thread per worker. Process workers pay for shipping each
clip back to the parent (pickled tensors), as a process-based pipeline would. Pools are started and warmed up
(one tiny task per worker) before timing, so a rate is clips per second in steady state. With many cores,
threads scale only as far as decoding and preprocessing release the GIL; processes scale further when they
do not, at the cost of the copy back: this measures which wins on the machine at hand.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import sys
import time

_PRE = None


def _init(model_type: str) -> None:
    global _PRE
    import torch

    torch.set_num_threads(1)
    from vivitcli.preprocess import Preprocessor

    _PRE = Preprocessor.from_config(None, model_type)


def _read(args) -> tuple[int, ...]:
    path, frames, model_type = args
    if _PRE is None:
        _init(model_type)
    from vivitcli import read_clip

    clip = read_clip(path, _PRE, num_frames=frames)
    return clip


def _noop(_):
    return os.getpid()


def measure(paths: list[str], workers: int, kind: str, *, frames: int = 16, model_type: str = "videomae") -> dict:
    """Clips per second reading `paths` with `workers` threads or processes."""
    if kind == "thread":
        _init(model_type)
        pool = cf.ThreadPoolExecutor(workers)
    else:
        ctx = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
        pool = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(model_type,))
    try:
        list(pool.map(_noop, range(workers)))                  # start and import in every worker
        t0, c0 = time.perf_counter(), time.process_time()
        shapes = [tuple(clip.shape) for clip in pool.map(_read, [(p, frames, model_type) for p in paths])]
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        pool.shutdown()
    return {"kind": kind, "workers": workers, "files": len(paths), "seconds": wall,
            "clips_per_s": len(paths) / wall, "parent_cpu_s": cpu, "shape": list(shapes[0]) if shapes else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="+")
    p.add_argument("--kind", default="thread,process", type=lambda s: s.split(","))
    p.add_argument("--workers", default=f"1,{os.cpu_count() or 1}", type=lambda s: [int(v) for v in s.split(",")])
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--model-type", default="videomae", choices=("videomae", "vivit"))
    p.add_argument("--json", help="write the rows here as JSON")
    args = p.parse_args(argv)
    rows = []
    for workers in args.workers:
        for kind in args.kind:
            row = measure(args.paths, workers, kind, frames=args.frames, model_type=args.model_type)
            rows.append(row)
            print(f"{kind:8s} x{workers:3d}: {row['clips_per_s']:7.2f} clips/s ({row['seconds']:.2f} s for "
                  f"{row['files']} files)", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"cpu_count": os.cpu_count(), "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
