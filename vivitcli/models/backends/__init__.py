"""Where a loaded model runs: "torch" (the reference) or "openvino" (the native module exported with
OpenVINO's converter and compiled for this CPU); "auto" picks OpenVINO on a CPU when it is installed.

    from vivitcli import load_model
    model = load_model("videomae", backend="openvino", dtype="auto")   # same __call__/embed/metadata API
    model = apply_backend(torch_model, "auto", dtype="auto")           # wrap an already loaded VideoModel

Torch-free at import time: the CLI checks `--backend` before torch is imported.
"""

from __future__ import annotations

from vivitcli.errors import UsageError

BACKENDS = ("torch", "openvino", "auto")
INSTALL_HINT = "pip install 'vivitcli[openvino]'"


def check_backend(backend: str) -> str:
    """The canonical backend name; UsageError for an unknown one or for "openvino" when it is not
    installed (checked before a model is loaded, so the error comes first)."""
    name = str(backend or "torch").strip().lower()
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r} (use {', '.join(BACKENDS)})")
    if name == "openvino" and not openvino_available():
        raise UsageError(f"backend 'openvino' needs the openvino package: {INSTALL_HINT} (or use --backend torch)")
    return name


def openvino_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def resolve_backend(backend: str, device) -> str:
    """"torch" or "openvino" for `backend` on `device` (a torch.device or its name): auto is OpenVINO on a
    CPU when the openvino package is installed, else torch. OpenVINO runs on the CPU only."""
    name = check_backend(backend)
    kind = str(getattr(device, "type", device) or "cpu").split(":")[0]
    if name == "auto":
        return "openvino" if kind == "cpu" and openvino_available() else "torch"
    if name == "openvino" and kind not in ("cpu", "auto"):
        raise UsageError(f"backend 'openvino' runs on the CPU, not {device!r} (use --device cpu or --backend torch)")
    return name


def apply_backend(model, backend: str = "torch", *, dtype="auto", **options):
    """`model` (a loaded VideoModel) itself for the torch backend, else an OpenVINO runner around it with
    the same __call__ / embed / forward_features / metadata API. dtype: the precision asked for (auto,
    float32, bfloat16, ...) — for OpenVINO the inference precision hint, the torch module stays float32.
    options go to OpenVINOModel (cache_dir, threads)."""
    if resolve_backend(backend, model.device) == "torch":
        return model
    from vivitcli.models.backends.openvino import OpenVINOModel

    return OpenVINOModel(model, dtype=dtype, **options)
