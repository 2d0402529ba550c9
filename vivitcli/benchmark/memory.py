"""Peak memory of one benchmark configuration, measured the way that is right for each device.

Both methods report what the configuration needs at its peak: weights, input, activations and, in
training, gradients and optimizer state.

CUDA: the caching allocator's own counters. `torch.cuda.max_memory_allocated` is reset before the model is
built, so the peak covers everything the configuration allocated, and nothing the allocator merely caches.

CPU: there is no allocator counter, and a process's peak RSS only ever grows, so each configuration runs
in a fresh process (see `vivitcli.benchmark.worker`). Building a model there also imports modules and
makes transient copies (a float32 init cast to bfloat16), which are not the configuration's memory. So:

    peak = bytes of the model's parameters, buffers and input (exact, counted from the tensors)
         + (peak RSS during the steps - RSS just before them)

Before the steps, freed heap is handed back to the OS (malloc_trim) and the kernel's high-water mark is
reset (/proc/self/clear_refs), so VmHWM afterwards is the steps' own peak: activations, gradients,
optimizer state, allocator slack, and the few MB of library code the first step pages in. Where those
Linux interfaces are missing, the lifetime peak (ru_maxrss) is used and the method string says so.

MB here means 2**20 bytes, as in the tables of the transformers docs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import resource
import sys

MB = 1024 * 1024

CUDA_METHOD = "cuda: torch.cuda.max_memory_allocated, reset before each configuration (weights included)"
RSS_METHOD = ("cpu: weights + input bytes + peak RSS growth (VmHWM) during the steps, one fresh subprocess "
              "per configuration")
MAXRSS_METHOD = ("cpu: weights + input bytes + lifetime peak RSS (ru_maxrss) above the RSS before the steps, "
                 "one fresh subprocess per configuration")
NO_METHOD = "not measured on this device"

_STATUS = "/proc/self/status"


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS) as fh:
            text = fh.read()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def current_rss() -> int | None:
    """Resident set size of this process in bytes (None where the OS does not say)."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def peak_rss() -> int:
    """High-water mark of the resident set in bytes since start or the last `reset_peak_rss`."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux but bytes on macOS.
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def reset_peak_rss() -> bool:
    """Set the RSS high-water mark to the current RSS (Linux >= 4.0). False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def release_free_heap() -> None:
    """Give freed heap pages back to the OS, so that memory a finished step freed stops counting as resident."""
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def volunteer_for_oom_killer() -> None:
    """Make this process the kernel OOM killer's first choice, so a configuration too big for RAM kills
    its own subprocess (one OOM row) rather than something else on the machine."""
    try:
        with open(f"/proc/{os.getpid()}/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass


class RssPeak:
    """Peak memory of one configuration in a fresh process, from tensor sizes and the RSS high-water mark.

        meter = RssPeak()
        model, pixels = build(...)
        meter.exclude_setup(held_bytes(model, pixels))   # just before the first step
        ... run the steps ...
        meter.peak_bytes()
    """

    method = RSS_METHOD

    def __init__(self):
        self.held = 0
        self.before = 0

    def exclude_setup(self, held: int = 0) -> None:
        self.held = held
        release_free_heap()
        if not reset_peak_rss():
            self.method = MAXRSS_METHOD
        self.before = current_rss() or 0

    def peak_bytes(self) -> int:
        return self.held + max(0, peak_rss() - self.before)


def held_bytes(*objects) -> int:
    """Bytes of the distinct tensor storages in modules (parameters and buffers) and tensors, each counted once
    (tied or fused weights share a storage)."""
    import torch

    storages = {}
    for obj in objects:
        tensors = [*obj.parameters(), *obj.buffers()] if isinstance(obj, torch.nn.Module) else [obj]
        for t in tensors:
            st = t.untyped_storage()
            storages[(st.device, st.data_ptr())] = st.nbytes()
    return sum(storages.values())


class CudaPeak:
    """Peak allocated CUDA memory above what was allocated before the configuration started."""

    method = CUDA_METHOD

    def __init__(self, device):
        import torch

        self._torch = torch
        self.device = device
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        self.baseline = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)

    def exclude_setup(self, held: int = 0) -> None:
        # The allocator counted the model and input as they were made; a CPU-side build leaves nothing here.
        pass

    def peak_bytes(self) -> int:
        self._torch.cuda.synchronize(self.device)
        return max(0, self._torch.cuda.max_memory_allocated(self.device) - self.baseline)


class NoPeak:
    """Devices without a peak counter (MPS): memory columns stay empty rather than guessed."""

    method = NO_METHOD

    def exclude_setup(self, held: int = 0) -> None:
        pass

    def peak_bytes(self) -> None:
        return None


def meter_for(device, *, isolated: bool):
    """The right meter for a torch.device. CPU numbers are only meaningful in a fresh process (isolated)."""
    if device.type == "cuda":
        return CudaPeak(device)
    if device.type == "cpu" and isolated:
        return RssPeak()
    return NoPeak()
