"""What this CPU can do natively, read from the hardware (not guessed from a model name).

bfloat16 pays off on a CPU only with native bf16 arithmetic: AVX512_BF16 (dot products of bf16 pairs,
Cooper Lake / Sapphire Rapids / Zen 4 and later) or AMX (bf16 tile multiply). Without them torch and
OpenVINO emulate bf16 with float32 instructions plus conversions: OpenVINO's emulated bf16 ran VideoMAE
40x slower than its float32 here (Ice Lake class, AVX-512 without BF16), so `--dtype auto` must not pick it.
"""

from __future__ import annotations

import functools
import os

# Linux /proc/cpuinfo flag names of native bf16 arithmetic (x86; "bf16" is ARMv8.6's BFDOT/BFMMLA).
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
# Set to 1 or 0 to override the detection (virtual machines sometimes hide flags the CPU has).
ENV_OVERRIDE = "VIVIT_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512_BF16 or AMX), from $VIVIT_CPU_BF16 when set
    to 0/1, else the kernel's CPU flags, else (no /proc/cpuinfo: macOS, Windows) torch's own CPU probe."""
    forced = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    return _detect()


@functools.lru_cache(maxsize=1)
def _detect() -> bool:
    flags = cpu_flags()
    if flags is not None:
        return any(flag in flags for flag in BF16_FLAGS)
    return _torch_probe()


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The first processor's flags from /proc/cpuinfo (x86 "flags", ARM "Features"); None where absent."""
    try:
        with open(path) as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def cpu_name() -> str:
    """The CPU's marketing name ("model name" in /proc/cpuinfo), else what platform knows."""
    import platform

    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_probe() -> bool:
    """torch's CPU capability probe (private helpers, present in torch >= 2.3); False when unavailable."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in probes:
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except Exception:  # noqa: BLE001 - a private probe that fails means "unknown": not native
            continue
    return False
