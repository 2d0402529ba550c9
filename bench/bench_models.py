#!/usr/bin/env python
"""vivitcli's native runners vs transformers on this CPU: same random weights, same input, one run.

Full-size ViViT-B/16x2 (32×224×224) and VideoMAE-B (16×224×224). For every model × batch × dtype ×
attention it prints ms per clip for both, the ratio vivitcli / transformers (< 1 = we are faster), and
whether the top-1 class of a fixed input agrees with transformers' float32 answer. A summary line
compares our bfloat16 with transformers' float32.

    python bench/bench_models.py                      # everything, 2 timed reps after a warm-up
    python bench/bench_models.py --models videomae --batch 1 --dtype bfloat16 --reps 1
    python bench/bench_models.py --layers 2           # quick look with 2 of 12 layers (not the README table)
    python bench/bench_models.py --breakdown          # one layer's parts, float32 vs bfloat16

Timing: after a one-clip warm-up, each rep times vivitcli and transformers back to back (alternating which goes
first), under torch.inference_mode for both. Each rep gives a paired ratio (ours / theirs, measured seconds
apart, so a burst of load from other processes hits both); the table shows the median of those ratios with
their range, the median wall ms/clip of each side, and each side's median CPU time per clip (process CPU
seconds, all threads: CPU ≈ threads × wall on an idle machine, far less when other work took the cores). Weights: transformers' own random init with
the classifier scaled up (std 1) so the top-1 of random weights is not a near tie; loaded into vivitcli
through the same checkpoint path as a downloaded model (hf state dict → load). Requires transformers.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vivitcli.models.build import finalize  # noqa: E402
from vivitcli.models.checkpoint import model_from_state_dict  # noqa: E402
from vivitcli.models.config import ModelConfig  # noqa: E402
from vivitcli.models.presets import preset  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def reference_model(name: str, config: dict, attn: str):
    import transformers
    from transformers.utils import logging

    logging.set_verbosity_error()
    cfg_cls = transformers.VivitConfig if name == "vivit" else transformers.VideoMAEConfig
    model_cls = (transformers.VivitForVideoClassification if name == "vivit"
                 else transformers.VideoMAEForVideoClassification)
    cfg = cfg_cls(**{k: v for k, v in config.items() if k not in ("architectures", "model_type")})
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    model = model_cls(cfg).eval()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(1)
        model.classifier.weight.copy_(torch.randn(model.classifier.weight.shape, generator=gen))
        if name == "vivit":   # transformers initialises these to zero; random values exercise the add
            model.vivit.embeddings.cls_token.normal_(0, 0.02, generator=gen)
            model.vivit.embeddings.position_embeddings.normal_(0, 0.02, generator=gen)
    return model


def timed(fn, x) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of fn(x)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn(x)
    return time.perf_counter() - t0, time.process_time() - c0


def breakdown(args) -> int:
    """Time one encoder layer's parts at full size in float32 and bfloat16 (where bf16 helps, where not)."""
    import torch.nn.functional as F

    def best(fn, n=3):
        fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) * 1e3

    print(f"# one layer, batch 1, best of 3; load average {os.getloadavg()[0]:.1f}")
    print("| model | tokens | part | float32 ms | bfloat16 ms | speed-up |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        cfg = ModelConfig.from_dict(preset(name))
        n = cfg.num_patches + (1 if name == "vivit" else 0)
        d, h = cfg.hidden_size, cfg.num_heads
        res = {}
        for dtype in (torch.float32, torch.bfloat16):
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(1, n, d, generator=gen).to(dtype)
            w_qkv = torch.randn(3 * d, d, generator=gen).to(dtype) * 0.02
            w1 = torch.randn(cfg.intermediate_size, d, generator=gen).to(dtype) * 0.02
            w2 = torch.randn(d, cfg.intermediate_size, generator=gen).to(dtype) * 0.02
            q, k, v = (torch.randn(1, h, n, d // h, generator=gen).to(dtype) for _ in range(3))
            with torch.inference_mode():
                res[dtype] = {
                    "qkv linear": best(lambda: F.linear(x, w_qkv)),
                    "attention (sdpa)": best(lambda: F.scaled_dot_product_attention(q, k, v)),
                    "mlp (fc1, gelu, fc2)": best(lambda: F.linear(F.gelu(F.linear(x, w1)), w2)),
                }
        for part in res[torch.float32]:
            a, b = res[torch.float32][part], res[torch.bfloat16][part]
            print(f"| {name} | {n} | {part} | {a:.0f} | {b:.0f} | {a / b:.2f}x |", flush=True)
    return 0


def run(args) -> int:
    if args.breakdown:
        return breakdown(args)
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    import transformers

    print(f"# transformers {transformers.__version__}; reps={args.reps} warmup={args.warmup}"
          + (f"; LAYERS={args.layers} (not full size)" if args.layers else ""))
    print()
    print("| model | batch | dtype | attn | vivitcli ms/clip (CPU ms) | transformers ms/clip (CPU ms) | "
          "ratio: median of pairs [range] | top-1 (ours / ref / ref fp32) |")
    print("|---|---|---|---|---|---|---|---|")
    fp32_ref: dict = {}
    bf16_ours: dict = {}
    for name in args.models:
        config = preset(name)
        if args.layers:
            config["num_hidden_layers"] = args.layers
        ref = reference_model(name, config, "eager")
        ours = model_from_state_dict(ModelConfig.from_dict(config), ref.state_dict(), source=name)
        ours = finalize(ours, name=name, device="cpu", dtype="float32")
        frames, size = config["num_frames"], config["image_size"]
        gen = torch.Generator().manual_seed(2)
        clip = torch.randn(max(args.batch), frames, 3, size, size, generator=gen)
        with torch.inference_mode():
            ref_top1_fp32 = ref(pixel_values=clip[:1]).logits.argmax(-1).item()
        for dtype_name in args.dtype:
            dtype = DTYPES[dtype_name]
            ref.to(dtype)
            ours.to(dtype)
            for attn in args.attn:
                ref.set_attn_implementation(attn)
                ours.set_attn(attn)
                for batch in args.batch:
                    x = clip[:batch].to(dtype)

                    def f_ours(v):
                        with torch.inference_mode():
                            return ours(v)

                    def f_ref(v):
                        with torch.inference_mode():
                            return ref(pixel_values=v).logits

                    # Warm-up on one clip (also gives the top-1): full-size runs take seconds, so
                    # one-time costs (allocator, oneDNN primitives) are small next to them.
                    top_ours = top_ref = None
                    for _ in range(max(args.warmup, 1)):
                        top_ours = f_ours(x[:1])[0].float().argmax().item()
                        top_ref = f_ref(x[:1])[0].float().argmax().item()
                    t_ours, t_ref = [], []
                    for rep in range(args.reps):
                        if rep % 2 == 0:
                            t_ours.append(timed(f_ours, x)); t_ref.append(timed(f_ref, x))
                        else:
                            t_ref.append(timed(f_ref, x)); t_ours.append(timed(f_ours, x))
                    ratios = [a[0] / b[0] for a, b in zip(t_ours, t_ref)]
                    ms_ours = statistics.median(t[0] for t in t_ours) / batch * 1e3
                    ms_ref = statistics.median(t[0] for t in t_ref) / batch * 1e3
                    cpu_ours = statistics.median(t[1] for t in t_ours) / batch * 1e3
                    cpu_ref = statistics.median(t[1] for t in t_ref) / batch * 1e3
                    if dtype_name == "float32":
                        fp32_ref[(name, batch, attn)] = ms_ref
                    if dtype_name == "bfloat16":
                        bf16_ours[(name, batch, attn)] = ms_ours
                    same = "same" if top_ours == top_ref == ref_top1_fp32 else "DIFFERENT"
                    print(f"| {name} | {batch} | {dtype_name} | {attn} | {ms_ours:.0f} ({cpu_ours:.0f}) | "
                          f"{ms_ref:.0f} ({cpu_ref:.0f}) | {statistics.median(ratios):.2f} "
                          f"[{min(ratios):.2f}–{max(ratios):.2f}] | {top_ours} / {top_ref} / {ref_top1_fp32} {same} |",
                          flush=True)
        del ref, ours
    if fp32_ref and bf16_ours:
        print()
        print("| model | batch | attn | vivitcli bf16 ms/clip | transformers fp32 ms/clip | speed-up |")
        print("|---|---|---|---|---|---|")
        for key, ms in bf16_ours.items():
            if key in fp32_ref:
                print(f"| {key[0]} | {key[1]} | {key[2]} | {ms:.0f} | {fp32_ref[key]:.0f} | "
                      f"{fp32_ref[key] / ms:.2f}x |")
    print(f"\n# load average {os.getloadavg()[0]:.1f} at end")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="vivit,videomae", type=lambda s: s.split(","))
    p.add_argument("--batch", default="1,4", type=lambda s: [int(v) for v in s.split(",")])
    p.add_argument("--dtype", default="float32,bfloat16", type=lambda s: s.split(","))
    p.add_argument("--attn", default="eager,sdpa", type=lambda s: s.split(","))
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed one-clip runs per setting (at least 1: it gives the top-1)")
    p.add_argument("--layers", type=int, default=0, help="override the layer count (quick checks only)")
    p.add_argument("--breakdown", action="store_true",
                   help="instead: time one layer's linear and attention parts in float32 vs bfloat16")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
