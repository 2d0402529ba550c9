"""device="auto"|cpu|cuda[:i]|mps and dtype="auto"|float32|float16|bfloat16: the one home of their spellings
and of how "auto" resolves. The name tables are torch-free (the CLI checks options before importing torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vivitcli.errors import UsageError

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = ("float32", "float16", "bfloat16")
# Every accepted spelling -> its canonical name.
DTYPE_SPELLINGS = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}
DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def canonical_dtype(name, *, allow_auto: bool = True) -> str:
    """'bf16' -> 'bfloat16', 'torch.float32' -> 'float32'; 'auto' kept when allowed; UsageError otherwise."""
    key = str(name or "auto").strip().lower().removeprefix("torch.")
    if key == "auto" and allow_auto:
        return key
    if key not in DTYPE_SPELLINGS:
        choices = ("auto, " if allow_auto else "") + ", ".join(DTYPE_NAMES)
        raise UsageError(f"unknown dtype {name!r} (use {choices})")
    return DTYPE_SPELLINGS[key]


def check_device_name(device) -> str:
    """A device spelling checked without torch (auto, cpu, cuda, cuda:N, mps); UsageError otherwise."""
    name = str(device or "auto").strip().lower()
    base, _, index = name.partition(":")
    if base not in ("auto", "cpu", "cuda", "mps") or (index and (base != "cuda" or not index.isdigit())):
        raise UsageError(f"unknown device {device!r} (use {', '.join(DEVICE_NAMES)})")
    return name


def resolve_device(device="auto") -> "torch.device":
    """auto: cuda when available, else mps, else cpu. Asking for an absent accelerator is a UsageError."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    name = str(device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {device!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but CUDA is not available here (use cpu or auto)")
    if dev.type == "mps" and not _mps_available():
        raise UsageError(f"device {device!r} requested but MPS is not available here (use cpu or auto)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unsupported device {device!r} (use auto, cpu, cuda, cuda:N or mps)")
    return dev


def resolve_dtype(dtype="auto", device: "torch.device | None" = None) -> "torch.dtype":
    """auto: on CPU bfloat16 where it is native (AVX512_BF16 or AMX: models.backends.cpu), else float32 (the
    reference numerics); bfloat16 on CUDA when supported else float16; float16 on MPS."""
    import torch

    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise UsageError(f"unsupported dtype {dtype} (use {', '.join(DTYPE_NAMES)})")
        return dtype
    name = canonical_dtype(dtype)
    if name == "auto":
        kind = device.type if device is not None else "cpu"
        if kind == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if kind == "mps":
            return torch.float16
        from vivitcli.models.backends.cpu import cpu_has_native_bf16

        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return getattr(torch, name)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
