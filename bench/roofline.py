#!/usr/bin/env python
"""A measured roofline for this CPU: peak GEMM rates, then each model's achieved GFLOP/s as a share of them.

    python bench/roofline.py                               # VideoMAE-B and ViViT-B, every runtime, 3 reps
    python bench/roofline.py --models videomae --reps 2    # the README's table
    python bench/roofline.py --quick                       # 2-layer models, small GEMMs: a smoke test

1. Peak GEMM (GFLOP/s): the best of --reps timed products C = A·B, for
   - a large square product (n = 2048; 2n³ FLOP), and
   - the model-shaped products of one encoder layer at batch 1 (tokens N × width D times the weights:
     q/k/v N×D·D×3D, MLP N×D·D×4D and N×4D·4D×D),
   each with torch (float32, bfloat16) and OpenVINO (f32, and bf16 where OpenVINO reports native BF16: its
   emulated bf16 ran 40× slower than f32 on an AVX-512 CPU without BF16, which says nothing about a peak).
   The roofline of a runtime+dtype is its best rate over those shapes.
2. Models at batch 1, sdpa attention, random weights (time does not depend on their values): vivitcli torch
   float32 and bfloat16, vivitcli on OpenVINO f32 (and bf16 where native), transformers float32 (sdpa).
   ms/clip is the median of --reps timed forwards after one warm-up (which also compiles OpenVINO models;
   compiled models are cached in $VIVIT_CACHE/openvino). Each rep times every runtime back to back.
   % of roofline is paired, so that it survives a shared machine: right before each timed forward, the same
   runtime and dtype time the model's own largest GEMM (its MLP N×D·D×I, best of 2), and the share is the
   forward's GFLOP/s over that GEMM's, taken per rep; the table shows the median share. (Ratios of the
   step-1 peak table to step-2 times mix different moments of a machine's load: they can exceed 100 %.)

FLOPs per clip are counted from the config (multiply-add = 2 FLOP; LayerNorm, softmax, GELU and the bias
adds, < 1 %, are left out): with N tokens (+1 CLS for ViViT), width D, MLP width I, L layers, tubelet t×p×p
and C channels,
    patch embedding 2·N·(C·t·p·p)·D
    per layer       q/k/v 2·N·D·3D + scores QKᵀ 2·N²·D + weights·V 2·N²·D + output 2·N·D² + MLP 2·2·N·D·I
    classifier      2·D·K
VideoMAE-B (N 1568, D 768, I 3072, L 12): 361 GFLOP/clip (357 in the blocks); ViViT-B/16x2 (N 3137): 903.
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

from vivitcli.models.backends import openvino_available  # noqa: E402
from vivitcli.models.backends.cpu import cpu_has_native_bf16, cpu_name  # noqa: E402
from vivitcli.models.config import ModelConfig  # noqa: E402
from vivitcli.models.presets import preset  # noqa: E402


# ---- FLOPs from the config --------------------------------------------------------------------------------
def flops_per_clip(config: dict) -> dict:
    """FLOPs of one clip's forward pass at the config's native size, by part (see the module docstring)."""
    cfg = ModelConfig.from_dict(config)
    n = cfg.num_patches + (1 if cfg.model_type == "vivit" else 0)
    d, i, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers
    t, p, q = cfg.tubelet
    k = len(cfg.id2label) or int(config.get("num_labels", 0) or 0)
    parts = {
        "patch_embed": 2 * cfg.num_patches * cfg.num_channels * t * p * q * d,
        "qkv": layers * 2 * n * d * 3 * d,
        "attention": layers * 4 * n * n * d,
        "attn_out": layers * 2 * n * d * d,
        "mlp": layers * 4 * n * d * i,
        "classifier": 2 * d * k,
    }
    parts["total"] = sum(parts.values())
    return parts


def gemm_shapes(config: dict, square: int) -> list[tuple[str, int, int, int]]:
    """(name, M, K, N) products: the square one, then one encoder layer's weight products at batch 1."""
    cfg = ModelConfig.from_dict(config)
    n = cfg.num_patches + (1 if cfg.model_type == "vivit" else 0)
    d, i = cfg.hidden_size, cfg.intermediate_size
    return [(f"square {square}", square, square, square), (f"qkv {n}x{d}x{3 * d}", n, d, 3 * d),
            (f"mlp1 {n}x{d}x{i}", n, d, i), (f"mlp2 {n}x{i}x{d}", n, i, d)]


# ---- timing ------------------------------------------------------------------------------------------------
def best_seconds(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def torch_gemm(m, k, n, dtype, reps):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen).to(dtype)
    b = torch.randn(k, n, generator=gen).to(dtype)
    with torch.inference_mode():
        s = best_seconds(lambda: torch.mm(a, b), reps)
    return 2 * m * k * n / s / 1e9


def openvino_gemm(m, k, n, hint, reps):
    """A one-MatMul OpenVINO model (constant weights, as a compiled network has them)."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    from vivitcli.models.backends.openvino import core

    rng = np.random.default_rng(0)
    x = ops.parameter([m, k], ov.Type.f32, name="x")
    w = ops.constant(rng.standard_normal((k, n)).astype(np.float32))
    model = ov.Model([ops.matmul(x, w, False, False)], [x], "gemm")
    compiled = core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    a = rng.standard_normal((m, k)).astype(np.float32)
    s = best_seconds(lambda: request.infer({0: a}), reps)
    return 2 * m * k * n / s / 1e9


def runtimes(args) -> list[tuple[str, str]]:
    """(runtime, dtype) pairs measured here."""
    out = [("torch", "float32"), ("torch", "bfloat16")]
    if openvino_available():
        from vivitcli.models.backends.openvino import capabilities

        out.append(("openvino", "float32"))
        if "BF16" in capabilities():
            out.append(("openvino", "bfloat16"))
    return out


def measure_peaks(args, configs) -> dict:
    """{(runtime, dtype): (best GFLOP/s, shape name)} and a printed table of every product."""
    shapes, seen = [], set()
    for config in configs.values():
        for shape in gemm_shapes(config, args.square):
            if shape[1:] not in seen:
                seen.add(shape[1:])
                shapes.append(shape)
    pairs = runtimes(args)
    print("## Peak GEMM (GFLOP/s, best of %d)\n" % args.reps)
    print("| product (M×K×N) | " + " | ".join(f"{r} {d}" for r, d in pairs) + " |")
    print("|---|" + "---:|" * len(pairs))
    peaks: dict = {}
    for name, m, k, n in shapes:
        cells = []
        for runtime, dtype in pairs:
            if runtime == "torch":
                rate = torch_gemm(m, k, n, getattr(torch, dtype), args.reps)
            else:
                rate = openvino_gemm(m, k, n, "bf16" if dtype == "bfloat16" else "f32", args.reps)
            if rate > peaks.get((runtime, dtype), (0, ""))[0]:
                peaks[(runtime, dtype)] = (rate, name)
            cells.append(f"{rate:.0f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print("\nroofline = the best of each column: " + ", ".join(
        f"{r} {d} {v[0]:.0f} ({v[1]})" for (r, d), v in peaks.items()) + "\n")
    return peaks


# ---- models ---------------------------------------------------------------------------------------------
def model_runners(name: str, config: dict, pairs):
    """{label: (runtime, dtype, forward(x))} for every runtime of one model."""
    from vivitcli.models import build_model
    from vivitcli.models.backends import apply_backend

    runners = {}
    ours = build_model(config, device="cpu", dtype="float32", seed=0)
    runners["vivitcli torch float32"] = ("torch", "float32", ours)
    ours_bf16 = build_model(config, device="cpu", dtype="bfloat16", seed=0)
    runners["vivitcli torch bfloat16"] = ("torch", "bfloat16", ours_bf16)
    for runtime, dtype in pairs:
        if runtime == "openvino":
            ov = apply_backend(build_model(config, device="cpu", dtype="float32", seed=0), "openvino", dtype=dtype)
            runners[f"vivitcli openvino {dtype}"] = ("openvino", dtype, ov)
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_models import reference_model

        ref = reference_model(name, config, "sdpa")
        runners["transformers float32"] = ("torch", "float32", lambda x: ref(pixel_values=x).logits)
    except ImportError:
        print("# transformers is not installed: no transformers row")
    return runners


def gemm_probe(runtime: str, dtype: str, m: int, k: int, n: int):
    """A no-argument function timing one M×K·K×N product (best of 2) in GFLOP/s on that runtime and dtype."""
    if runtime == "torch":
        return lambda: torch_gemm(m, k, n, getattr(torch, dtype), 2)
    return lambda: openvino_gemm(m, k, n, "bf16" if dtype == "bfloat16" else "f32", 2)


def measure_models(args, configs, peaks) -> list[dict]:
    pairs = runtimes(args)
    results = []
    print("## Models (batch 1, sdpa)\n")
    print("| model | runtime | ms/clip (median) | GFLOP/clip | GFLOP/s | GEMM GFLOP/s (paired) | % of roofline |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, config in configs.items():
        flops = flops_per_clip(config)["total"]
        runners = model_runners(name, config, pairs)
        gen = torch.Generator().manual_seed(2)
        x = torch.randn(1, config["num_frames"], 3, config["image_size"], config["image_size"], generator=gen)
        inputs = {label: x.to(torch.bfloat16) if dtype == "bfloat16" and runtime == "torch" else x
                  for label, (runtime, dtype, _) in runners.items()}
        cfg = ModelConfig.from_dict(config)
        tokens = cfg.num_patches + (1 if cfg.model_type == "vivit" else 0)
        probes = {label: gemm_probe(runtime, dtype, tokens, cfg.hidden_size, cfg.intermediate_size)
                  for label, (runtime, dtype, _) in runners.items()}
        times: dict = {label: [] for label in runners}
        shares: dict = {label: [] for label in runners}
        gemm: dict = {label: [] for label in runners}
        with torch.inference_mode():
            for label, (_, _, fn) in runners.items():      # warm-up (and OpenVINO compile or cache load)
                fn(inputs[label])
            for rep in range(args.reps):
                order = list(runners) if rep % 2 == 0 else list(reversed(runners))
                for label in order:
                    rate_gemm = probes[label]()
                    t0 = time.perf_counter()
                    runners[label][2](inputs[label])
                    seconds = time.perf_counter() - t0
                    times[label].append(seconds)
                    gemm[label].append(rate_gemm)
                    shares[label].append(flops / seconds / 1e9 / rate_gemm)
        for label, (runtime, dtype, _) in runners.items():
            s = statistics.median(times[label])
            rate = flops / s / 1e9
            share, rate_gemm = statistics.median(shares[label]), statistics.median(gemm[label])
            print(f"| {name} | {label} | {s * 1e3:.0f} | {flops / 1e9:.0f} | {rate:.0f} | {rate_gemm:.0f} | "
                  f"{100 * share:.0f} % |", flush=True)
            results.append({"model": name, "runtime": label, "ms_per_clip": s * 1e3, "gflop": flops / 1e9,
                            "gflops": rate, "gemm_gflops_paired": rate_gemm, "share": share,
                            "peak_table_gflops": peaks.get((runtime, dtype), (None, ""))[0]})
        del runners
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="videomae,vivit", type=lambda s: s.split(","))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--square", type=int, default=2048, help="size of the square GEMM")
    p.add_argument("--no-models", action="store_true", help="GEMM peaks only")
    p.add_argument("--quick", action="store_true", help="2-layer models and a 512 square (smoke test)")
    args = p.parse_args(argv)
    configs = {name: preset(name) for name in args.models}
    if args.quick:
        args.square = 512
        for config in configs.values():
            config["num_hidden_layers"] = 2
    print(f"# {cpu_name()}; {torch.get_num_threads()} torch threads; native bf16: {cpu_has_native_bf16()}; "
          f"torch {torch.__version__}; python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.1f} at start")
    if openvino_available():
        import openvino

        from vivitcli.models.backends.openvino import capabilities

        print(f"# openvino {openvino.get_version()}; CPU capabilities {', '.join(capabilities())}")
    for name, config in configs.items():
        parts = flops_per_clip(config)
        print(f"# {name}: {parts['total'] / 1e9:.1f} GFLOP/clip (" + ", ".join(
            f"{k} {v / 1e9:.1f}" for k, v in parts.items() if k != "total") + ")")
    print()
    peaks = measure_peaks(args, configs)
    if not args.no_models:
        measure_models(args, configs, peaks)
    print(f"\n# load average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
