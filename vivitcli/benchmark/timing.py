"""Wall-clock timing of a step function, with the device synchronised so that asynchronous GPU work is
counted in the step that launched it."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def synchronizer(device) -> Callable[[], None]:
    """A no-argument function that waits for all queued work on `device` (a torch.device)."""
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def time_steps(step: Callable[[], object], steps: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    """Run `step` `steps` times; milliseconds of each run, each measured from a synchronised start."""
    times = []
    sync()
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def typical_ms(step_ms: list[float]) -> float | None:
    """The median step: on a machine shared with other work, one descheduled step should not move the row."""
    return statistics.median(step_ms) if step_ms else None
