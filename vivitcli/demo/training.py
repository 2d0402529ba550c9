"""What the demo training scripts (vivitcli.demo.train, vivitcli.demo.mae.train) share: rendering the
training clips in worker processes, the AdamW + warm-up/cosine schedule, the batch order, one optimizer
step, saving the checkpoint and the command line. Each script keeps its own data, model, loss and defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path


def squash_preprocessor_config(processor_type: str, size: int, mean, std, **extra) -> dict:
    """preprocessor_config.json that squashes the whole frame to size² (no center crop: a 16:9 clip keeps its
    left and right edges, where a "moving left/right" object may spend most of its time), rescales to [0, 1]
    and normalizes with mean/std; `extra` keys (e.g. ViViT's offset) stand before the normalization's."""
    square = {"height": size, "width": size}
    return {"image_processor_type": processor_type, "do_resize": True, "size": square, "resample": 2,
            "do_center_crop": False, "crop_size": dict(square), "do_rescale": True, "rescale_factor": 1 / 255,
            **extra, "do_normalize": True, "image_mean": list(mean), "image_std": list(std)}


def pool_map(fn, items, workers: int) -> list:
    """[fn(item) for item in items], in `workers` processes when there are more than one (fn: module level)."""
    items = list(items)
    if workers > 1:
        import multiprocessing as mp

        # fork where there is one: spawn would re-run a caller's unguarded __main__.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            return pool.map(fn, items, chunksize=32)
    return [fn(item) for item in items]


def seed_torch(seed: int, threads: int):
    """Seeds torch's global generator, sets its thread count; returns the loop's own generator."""
    import torch

    # One thread by default: the weights then do not depend on the machine's core count, and a shared
    # machine does not stall on threads waiting for each other.
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def adamw_cosine(model, lr: float, betas: tuple[float, float], steps: int, no_decay_name: str):
    """AdamW (weight decay 0.05 on matrices whose name lacks `no_decay_name`), linear warm-up over 5% of the
    steps, then cosine to zero → (optimizer, scheduler)."""
    import torch

    def decays(name, p):
        return p.ndim >= 2 and no_decay_name not in name

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n, p)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=betas)
    warmup = max(steps // 20, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0)))))
    return opt, sched


def batch_indices(clips: int, batch_size: int, steps: int, gen):
    """(step, clip indices) for each step: passes over a fresh permutation (from `gen`) of the clips, each
    drawn only when the last one has no whole batch left."""
    import torch

    order, pos = torch.randperm(clips, generator=gen), 0
    for step in range(steps):
        if pos + batch_size > clips:
            order, pos = torch.randperm(clips, generator=gen), 0
        yield step, order[pos : pos + batch_size]
        pos += batch_size


def optimizer_step(model, opt, sched, loss) -> None:
    """Backward, gradient norm clipped to 1, optimizer and schedule step."""
    import torch

    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()


def save_checkpoint(model, out: Path, preprocessor_config: dict, dtype: str | None = None) -> None:
    """The Hugging Face layout vivitcli loads: save_pretrained's files plus preprocessor_config.json. `dtype`
    (a torch dtype name, e.g. "float16") stores the weights in it: the loaders compute in the dtype the user
    asks for."""
    import torch

    model.eval()
    if dtype is not None:
        model.to(getattr(torch, dtype))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor_config, indent=2) + "\n")


def main(argv, *, prog: str, doc: str, train, default_out: Path, clips: int, steps: int, lr: float) -> int:
    """The scripts' command line: parses argv, runs train(...) with progress on stderr, prints its summary as
    JSON on stdout."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    parser.add_argument("--out", type=Path, default=default_out, help="output directory (HF layout)")
    parser.add_argument("--clips", type=int, default=clips, help="distinct training clips")
    parser.add_argument("--steps", type=int, default=steps, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes that render the training clips")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training")
    args = parser.parse_args(argv)
    start = time.time()
    stats = train(args.out, args.clips, args.steps, args.batch_size, args.lr, args.workers, args.threads,
                  log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps({**stats, "total_seconds": round(time.time() - start, 1), "out": str(args.out)}))
    return 0
