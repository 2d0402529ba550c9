"""A VideoModel run by OpenVINO on the CPU: same __call__ / embed / forward_features / metadata API.

The torch module's `_features` (tokens → blocks → final norm, the heavy part) is exported with
`openvino.convert_model` (TorchScript tracing of the native module, no ONNX file), with a dynamic batch
dimension, and compiled for the CPU with the inference precision hint of `dtype` (bf16 or f32). One compiled
model per input shape (frames, channels, height, width). Pooling and the classifier (a mean and one small
matrix product) stay in torch float32 on the OpenVINO output, so every pool works on one compiled model.

Compiled models are cached on disk — <cache>/openvino/<key>.blob, written by `export_model` and read by
`import_model` — so a second run skips the tracing (seconds to a minute). The key hashes everything the
compiled graph depends on: the weights' bytes and config (checkpoint content, not its path), the attention
implementation, the input shape, the precision, the OpenVINO version, the CPU's name and OpenVINO's view of
its capabilities, and the source of vivitcli/models (the graph's code). <cache> is $VIVIT_CACHE, else
$XDG_CACHE_HOME/vivitcli (~/.cache/vivitcli). A blob that does not import is rebuilt and replaced.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
from pathlib import Path

import torch

from vivitcli.errors import UsageError
from vivitcli.models.backends import INSTALL_HINT

# OpenVINO inference precision hint per torch dtype name.
PRECISION = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
# OPTIMIZATION_CAPABILITIES entry that says the CPU plugin computes that precision natively.
CAPABILITY = {"bf16": "BF16", "f16": "FP16", "f32": "FP32"}
# Bump when the exported graph's meaning changes in a way the source hash cannot see.
CACHE_FORMAT = 1


def _openvino():
    try:
        import openvino
    except ImportError:
        raise UsageError(f"backend 'openvino' needs the openvino package: {INSTALL_HINT} "
                         f"(or use --backend torch)") from None
    return openvino


_CORE = None
_CORE_LOCK = threading.Lock()


def core():
    """The process's one openvino.Core (it owns the CPU plugin and its thread pools)."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = _openvino().Core()
        return _CORE


def capabilities() -> tuple[str, ...]:
    """What OpenVINO's CPU plugin says this CPU computes natively (e.g. FP32, BF16, INT8)."""
    return tuple(core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def precision_for(dtype="auto") -> str:
    """The OpenVINO precision hint (f32, bf16, f16) for a dtype request. auto: bf16 where OpenVINO computes
    it natively, else f32. An explicit bfloat16/float16 the CPU lacks is a UsageError: OpenVINO would emulate
    it (VideoMAE ran 40x slower than f32 that way on an AVX-512 CPU without BF16)."""
    from vivitcli.models.device import canonical_dtype

    name = canonical_dtype(dtype) if not isinstance(dtype, torch.dtype) else str(dtype).removeprefix("torch.")
    caps = capabilities()
    if name == "auto":
        from vivitcli.models.backends.cpu import cpu_has_native_bf16

        return "bf16" if cpu_has_native_bf16() and CAPABILITY["bf16"] in caps else "f32"
    hint = PRECISION[name]
    if CAPABILITY[hint] not in caps:
        raise UsageError(f"backend 'openvino': this CPU has no native {name} (OpenVINO reports "
                         f"{', '.join(caps)}); use --dtype float32 or --backend torch")
    return hint


def default_cache_dir() -> Path:
    """<cache>/openvino (vivitcli.cache: $VIVIT_CACHE, else $XDG_CACHE_HOME/vivitcli)."""
    from vivitcli.cache import cache_dir

    return cache_dir("openvino")


class OpenVINOModel:
    """Runs `model` (a VideoModel, moved to float32 on the CPU for export) with OpenVINO.

    dtype: auto | float32 | bfloat16 (| float16 where the CPU has it): the inference precision.
    cache_dir: where compiled models are kept (None: default_cache_dir(); False: no disk cache).
    threads: OpenVINO's inference threads (None: its default, all physical cores).

    Outputs are float32 torch tensors on the CPU. Inference only: `.train()` raises.
    """

    backend = "openvino"

    def __init__(self, model, *, dtype="auto", cache_dir=None, threads: int | None = None, precision=None):
        _openvino()
        self._hint = precision or precision_for(dtype)
        self.torch_model = model.to(device="cpu", dtype=torch.float32).eval()
        self._cache_dir = (default_cache_dir() if cache_dir is None else Path(cache_dir)) if cache_dir is not False \
            else None
        self._threads = threads
        self._compiled: dict[tuple, tuple] = {}    # (shape, attn) -> (CompiledModel, InferRequest)
        self._lock = threading.Lock()               # an infer request is not reentrant
        self._digest: str | None = None
        self.cache_events: list[str] = []           # "hit <key>" / "compiled <key>": what each shape cost

    # ---- metadata: everything the torch model says, except where the runtime differs -------------------
    def __getattr__(self, name):
        # Only called for attributes not found normally: name, labels, label_source, num_frames, preprocessor,
        # image_size, cfg, config, num_labels, has_classifier, hidden_size, class_splits, head_labels, path, ...
        if name == "torch_model":
            raise AttributeError(name)
        return getattr(self.torch_model, name)

    @property
    def dtype(self) -> torch.dtype:
        """The precision OpenVINO computes in (the torch module it was exported from stays float32)."""
        return {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[self._hint]

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def precision(self) -> str:
        return self._hint

    @property
    def training(self) -> bool:
        return False

    def eval(self) -> "OpenVINOModel":
        return self

    def train(self, mode: bool = True) -> "OpenVINOModel":
        if mode:
            raise UsageError(f"{self.torch_model.name}: an OpenVINO model runs inference only; "
                             f"load it with backend='torch' to train")
        return self

    def set_attn(self, impl: str) -> "OpenVINOModel":
        """Switch the exported graph's attention implementation (a new compile per shape, cached apart)."""
        self.torch_model.set_attn(impl)
        return self

    def __repr__(self) -> str:
        return f"OpenVINOModel(precision={self._hint}, {self.torch_model.extra_repr()})"

    # ---- compute ----------------------------------------------------------------------------------------
    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.forward(pixel_values)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) → logits (B, num_labels), float32."""
        m = self.torch_model
        m.check_head()
        with torch.no_grad():
            return m.head(m.pool(self.forward_features(pixel_values), "default"))

    def embed(self, pixel_values: torch.Tensor, pool: str = "default") -> torch.Tensor:
        """(B, T, C, H, W) → (B, D) float32; pool as VideoModel.embed."""
        from vivitcli.models.base import check_pool

        check_pool(pool)
        with torch.no_grad():
            return self.torch_model.pool(self.forward_features(pixel_values), pool)

    def pool(self, x: torch.Tensor, pool: str = "default") -> torch.Tensor:
        with torch.no_grad():
            return self.torch_model.pool(x.float(), pool)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) → the model's features before pooling (last hidden state), float32."""
        x = self.torch_model._check_input(pixel_values)        # shape checks; float32 on the CPU
        _, request = self.compiled_for(tuple(x.shape[1:]))
        array = x.detach().contiguous().numpy()
        with self._lock:
            request.infer({0: array})
            out = request.get_output_tensor(0).data.copy()
        return torch.from_numpy(out)

    # ---- compile + cache ---------------------------------------------------------------------------------
    def compiled_for(self, shape: tuple[int, int, int, int]):
        """(compiled model, its infer request) for inputs of (frames, channels, height, width), from memory,
        the disk cache or a compile."""
        key = (tuple(int(s) for s in shape), self.torch_model.attn)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key)
                if compiled is None:
                    compiled = self._load_or_compile(key[0])
                    self._compiled[key] = compiled
        return compiled

    def _config(self) -> dict:
        config = {"INFERENCE_PRECISION_HINT": self._hint, "PERFORMANCE_HINT": "LATENCY"}
        if self._threads:
            config["INFERENCE_NUM_THREADS"] = int(self._threads)
        return config

    def cache_key(self, shape: tuple[int, int, int, int]) -> str:
        ov = _openvino()
        from vivitcli.models.backends.cpu import cpu_name

        facts = {
            "format": CACHE_FORMAT, "weights": self._weights_digest(), "code": _source_digest(),
            "class": type(self.torch_model).__name__, "attn": self.torch_model.attn, "shape": list(shape),
            "precision": self._hint, "openvino": ov.get_version(), "cpu": cpu_name(),
            "capabilities": list(capabilities()),
        }
        blob = json.dumps(facts, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    def _weights_digest(self) -> str:
        """sha256 over the config and every parameter and buffer (names, shapes, bytes): the checkpoint's
        content. 0.25 s for VideoMAE-B here; computed once per model."""
        if self._digest is None:
            h = hashlib.sha256(json.dumps(self.torch_model.config, sort_keys=True, default=str).encode())
            for name, tensor in sorted(self.torch_model.state_dict().items()):
                t = tensor.detach().cpu().contiguous()
                h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
                h.update(t.view(torch.uint8).numpy().data if t.numel() else b"")
            self._digest = h.hexdigest()
        return self._digest

    def _load_or_compile(self, shape):
        key = self.cache_key(shape) if self._cache_dir is not None else None
        path = self._cache_dir / f"{key}.blob" if key else None
        if path is not None and path.is_file():
            try:
                compiled = core().import_model(io.BytesIO(path.read_bytes()), "CPU", self._config())
                self.cache_events.append(f"hit {key}")
                return compiled, compiled.create_infer_request()
            except Exception:  # noqa: BLE001 - a truncated or foreign blob: rebuild it below
                pass
        compiled = core().compile_model(self._convert(shape), "CPU", self._config())
        self.cache_events.append(f"compiled {key or shape}")
        if path is not None:
            _write_blob(path, compiled)
        return compiled, compiled.create_infer_request()

    def _convert(self, shape):
        """The OpenVINO model of torch_model._features for (B, *shape) inputs with B dynamic."""
        ov = _openvino()
        example = torch.zeros((1, *shape), dtype=torch.float32)
        module = _Features(self.torch_model)
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")   # TorchScript tracer warnings about Python control flow
            return ov.convert_model(module, example_input=example, input=[ov.PartialShape([-1, *shape])])


class _Features(torch.nn.Module):
    """torch_model._features as a module's forward, for the converter."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model._features(pixel_values)


def _write_blob(path: Path, compiled) -> None:
    """export_model's bytes to `path`, atomically (an interrupted write leaves no half blob). A cache that
    cannot be written (read-only home, full disk) costs speed on the next run, not this result."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = compiled.export_model()
        data = data.getvalue() if hasattr(data, "getvalue") else bytes(data)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".blob")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


_SOURCE_DIGEST: str | None = None


def _source_digest() -> str:
    """sha256 of vivitcli/models/**/*.py: a change to the model code invalidates cached graphs."""
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        root = Path(__file__).resolve().parent.parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
        _SOURCE_DIGEST = h.hexdigest()
    return _SOURCE_DIGEST
