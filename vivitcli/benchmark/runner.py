"""The measurement loop: every (model, mode, dtype, batch size), eager then sdpa, one Row each.

A configuration that runs out of memory becomes a row saying so and the run goes on; larger batch sizes
of the same model, mode, dtype and attention are then skipped (they would only run out again), and say why.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable

from vivitcli.benchmark.rows import Row
from vivitcli.benchmark.spec import ATTNS, OOM, SKIPPED, Config, Measurement

Measure = Callable[[Config], Measurement]


def default_measure(device_type: str) -> Measure:
    """CPU: each configuration in a fresh worker process (the only right CPU peak-memory reading).
    CUDA and MPS: in this process; CUDA's allocator peak is reset per configuration."""
    if device_type == "cpu":
        from vivitcli.benchmark.worker import run_isolated

        return run_isolated
    from vivitcli.benchmark.measure import measure

    return measure


def plan(models: Iterable[str], modes: Iterable[str], dtypes: Iterable[str],
         batch_sizes: Iterable[int]) -> list[tuple[str, str, str, int]]:
    """(model, mode, dtype, batch size) in run order; batch sizes ascending so an OOM can skip the rest."""
    sizes = sorted(set(batch_sizes))
    return [(m, mode, dt, b) for m in models for mode in modes for dt in dtypes for b in sizes]


def run_benchmark(
    models: list[str],
    *,
    device: str,
    batch_sizes: list[int],
    dtypes: list[str],
    modes: list[str],
    steps: int,
    warmup: int,
    seed: int = 0,
    threads: int | None = None,
    model_configs: dict[str, dict] | None = None,
    measure: Measure | None = None,
    on_progress: Callable[[Config, int, int], None] | None = None,
    backend: str = "torch",
) -> list[Row]:
    """Measure every planned configuration with both attention implementations.

    model_configs: name -> HF config dict for models built with random weights (presets, test models);
    other names are loaded as checkpoints. measure: how one Config is measured (default: per device,
    see default_measure). on_progress(config, done, total) is called before each measurement (done of total
    measurements finished so far; skipped ones count as done). backend: torch | openvino | auto.
    """
    import torch

    measure = measure or default_measure(torch.device(device).type)
    model_configs = model_configs or {}
    ran_out: dict[tuple, int] = {}  # (model, mode, dtype, attn) -> smallest batch size that ran out
    rows = []
    planned = plan(models, modes, dtypes, batch_sizes)
    total, done = len(planned) * len(ATTNS), 0
    for model, mode, dtype, batch in planned:
        base = Config(model=model, device=device, dtype=dtype, batch_size=batch, mode=mode, steps=steps,
                      warmup=warmup, seed=seed, threads=threads, model_config=model_configs.get(model),
                      backend=backend)
        results = {}
        for attn in ATTNS:
            key = (model, mode, dtype, attn)
            if key in ran_out:
                results[attn] = Measurement(status=SKIPPED,
                                            error=f"skipped: batch size {ran_out[key]} ran out of memory")
                done += 1
                continue
            config = replace(base, attn=attn)
            if on_progress is not None:
                on_progress(config, done, total)
            results[attn] = measure(config)
            done += 1
            if results[attn].status == OOM:
                ran_out[key] = batch
        rows.append(Row(model=model, mode=mode, device=device, dtype=dtype, batch_size=batch,
                        num_batches=steps, warmup=warmup, eager=results["eager"], sdpa=results["sdpa"],
                        backend=backend))
    return rows
