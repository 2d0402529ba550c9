"""`vivit benchmark`: eager vs SDPA attention, speed and peak memory; per-stage timing on real videos."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from vivitcli.commands.options import DEVICE_WORDS, Backend, BackendOpt, Debug, Quiet, words
from vivitcli.errors import UsageError, VivitError
from vivitcli.models.device import DTYPE_NAMES

FORMATS = ("table", "json", "csv")
MODES = ("inference", "training", "pretraining", "pretraining-training")


def command(
    model: Optional[List[str]] = typer.Option(
        None, "--model", "-m", show_default=False,
        help="random-vivit-b or random-videomae-b (full-size architectures with random weights, offline), "
             "hub id, alias or checkpoint directory. Repeat for several models. [default: random-vivit-b]"),
    batch_sizes: Optional[str] = typer.Option(
        None, "--batch-sizes", "-b", show_default=False,
        help="Comma-separated batch sizes. [default: 1 on a CPU (about a minute in all), else 1,2,4,8]"),
    dtype: str = typer.Option("float32", "--dtype",
                              help="Comma-separated dtypes: float32, float16, bfloat16 (or fp32, fp16, bf16).",
                              autocompletion=words(DTYPE_NAMES)),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.",
                               autocompletion=words(DEVICE_WORDS)),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, show_default=False,
                                        help="Timed steps per configuration. [default: 2 on a CPU, else 10]"),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, show_default=False,
                                         help="Untimed steps before them. [default: 1 on a CPU, else 2]"),
    backend: BackendOpt = Backend.torch,
    mode: str = typer.Option("inference", "--mode",
                             help="inference, training (forward + backward + AdamW step), or both: "
                                  "inference,training. VideoMAE with its decoder: pretraining (90% tube-masked "
                                  "forward + loss), pretraining-training (+ backward + AdamW step).",
                             autocompletion=words(MODES)),
    fmt: str = typer.Option("table", "--format", "-f", help="table (markdown, the docs' layout), json or csv.",
                            autocompletion=words(FORMATS)),
    video: Optional[List[Path]] = typer.Option(
        None, "--video", show_default=False,
        help="Time each stage of the real pipeline on these files instead: probe, sample, decode, "
             "preprocess (the steps of read_clip, as `vivit classify` reads a file), model, total. "
             "`--video *.mp4` works: files after the first are taken as arguments."),
    more_videos: Optional[List[Path]] = typer.Argument(None, show_default=False, metavar="[FILE]...",
                                                       help="More files for --video."),
    seed: int = typer.Option(0, "--seed", help="Seed for random weights, inputs and labels."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, show_default=False,
                                          help="torch CPU threads. [default: torch's choice]"),
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Compare eager and SDPA attention: time per clip, peak memory and output difference.

    One row per model, mode, dtype and batch size, in the layout of the transformers docs' SDPA tables
    (num_batches, batch_size, is cuda, is half, Speedup (%), Mem eager (MB), Mem sdpa (MB), Mem saved (%)),
    plus eager and sdpa ms per clip (median step / batch size) and the max abs difference between the
    two implementations' outputs for the same weights and input, so speed never hides a wrong result.

    \b
    Speedup (%)   = (eager ms / sdpa ms - 1) * 100
    Mem saved (%) = (eager MB / sdpa MB - 1) * 100      (MB = 2**20 bytes)
    spread (ms)   = slowest - fastest timed step per clip; "*" marks a speedup within that noise

    With no options a CPU run takes about a minute (random-vivit-b, batch 1, 2 timed steps); the docs'
    sweep needs explicit options, e.g. -b 1,2,4,8 --steps 10 --dtype float32,bfloat16 (an hour on 2 cores).
    --backend openvino times the OpenVINO-compiled model (compiled before the timed steps; cached on disk).

    Peak memory covers weights, input, activations and, in training, gradients and optimizer state.
    cuda: torch.cuda.max_memory_allocated, reset before each configuration. cpu: each configuration
    runs in a fresh subprocess; its peak is the bytes of the model's weights and input (counted from the
    tensors) plus how far the resident set's high-water mark (VmHWM, reset just before the first step)
    rose above the RSS of that moment. Imports and build transients so do not count; a configuration
    the kernel kills for lack of memory is an OOM row. mps: not measured.

    A configuration that runs out of memory gets a row saying so; larger batches of it are skipped and
    the run goes on. With --video, each file is read and classified once (after --warmup model passes)
    and the time of each stage is reported instead.
    """
    from vivitcli.benchmark import source

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    models = list(model) if model else [source.DEFAULT_MODEL]
    dtypes = _parse_dtypes(dtype)
    modes = _parse_list(mode, "--mode", MODES)
    videos = list(video or []) + list(more_videos or [])
    if more_videos and not video:
        raise UsageError("unexpected arguments: pass video files with --video FILE...")

    import torch

    dev = _pick_device(device, torch)
    backend = _check_backend(getattr(backend, "value", backend), dev)
    # A CPU default run takes about a minute (ViViT-B, 3 steps each of eager and sdpa at 12.6 + 6.6 s per step
    # on a quiet 2-core machine, README); the docs' sweep (batch 1-8, 10 steps) takes an hour there and is
    # asked for with explicit options.
    on_cpu = torch.device(dev).type == "cpu"
    sizes = _parse_batch_sizes(batch_sizes or ("1" if on_cpu else "1,2,4,8"))
    steps = steps if steps is not None else 2 if on_cpu else 10
    warmup = warmup if warmup is not None else 1 if on_cpu else 2
    if threads:
        torch.set_num_threads(threads)
    progress = _progress(quiet)
    if videos:
        _run_stages(models, videos, dev, dtypes[0], warmup, fmt, seed, progress, backend)
        return

    from vivitcli.benchmark import report, runner

    for name in models:
        _check_model(name)

    def on_progress(config, done, total):
        progress(f"[{done + 1}/{total}, {total - done - 1} more after this] {config.model} {config.mode} "
                 f"{config.dtype} batch {config.batch_size}: {config.attn}")

    rows = runner.run_benchmark(models, device=dev, batch_sizes=sizes, dtypes=dtypes, modes=modes,
                                steps=steps, warmup=warmup, seed=seed, threads=threads, on_progress=on_progress,
                                backend=backend)
    progress(None)
    methods = [m.mem_method for r in rows for m in (r.eager, r.sdpa) if m.mem_method]
    env = report.environment(dev, methods[0] if methods else "")
    out = {"table": lambda: report.to_table(rows, env), "json": lambda: report.to_json(rows, env),
           "csv": lambda: report.to_csv(rows)}[fmt]()
    typer.echo(out, nl=False)
    if any("error" in (r.eager.status, r.sdpa.status) for r in rows):
        raise typer.Exit(1)


def _parse_list(text: str, option: str, allowed: tuple[str, ...]) -> list[str]:
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if not items or bad:
        raise UsageError(f"{option}: expected a comma-separated list of {', '.join(allowed)}, got {text!r}")
    return list(dict.fromkeys(items))


def _parse_dtypes(text: str) -> list[str]:
    from vivitcli.benchmark.spec import normalize_dtype

    try:
        items = [normalize_dtype(t) for t in text.split(",") if t.strip()]
    except ValueError as err:
        raise UsageError(f"--dtype: {err}") from None
    if not items:
        raise UsageError("--dtype: expected a comma-separated list of float32, float16, bfloat16")
    return list(dict.fromkeys(items))


def _parse_batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--batch-sizes: expected comma-separated positive integers, got {text!r}")
    return sorted(set(sizes))


def _pick_device(device: str, torch) -> str:
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device: expected auto, cpu, cuda, cuda:N or mps, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VivitError(f"--device {device}: CUDA is not available to this torch ({torch.__version__})",
                         hint="use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise VivitError(f"--device {device}: MPS is not available on this machine", hint="use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device: expected auto, cpu, cuda, cuda:N or mps, got {device!r}")
    return device


def _check_backend(backend: str, dev: str) -> str:
    """torch or openvino for this device (a one-line UsageError when openvino is asked for but absent)."""
    from vivitcli.models.backends import resolve_backend

    return resolve_backend(backend, dev)


def _check_model(name: str) -> None:
    """Fail with one line before any measuring when a non-preset name does not load (the workers would
    each fail alone); this also downloads a hub checkpoint once, not once per worker."""
    from vivitcli.benchmark.source import resolve

    if resolve(name) is not None:
        return
    from vivitcli import load_model

    load_model(name, device="cpu", dtype="float32", attn="sdpa")


def _progress(quiet: bool):
    """A one-line status on stderr, only when stderr is a terminal and not --quiet."""
    import sys

    if quiet or not sys.stderr.isatty():
        return lambda text: None

    def show(text):
        sys.stderr.write("\r\033[K" + (f"measuring {text}" if text else ""))
        sys.stderr.flush()

    return show


def _run_stages(models, videos, dev, dtype, warmup, fmt, seed, progress, backend="torch") -> None:
    from vivitcli.benchmark import report, stages
    from vivitcli.benchmark.measure import build
    from vivitcli.benchmark.spec import Config

    if len(models) != 1:
        raise UsageError("--video times one model: pass a single --model")
    model = build(Config(model=models[0], device=dev, dtype=dtype, attn="sdpa", seed=seed, backend=backend))
    rows = stages.time_stages(model, videos, warmup=warmup, seed=seed,
                              on_progress=lambda p: progress(str(p) if p else None))
    progress(None)
    env = {**report.machine(dev), "model": models[0], "dtype": dtype, "attn": "sdpa", "backend": backend}
    out = {"table": lambda: stages.to_table(rows, env), "json": lambda: stages.to_json(rows, env),
           "csv": lambda: stages.to_csv(rows)}[fmt]()
    typer.echo(out, nl=False)
    if any(r.error for r in rows):
        raise typer.Exit(1)
