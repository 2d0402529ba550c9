"""What `vivit convert` is asked (ConvertOptions), what it reports (ConvertResult), and what a source reader
hands the pipeline (Loaded). No torch here: the CLI builds options before anything heavy is imported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vivitcli.errors import UsageError

DTYPES = ("float32", "float16", "bfloat16")
# Verification tolerance on max |Δ| relative to the output scale max(1, max |reference|): float32 results must
# agree to rounding; half-precision results carry the rounding of every weight through every layer.
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 6e-2}
PREPROCESS = ("hf", "original")


@dataclass
class ConvertOptions:
    dtype: str | None = None            # None: keep the source's floating dtype
    labels: str | None = None           # a shipped list (kinetics400, kinetics600, ssv2, epic-kitchens-100) or a file
    class_splits: str | None = None     # "noun:300,verb:97": one projection holding several heads (factorised encoder)
    strip_head: bool = False
    verify: bool = True
    force: bool = False
    num_frames: int | None = None       # VideoMAE .pth: default 16; Scenic: read from the position table
    image_size: int = 224
    head_dim: int = 64
    num_heads: int | None = None
    decoder_num_heads: int | None = None
    # hf: what the hub checkpoints ship; original: the release's own pipeline. None: original for a Scenic
    # factorised encoder (no hub port to agree with), hf for everything else (the model-1 K400 release then
    # matches google/vivit-b-16x2-kinetics400 exactly).
    preprocess: str | None = None
    tolerance: float | None = None      # overrides TOLERANCE[dtype] (relative)
    seed: int = 0
    device: str = "cpu"                 # where --verify runs: cpu, cuda, cuda:N, or auto (cuda when available)


@dataclass
class ConvertResult:
    src: Path
    dst: Path
    format: str
    architecture: str
    dtype: str
    num_params: int
    num_labels: int
    label_source: str
    verified: bool = False
    compared: str = ""                  # "logits" or "features"
    max_abs_diff: float | None = None
    tolerance: float | None = None
    class_splits: list | None = None    # [(head, size), ...] for a multi-head classifier
    notes: list = field(default_factory=list)


@dataclass
class Loaded:
    """What a source reader returns: the config.json dict, the state dict (torch tensors, on-disk key layout),
    preprocessor_config.json, and `reference(pixel_values) -> {'logits'?, 'features'}` computed over the
    source's own layout (never through the key mapping)."""

    config: dict
    state: dict
    preprocessor: dict
    reference: Callable
    notes: list = field(default_factory=list)


def check_options(opts: ConvertOptions) -> None:
    if opts.dtype is not None and opts.dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {opts.dtype!r}")
    if opts.preprocess is not None and opts.preprocess not in PREPROCESS:
        raise UsageError(f"--preprocess must be hf or original, got {opts.preprocess!r}")
    if opts.strip_head and (opts.labels or opts.class_splits):
        raise UsageError("--labels / --class-splits and --strip-head contradict each other (a stripped model has "
                         "no classes)")
    for name in ("num_frames", "image_size", "head_dim", "num_heads", "decoder_num_heads"):
        value = getattr(opts, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if opts.tolerance is not None and opts.tolerance < 0:
        raise UsageError(f"--tolerance must be >= 0, got {opts.tolerance}")
    if opts.class_splits is not None:
        parse_class_splits(opts.class_splits)


def parse_class_splits(spec: str) -> list[tuple[str, int]]:
    """"noun:300,verb:97" → [("noun", 300), ("verb", 97)] (logit order); UsageError for anything else."""
    out = []
    for part in str(spec).split(","):
        name, sep, size = part.strip().partition(":")
        if not sep or not name.strip() or not size.strip().isdigit() or int(size) <= 0:
            raise UsageError(f"--class-splits {spec}: expected NAME:SIZE pairs in logit order, e.g. noun:300,verb:97")
        out.append((name.strip(), int(size)))
    if len({n for n, _ in out}) != len(out):
        raise UsageError(f"--class-splits {spec}: a head name appears twice")
    return out
