"""One result row per (model, mode, dtype, batch size): eager against sdpa, with the arithmetic of the
transformers docs' SDPA tables.

    Speedup (%)   = (eager time / sdpa time - 1) * 100     e.g. 1.154x faster -> 15.4
    Mem saved (%) = (eager peak / sdpa peak - 1) * 100     e.g. 715.807 / 317.079 MB -> 125.75
    spread (ms)   = slowest - fastest timed step, per clip; a row is "noisy" when either side's spread
                    exceeds the eager/sdpa difference it reports (on a shared machine: rerun it)

(The docs' ViViT inference table: 715.807 and 317.079 MB give its 125.75 %.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vivitcli.benchmark.memory import MB
from vivitcli.benchmark.spec import HALF_DTYPES, OK, Measurement
from vivitcli.benchmark.timing import typical_ms

# Flat row fields, in the order JSON objects and CSV columns use.
FIELDS = (
    "model", "mode", "device", "backend", "dtype", "batch_size", "num_batches", "warmup", "is_cuda", "is_half",
    "eager_ms_per_clip", "sdpa_ms_per_clip", "speedup_pct", "eager_spread_ms", "sdpa_spread_ms", "noisy",
    "eager_mem_mb", "sdpa_mem_mb", "mem_saved_pct", "max_abs_diff",
    "eager_status", "sdpa_status", "note",
)


def speedup_pct(eager_ms: float | None, sdpa_ms: float | None) -> float | None:
    """How much faster sdpa is than eager, in percent of sdpa's time; None when either is missing."""
    if eager_ms is None or sdpa_ms is None or sdpa_ms <= 0:
        return None
    return (eager_ms / sdpa_ms - 1.0) * 100.0


def mem_saved_pct(eager_mb: float | None, sdpa_mb: float | None) -> float | None:
    """The docs' 'Mem saved (%)': eager's peak over sdpa's, minus one, in percent; None when either is missing."""
    if eager_mb is None or sdpa_mb is None or sdpa_mb <= 0:
        return None
    return (eager_mb / sdpa_mb - 1.0) * 100.0


def max_abs_diff(a: list | None, b: list | None) -> float | None:
    """Largest |a - b| over two equally shaped nested lists of numbers; None when either is missing.
    NaN anywhere gives NaN (a NaN output must not look like agreement)."""
    if a is None or b is None:
        return None
    import torch

    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    if ta.shape != tb.shape:
        raise ValueError(f"outputs differ in shape: {tuple(ta.shape)} vs {tuple(tb.shape)}")
    diff = (ta - tb).abs()
    if torch.isnan(diff).any():
        return math.nan
    return float(diff.max()) if diff.numel() else 0.0


@dataclass
class Row:
    model: str
    mode: str
    device: str
    dtype: str
    batch_size: int
    num_batches: int
    warmup: int
    eager: Measurement
    sdpa: Measurement
    backend: str = "torch"

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def is_half(self) -> bool:
        return self.dtype in HALF_DTYPES

    def ms_per_clip(self, m: Measurement) -> float | None:
        ms = typical_ms(m.step_ms) if m.ok else None
        return None if ms is None else ms / self.batch_size

    def spread_ms(self, m: Measurement) -> float | None:
        """Slowest minus fastest timed step, per clip; None with fewer than two steps."""
        if not m.ok or len(m.step_ms) < 2:
            return None
        return (max(m.step_ms) - min(m.step_ms)) / self.batch_size

    @property
    def noisy(self) -> bool | None:
        """True when a side's step-to-step spread exceeds |eager - sdpa| (the difference the row reports):
        the row's speedup is then within the noise. None when not measurable."""
        eager, sdpa = self.ms_per_clip(self.eager), self.ms_per_clip(self.sdpa)
        spreads = [self.spread_ms(self.eager), self.spread_ms(self.sdpa)]
        if eager is None or sdpa is None or None in spreads:
            return None
        return max(spreads) > abs(eager - sdpa)

    @staticmethod
    def mem_mb(m: Measurement) -> float | None:
        return None if not m.ok or m.peak_mem_bytes is None else m.peak_mem_bytes / MB

    @property
    def speedup_pct(self) -> float | None:
        return speedup_pct(self.ms_per_clip(self.eager), self.ms_per_clip(self.sdpa))

    @property
    def mem_saved_pct(self) -> float | None:
        return mem_saved_pct(self.mem_mb(self.eager), self.mem_mb(self.sdpa))

    @property
    def max_abs_diff(self) -> float | None:
        if not (self.eager.ok and self.sdpa.ok):
            return None
        return max_abs_diff(self.eager.output, self.sdpa.output)

    @property
    def note(self) -> str:
        """Why a cell is empty: each side that did not run, with its reason."""
        parts = [f"{name}: {m.error or m.status}" for name, m in (("eager", self.eager), ("sdpa", self.sdpa))
                 if m.status != OK]
        return "; ".join(parts)

    def to_dict(self) -> dict:
        """The flat record JSON and CSV write (keys in FIELDS order; None where not measured)."""
        values = {
            "model": self.model, "mode": self.mode, "device": self.device, "backend": self.backend,
            "dtype": self.dtype,
            "batch_size": self.batch_size, "num_batches": self.num_batches, "warmup": self.warmup,
            "is_cuda": self.is_cuda, "is_half": self.is_half,
            "eager_ms_per_clip": self.ms_per_clip(self.eager), "sdpa_ms_per_clip": self.ms_per_clip(self.sdpa),
            "speedup_pct": self.speedup_pct, "eager_spread_ms": self.spread_ms(self.eager),
            "sdpa_spread_ms": self.spread_ms(self.sdpa), "noisy": self.noisy,
            "eager_mem_mb": self.mem_mb(self.eager), "sdpa_mem_mb": self.mem_mb(self.sdpa),
            "mem_saved_pct": self.mem_saved_pct, "max_abs_diff": self.max_abs_diff,
            "eager_status": self.eager.status, "sdpa_status": self.sdpa.status, "note": self.note,
        }
        return {key: values[key] for key in FIELDS}
