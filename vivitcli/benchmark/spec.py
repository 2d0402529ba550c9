"""What one measurement is asked to do (Config) and what it reports (Measurement); both travel as JSON
between the benchmark and its per-configuration worker process."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ATTNS = ("eager", "sdpa")
MODES = ("inference", "training", "pretraining", "pretraining-training")  # pretraining*: benchmark/pretraining.py
DTYPES = ("float32", "float16", "bfloat16")
DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16",
                 "bf16": "bfloat16"}
HALF_DTYPES = ("float16", "bfloat16")

# Measurement.status values.
OK, OOM, ERROR, SKIPPED = "ok", "oom", "error", "skipped"


@dataclass
class Config:
    """One configuration: a model at one attention implementation, dtype, batch size and mode."""

    model: str  # what outputs call it: a preset name, checkpoint directory or hub id
    device: str = "cpu"
    dtype: str = "float32"
    attn: str = "sdpa"
    batch_size: int = 1
    mode: str = "inference"
    steps: int = 10
    warmup: int = 2
    seed: int = 0
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    backend: str = "torch"      # torch | openvino | auto (vivitcli.models.backends)
    # An HF config.json dict: build this architecture with seeded random weights instead of loading `model`.
    model_config: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        return cls(**data)


@dataclass
class Measurement:
    """What one configuration measured. step_ms: wall time of each timed step (forward, or forward +
    backward + optimizer step). output: the first forward's logits as float32 nested lists, for comparing
    eager with sdpa. peak_mem_bytes is None where not measured."""

    status: str = OK
    step_ms: list[float] = field(default_factory=list)
    peak_mem_bytes: int | None = None
    mem_method: str = ""
    output: list | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Measurement":
        return cls(**data)

    @property
    def ok(self) -> bool:
        return self.status == OK


def normalize_dtype(name: str) -> str:
    """'bf16' -> 'bfloat16'; ValueError for anything not in DTYPES."""
    key = name.strip().lower()
    key = DTYPE_ALIASES.get(key, key)
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {name!r} (choose from {', '.join(DTYPES)})")
    return key
