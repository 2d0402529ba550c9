"""device="auto"|cpu|cuda[:i]|mps and dtype="auto"|float32|float16|bfloat16 as the loaders accept them."""

from __future__ import annotations

import torch

from vivitcli.errors import UsageError

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def resolve_device(device="auto") -> torch.device:
    """auto: cuda when available, else mps, else cpu. Asking for an absent accelerator is a UsageError."""
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


def resolve_dtype(dtype="auto", device: torch.device | None = None) -> torch.dtype:
    """auto: float32 on CPU (the reference numerics), bfloat16 on CUDA when supported else float16,
    float16 on MPS."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise UsageError(f"unsupported dtype {dtype} (use float32, float16 or bfloat16)")
        return dtype
    name = str(dtype or "auto").lower().removeprefix("torch.")
    if name == "auto":
        kind = device.type if device is not None else "cpu"
        if kind == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if kind == "mps":
            return torch.float16
        return torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise UsageError(f"unknown dtype {dtype!r} (use auto, float32, float16 or bfloat16)") from None


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
