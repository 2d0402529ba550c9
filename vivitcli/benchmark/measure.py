"""Measure one configuration in this process: build the model, time its steps, read its peak memory, keep
its first output. Out-of-memory and other failures become a Measurement with a status, never an exception,
so that a benchmark run goes on past them."""

from __future__ import annotations

import gc
import re

from vivitcli.benchmark import memory, timing
from vivitcli.benchmark.spec import ERROR, OK, OOM, Config, Measurement

_OOM_TEXT = re.compile(r"out of memory|can't allocate memory|cannot allocate memory|not enough memory", re.I)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the ways torch and Python report exhausted memory on CUDA, MPS and CPU."""
    import torch

    if isinstance(exc, MemoryError):
        return True
    oom_type = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and bool(_OOM_TEXT.search(str(exc)))


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def build(config: Config):
    """The model a configuration runs on its backend (vivitcli.models.backends.apply_backend)."""
    from vivitcli.models.backends import apply_backend

    return apply_backend(build_torch(config), config.backend, dtype=config.dtype, threads=config.threads)


def build_torch(config: Config):
    """The VideoModel a configuration runs: seeded random weights for a random-weight name or config dict (so
    eager and sdpa, measured in separate processes, get identical weights), else the loaded checkpoint."""
    from vivitcli.benchmark.source import resolve

    if config.mode.startswith("pretraining"):  # VideoMAE with its decoder
        from vivitcli.benchmark import pretraining
        return pretraining.build(config)

    model_config = config.model_config if config.model_config is not None else resolve(config.model)
    kwargs = dict(device=config.device, dtype=config.dtype, attn=config.attn)
    if model_config is not None:
        from vivitcli.models import build_model

        return build_model(model_config, name=config.model, seed=config.seed, **kwargs)
    from vivitcli import load_model

    return load_model(config.model, **kwargs)


def input_shape(model, batch_size: int) -> tuple[int, int, int, int, int]:
    """(B, T, C, H, W) the model takes at its native frame count and resolution."""
    size = model.image_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    channels = int(model.config.get("num_channels", 3))
    return batch_size, int(model.num_frames), channels, h, w


def make_inputs(model, batch_size: int, seed: int):
    """Seeded standard-normal pixels (the scale preprocessed pixels have), made on the CPU so that every
    device and process gets the same values."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.randn(input_shape(model, batch_size), generator=gen)


def _output(model, pixels):
    """Logits; a checkpoint without a classifier (base or pre-training) gives its pooled embedding instead."""
    if getattr(model, "has_classifier", True):
        return model(pixels)
    return model.embed(pixels)


def make_step(model, pixels, mode: str, seed: int):
    """A no-argument step returning the model's output (logits, or the embedding of a head-less
    checkpoint). inference: one forward under inference_mode. training: forward, a loss (cross-entropy
    against fixed random labels; mean square for an embedding), backward and an AdamW step."""
    import torch

    if mode.startswith("pretraining"):  # masked forward + loss (+ training step): benchmark/pretraining.py
        from vivitcli.benchmark import pretraining
        return pretraining.make_step(model, pixels, mode, seed)

    if mode == "inference":
        model.eval()

        def infer():
            with torch.inference_mode():
                return _output(model, pixels)

        return infer

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    gen = torch.Generator().manual_seed(seed + 1)
    classifier = getattr(model, "has_classifier", True)
    labels = None

    def train():
        nonlocal labels
        optimizer.zero_grad(set_to_none=True)
        out = _output(model, pixels)
        if not classifier:
            loss = out.float().pow(2).mean()
        else:
            if labels is None:
                labels = torch.randint(out.shape[-1], (out.shape[0],), generator=gen).to(out.device)
            loss = torch.nn.functional.cross_entropy(out.float(), labels)
        loss.backward()
        optimizer.step()
        return out.detach()

    return train


def measure(config: Config, *, isolated: bool = False, builder=build) -> Measurement:
    """Run one configuration here. `isolated`: this process does nothing else (the worker), which is what
    makes a CPU peak-RSS reading mean this configuration's memory; otherwise CPU memory is not reported.

    The first step (part of the warmup) yields the output kept for the eager/sdpa comparison; with
    warmup=0 it is also the first timed step.
    """
    import torch

    device = torch.device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    result = Measurement()
    try:
        _run(config, device, isolated, builder, result)
        result.status = OK
    except Exception as exc:  # noqa: BLE001 - every failure becomes a row; the run goes on
        result = Measurement(status=OOM if is_out_of_memory(exc) else ERROR, error=one_line(exc),
                             mem_method=result.mem_method)
    # The model, its inputs and any traceback frames holding them are gone now: free the device for the
    # next configuration.
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def _run(config: Config, device, isolated: bool, builder, result: Measurement) -> None:
    meter = memory.meter_for(device, isolated=isolated)
    result.mem_method = meter.method
    model = builder(config)
    pixels = make_inputs(model, config.batch_size, config.seed).to(device=device, dtype=torch_dtype(config.dtype))
    step = make_step(model, pixels, config.mode, config.seed)
    if hasattr(model, "compiled_for"):
        # OpenVINO: convert + compile (or load the cached blob) now, so that neither counts as a step nor as
        # the configuration's peak; its weights are then counted as those of the float32 module it came from.
        model.compiled_for(tuple(pixels.shape[1:]))
    meter.exclude_setup(memory.held_bytes(getattr(model, "torch_model", model), pixels))
    sync = timing.synchronizer(device)

    def first_step():
        result.output = step().detach().float().cpu().tolist()

    first = timing.time_steps(first_step, 1, sync)
    if config.warmup > 1:
        timing.time_steps(step, config.warmup - 1, sync)
    timed = timing.time_steps(step, config.steps - (1 if config.warmup == 0 else 0), sync)
    result.step_ms = (first if config.warmup == 0 else []) + timed
    result.peak_mem_bytes = meter.peak_bytes()
