#!/usr/bin/env python
"""VideoMAE pre-training, vivitcli vs transformers' VideoMAEForPreTraining on this CPU: same random weights,
same input, same 90% tube mask, one run.

VideoMAE-B with its decoder (16x224x224: 1568 tokens; the encoder sees 160 of them, the decoder all 1568).
For each step kind it prints ms per clip for both, the ratio vivitcli / transformers (< 1 = we are faster)
and the loss difference:

    python bench/bench_mae.py                     # masked forward + loss, and a training step; batch 1
    python bench/bench_mae.py --batch 2 --reps 3 --attn eager
    python bench/bench_mae.py --small --batch 4 --reps 7 --threads 1   # 8x112x112, 4+2 layers: quick, less noisy

Timing: after one warm-up step each, every rep times vivitcli and transformers back to back (alternating which
goes first); the median rep is reported. forward: under inference_mode. train: forward + loss + backward +
AdamW step (lr 1e-5). Weights: transformers' random init, loaded into vivitcli through the checkpoint path
(hub state dict → videomae_pretraining.from_state_dict). Requires transformers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vivitcli.masking import make_mask  # noqa: E402
from vivitcli.models.config import ModelConfig  # noqa: E402
from vivitcli.models.presets import preset  # noqa: E402
from vivitcli.models.videomae_pretraining import from_state_dict  # noqa: E402


# A reduced VideoMAE (8 frames of 112 px, 4 encoder layers 384 wide, 2 decoder layers 192 wide): steps of
# ~0.1-0.3 s, so more reps fit in the time a loaded machine stays steady.
SMALL = dict(image_size=112, num_frames=8, hidden_size=384, num_hidden_layers=4, num_attention_heads=6,
             intermediate_size=1536, decoder_hidden_size=192, decoder_num_hidden_layers=2,
             decoder_num_attention_heads=3, decoder_intermediate_size=768)


def models(attn: str, small: bool = False):
    import transformers
    from transformers.utils import logging

    logging.set_verbosity_error()
    config = preset("videomae")
    if small:
        config.update(SMALL)
    torch.manual_seed(0)
    cfg = transformers.VideoMAEConfig(**{k: v for k, v in config.items() if k not in ("architectures", "model_type")})
    ref = transformers.VideoMAEForPreTraining._from_config(cfg, attn_implementation=attn).eval()
    # Copies: load_state_dict(assign=True) would otherwise share tensors with `ref`, and a training step of one
    # model would move the other's weights.
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    ours = from_state_dict(ModelConfig.from_dict(config), state, source="bench", attn=attn).eval()
    return ref, ours


def step(kind: str, model, pixels, mask, is_ref: bool):
    def loss_of():
        if is_ref:
            return model(pixel_values=pixels, bool_masked_pos=mask).loss
        return model(pixels, mask)[1]

    if kind == "forward":
        model.eval()

        def run():
            with torch.inference_mode():
                return float(loss_of())
        return run
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def run():
        opt.zero_grad(set_to_none=True)
        loss = loss_of()
        loss.backward()
        opt.step()
        return float(loss.detach())
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"))
    parser.add_argument("--kinds", default="forward,train")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--small", action="store_true", help="the reduced config SMALL instead of VideoMAE-B")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {'VideoMAE (SMALL)' if args.small else 'VideoMAE-B'} pre-training, batch {args.batch}, {args.attn}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print("| step | vivitcli ms/clip | transformers ms/clip | ratio | loss diff |")
    print("|---|---:|---:|---:|---:|")
    for kind in args.kinds.split(","):
        ref, ours = models(args.attn, args.small)   # fresh weights per kind: a training step changes them
        gen = torch.Generator().manual_seed(1)
        size = ours.cfg.image_size
        pixels = torch.randn(args.batch, ours.cfg.num_frames, 3, size[0], size[1], generator=gen)
        mask = make_mask(ours.cfg.grid, 0.9, batch=args.batch, seed=0)
        runs = {"ours": step(kind, ours, pixels, mask, False), "ref": step(kind, ref, pixels, mask, True)}
        first = {name: run() for name, run in runs.items()}            # warm-up; same weights, so same loss
        times = {"ours": [], "ref": []}
        for rep in range(args.reps):
            for name in (("ours", "ref") if rep % 2 == 0 else ("ref", "ours")):
                t0 = time.perf_counter()
                runs[name]()
                times[name].append((time.perf_counter() - t0) * 1000 / args.batch)
        a, b = statistics.median(times["ours"]), statistics.median(times["ref"])
        print(f"| {kind} | {a:.0f} | {b:.0f} | {a / b:.2f} | {abs(first['ours'] - first['ref']):.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
