"""`vivit convert`: any supported checkpoint in, a Hugging Face layout (config.json, preprocessor_config.json,
model.safetensors) out, checked by running source and result on the same synthetic clip.

convert_checkpoint() is the library entry; the CLI command only parses options and prints its report.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from vivitcli.errors import CheckpointError, ConvertError, UsageError

DTYPES = ("float32", "float16", "bfloat16")
# Verification tolerance on max |Δ| relative to the output scale max(1, max |reference|): float32 results must
# agree to rounding; half-precision results carry the rounding of every weight through every layer.
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 6e-2}
LABEL_SETS = {
    "kinetics400": "kinetics400.txt", "k400": "kinetics400.txt",
    "ssv2": "something-something-v2.txt", "something-something-v2": "something-something-v2.txt",
}
PREPROCESS = ("hf", "original")
HEAD_KEYS = ("classifier.",)


@dataclass
class ConvertOptions:
    dtype: str | None = None            # None: keep the source's floating dtype
    labels: str | None = None           # kinetics400 | ssv2 | a file (one name per line, or JSON)
    strip_head: bool = False
    verify: bool = True
    force: bool = False
    num_frames: int | None = None       # VideoMAE .pth: default 16; Scenic: read from the position table
    image_size: int = 224
    head_dim: int = 64
    num_heads: int | None = None
    decoder_num_heads: int | None = None
    preprocess: str = "hf"              # hf: what the hub checkpoints ship; original: the release's pipeline
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
    notes: list = field(default_factory=list)


def convert_checkpoint(src, dst, options: ConvertOptions | None = None, **kwargs) -> ConvertResult:
    """Convert SRC into a Hugging Face checkpoint directory at DST (see module doc). Raises VivitError types."""
    from vivitcli.convert import output, sources

    opts = dataclasses.replace(options or ConvertOptions(), **kwargs)
    _check_options(opts)
    if opts.verify and opts.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"--device {opts.device}: CUDA is not available here (use --device cpu)")
    src, dst = Path(src), Path(dst)
    source = sources.detect(src)
    output.check_destination(dst, src, opts.force)

    config, state, preprocessor, reference = _load(source, opts)
    notes = list(config.pop("_notes", []))
    if opts.strip_head:
        config, state = _strip_head(config, state, notes)
    label_source = _apply_labels(config, state, opts.labels, notes)
    out_dtype = opts.dtype or _dominant_dtype(state)
    state = _cast(state, out_dtype)
    config["torch_dtype"] = out_dtype
    config["dtype"] = out_dtype

    result = ConvertResult(src=src, dst=dst, format=source.format, architecture=config["architectures"][0],
                           dtype=out_dtype, num_params=sum(int(t.numel()) for t in state.values()),
                           num_labels=_num_labels(state), label_source=label_source, notes=notes)
    with output.staging(dst) as (tmp, box):
        output.write_json(tmp / "config.json", config)
        output.write_json(tmp / "preprocessor_config.json", preprocessor)
        output.write_safetensors(tmp / "model.safetensors", state)
        del state
        if opts.verify:
            _verify(tmp, config, reference, opts, out_dtype, result)
        output.commit(tmp, dst, box)
    return result


def _check_options(opts: ConvertOptions) -> None:
    if opts.dtype is not None and opts.dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {opts.dtype!r}")
    if opts.preprocess not in PREPROCESS:
        raise UsageError(f"--preprocess must be hf or original, got {opts.preprocess!r}")
    if opts.strip_head and opts.labels:
        raise UsageError("--labels and --strip-head contradict each other (a stripped model has no classes)")
    for name in ("num_frames", "image_size", "head_dim", "num_heads", "decoder_num_heads"):
        value = getattr(opts, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if opts.tolerance is not None and opts.tolerance < 0:
        raise UsageError(f"--tolerance must be >= 0, got {opts.tolerance}")


# ------------------------------------------------------------------------------------------------ loading

def _load(source, opts: ConvertOptions):
    """(config, torch state dict in HF keys, preprocessor config, reference) for the source format.

    reference is a callable pixel_values → {'logits'?, 'features', 'pooled'} computed without the mapping.
    """
    import numpy as np
    import torch

    from vivitcli.convert import reference, sources

    where = str(source.files[0] if source.files else source.path)
    if source.format in ("hf-pickle", "hf-safetensors"):
        if any(v is not None for v in (opts.num_frames, opts.num_heads, opts.decoder_num_heads)):
            raise UsageError("--num-frames / --num-heads / --decoder-num-heads apply to original releases; "
                             f"{source.path} is a Hugging Face checkpoint with its own config.json")
        config, state, preprocessor = sources.read_hf(source)
        model_type = config.get("model_type")
        if model_type not in ("vivit", "videomae"):
            raise CheckpointError(f"{source.path / 'config.json'}: model_type {model_type!r} is not ViViT or VideoMAE")
        if not config.get("architectures"):
            config["architectures"] = [_infer_architecture(model_type, state)]
        if preprocessor is None:
            preprocessor = default_preprocessor(model_type, _square(config.get("image_size", 224)), opts.preprocess)
        return config, state, preprocessor, _hf_reference(source.path)

    if source.format == "videomae-pth":
        from vivitcli.convert import videomae_original

        raw = videomae_original.unwrap(sources.safe_torch_load(source.files[0]), source.files[0])
        if not videomae_original.is_videomae_original(raw):
            hint = ("it looks like a Hugging Face state dict: convert its directory (with config.json) instead"
                    if any(k.startswith(("vivit.", "videomae.")) for k in raw) else None)
            raise CheckpointError(f"{where}: not an original VideoMAE checkpoint (no patch_embed.proj / "
                                  "blocks.*.attn.qkv keys)", hint=hint)
        config, state = videomae_original.convert(
            raw, num_frames=opts.num_frames or 16, image_size=opts.image_size, head_dim=opts.head_dim,
            num_heads=opts.num_heads, decoder_num_heads=opts.decoder_num_heads, where=where)
        _placeholder_labels(config)
        heads = config["num_attention_heads"]

        def ref(pv):
            return reference.videomae_original(raw, pv, num_heads=heads, eps=1e-6)

        pre = default_preprocessor("videomae", opts.image_size, opts.preprocess)
        return config, state, pre, ref

    if source.format == "scenic-flax":
        from vivitcli.convert import msgpack_reader, scenic_vivit

        tree = msgpack_reader.load(source.files[0])
        config, arrays = scenic_vivit.convert(tree, image_size=opts.image_size, num_frames=opts.num_frames,
                                              where=where)
        if opts.num_heads is not None and opts.num_heads != config["num_attention_heads"]:
            raise UsageError(f"{where}: the kernels hold {config['num_attention_heads']} heads, not {opts.num_heads}")
        state = {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}
        _placeholder_labels(config)
        params = scenic_vivit.find_params(tree, where)

        def ref(pv):
            return reference.scenic_vivit(params, pv)

        pre = default_preprocessor("vivit", opts.image_size, opts.preprocess)
        if opts.preprocess == "hf":
            config.setdefault("_notes", []).append(
                "preprocessor: the hub checkpoint's settings (shortest edge = crop, 1/127.5 with offset, then "
                "mean/std 0.5); --preprocess original writes the Scenic pipeline's [-1, 1] after resizing to 256/224·size")
        return config, state, pre, ref
    raise ConvertError(f"{source.path}: unsupported format {source.format}")


def _square(size) -> int:
    return int(size[0]) if isinstance(size, (list, tuple)) else int(size)


def _infer_architecture(model_type: str, state: dict) -> str:
    prefix = "Vivit" if model_type == "vivit" else "VideoMAE"
    if any(k.startswith("classifier.") for k in state):
        return prefix + "ForVideoClassification"
    if any(k.startswith("decoder.") for k in state):
        return "VideoMAEForPreTraining"
    return prefix + "Model"


def _placeholder_labels(config: dict) -> None:
    n = config.pop("num_labels", 0)
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(n)}
    config["label2id"] = {f"LABEL_{i}": i for i in range(n)}


def default_preprocessor(model_type: str, image_size: int, style: str = "hf") -> dict:
    """preprocessor_config.json for a converted release.

    vivit/hf: what google/vivit-b-16x2-kinetics400 ships (shortest edge = crop size, rescale 1/127.5 with
    offset, then mean/std 0.5, so pixels land in [-3, 1]). vivit/original: the Scenic pipeline (resize the
    shortest edge to 256 for 224 crops, pixels in [-1, 1]). videomae: what the MCG-NJU checkpoints ship
    (shortest edge = crop, 1/255, ImageNet mean/std), which is also the release's own evaluation pipeline.
    """
    crop = {"height": image_size, "width": image_size}
    if model_type == "vivit":
        base = {"image_processor_type": "VivitImageProcessor", "do_resize": True, "resample": 2,
                "do_center_crop": True, "crop_size": crop, "do_rescale": True,
                "rescale_factor": 1 / 127.5, "offset": True, "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5]}
        if style == "original":
            return {**base, "size": {"shortest_edge": round(image_size * 256 / 224)}, "do_normalize": False}
        return {**base, "size": {"shortest_edge": image_size}, "do_normalize": True}
    return {"image_processor_type": "VideoMAEImageProcessor", "do_resize": True, "resample": 2,
            "size": {"shortest_edge": image_size}, "do_center_crop": True, "crop_size": crop,
            "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}


# ------------------------------------------------------------------------------------------- transforming

def _strip_head(config: dict, state: dict, notes: list) -> tuple[dict, dict]:
    """Embedding-only: drop the classifier (the architecture stays, with num_labels 0: transformers then uses
    an Identity head, so `logits` are the pooled embedding and fc_norm is kept), or a pre-training decoder
    (the result is a bare VideoMAEModel)."""
    arch = config["architectures"][0]
    config = dict(config)
    if arch.endswith("ForPreTraining"):
        state = {k[len("videomae."):]: v for k, v in state.items() if k.startswith("videomae.")}
        config["architectures"] = ["VideoMAEModel"]
        notes.append("stripped the pre-training decoder: written as a bare VideoMAEModel")
    elif arch.endswith("ForVideoClassification"):
        dropped = [k for k in state if k.startswith(HEAD_KEYS)]
        if not dropped:
            raise CheckpointError(f"{arch} checkpoint has no classifier to strip")
        state = {k: v for k, v in state.items() if not k.startswith(HEAD_KEYS)}
        notes.append("stripped the classifier: num_labels 0, the model outputs its pooled embedding")
    else:
        notes.append(f"{arch} has no head: nothing to strip")
    config["id2label"], config["label2id"] = {}, {}
    config.pop("num_labels", None)
    return config, state


def _num_labels(state: dict) -> int:
    w = state.get("classifier.weight")
    return int(w.shape[0]) if w is not None else 0


def _apply_labels(config: dict, state: dict, labels: str | None, notes: list) -> str:
    n = _num_labels(state)
    if labels is None:
        if n and len(config.get("id2label") or {}) != n:
            # transformers would build a classifier of len(id2label) rows (2 when absent) and fail to load.
            config["id2label"] = {str(i): f"LABEL_{i}" for i in range(n)}
            config["label2id"] = {f"LABEL_{i}": i for i in range(n)}
        if n and all(str(v) == f"LABEL_{k}" for k, v in (config.get("id2label") or {}).items()):
            notes.append(f"labels: placeholders LABEL_0..LABEL_{n - 1} (name them with --labels)")
            return "placeholder"
        return "checkpoint" if n else "none"
    if n == 0:
        raise UsageError("--labels given, but the checkpoint has no classifier")
    names, origin = read_labels(labels)
    if len(names) != n:
        raise UsageError(f"--labels {labels}: {len(names)} names for a classifier with {n} classes")
    if len(set(names)) != len(names):
        dup = next(x for x in names if names.count(x) > 1)
        raise UsageError(f"--labels {labels}: the name {dup!r} appears more than once")
    config["id2label"] = {str(i): name for i, name in enumerate(names)}
    config["label2id"] = {name: i for i, name in enumerate(names)}
    return origin


def read_labels(spec: str) -> tuple[list[str], str]:
    """kinetics400 | ssv2 (shipped lists) or a file: one name per line, or a JSON list / {index: name}."""
    import json
    from importlib import resources

    key = spec.lower()
    if key in LABEL_SETS:
        text = resources.files("vivitcli.labels").joinpath(LABEL_SETS[key]).read_text(encoding="utf-8")
        origin = "kinetics400" if "kinetics" in LABEL_SETS[key] else "something-something-v2"
        return [line.strip() for line in text.splitlines() if line.strip()], origin
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--labels {spec}: not kinetics400, ssv2 or an existing file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--labels {spec}: cannot read ({err})") from None
    if path.suffix.lower() == ".json":
        try:
            value = json.loads(text)
        except ValueError as err:
            raise UsageError(f"--labels {spec}: invalid JSON ({err})") from None
        if isinstance(value, dict):
            try:
                items = sorted((int(k), str(v)) for k, v in value.items())
            except ValueError:
                raise UsageError(f"--labels {spec}: JSON keys must be class indices") from None
            if [i for i, _ in items] != list(range(len(items))):
                raise UsageError(f"--labels {spec}: class indices are not 0..{len(items) - 1}")
            return [v for _, v in items], "checkpoint"
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value), "checkpoint"
        raise UsageError(f"--labels {spec}: JSON must be a list of names or an {{index: name}} object")
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if any(not n for n in names):
        raise UsageError(f"--labels {spec}: line {names.index('') + 1} is empty")
    return names, "checkpoint"


def _dominant_dtype(state: dict) -> str:
    import torch

    counts: dict = {}
    for t in state.values():
        if t.is_floating_point():
            counts[t.dtype] = counts.get(t.dtype, 0) + t.numel()
    dtype = max(counts, key=counts.get) if counts else torch.float32
    return {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(dtype, "float32")


def _cast(state: dict, dtype: str) -> dict:
    import torch

    target = getattr(torch, dtype)
    return {k: (v.to(target) if v.is_floating_point() else v) for k, v in state.items()}


# ------------------------------------------------------------------------------------------- verification

def _hf_reference(path: Path):
    def ref(pv):
        from vivitcli import load_model

        model = load_model(str(path), device=str(pv.device), dtype="float32", attn="eager")
        return _run_vivitcli(model, pv)

    return ref


def _run_vivitcli(model, pv) -> dict:
    out = {"features": model.forward_features(pv)}
    if getattr(model, "has_classifier", getattr(model, "num_labels", 0) > 0):
        out["logits"] = model(pv)
    return out


def verification_clip(config: dict, seed: int = 0):
    """A seeded synthetic clip (1, T, C, S, S) at the checkpoint's native size, values like normalized pixels."""
    import torch

    size = _square(config.get("image_size", 224))
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, int(config["num_frames"]), int(config.get("num_channels", 3)), size, size, generator=gen)


@contextlib.contextmanager
def _exact_float32():
    """TF32 convolutions/matmuls (cuDNN's default for conv) would blur a float32 comparison on recent GPUs."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _verify(tmp: Path, config: dict, reference, opts: ConvertOptions, out_dtype: str, result: ConvertResult):
    import torch

    from vivitcli import load_model

    device = opts.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        pv = verification_clip(config, opts.seed).to(device)
    except (RuntimeError, AssertionError) as err:
        raise UsageError(f"--device {opts.device}: not usable ({str(err).splitlines()[0]})") from None
    with torch.no_grad(), _exact_float32():
        ref = reference(pv)
        try:
            model = load_model(str(tmp), device=device, dtype="float32", attn="eager")
        except Exception as err:  # the written checkpoint must load; anything else is a converter bug
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConvertError(f"{result.dst}: the converted checkpoint does not load ({first}); nothing written")
        got = _run_vivitcli(model, pv)
    what = "logits" if "logits" in got and "logits" in ref else "features"
    if what not in ref or what not in got:
        raise ConvertError(f"{result.dst}: cannot verify: source and result disagree on having a classifier")
    a, b = ref[what].float(), got[what].float()
    if a.shape != b.shape:
        raise ConvertError(f"{result.dst}: verification failed: {what} shapes {tuple(a.shape)} vs {tuple(b.shape)}")
    diff = float((a - b).abs().max())
    scale = max(1.0, float(a.abs().max()))
    tol = (opts.tolerance if opts.tolerance is not None else TOLERANCE[out_dtype]) * scale
    result.compared, result.max_abs_diff, result.tolerance = what, diff, tol
    if not diff <= tol:  # also catches NaN
        raise ConvertError(f"{result.dst}: verification failed: max |Δ{what}| = {diff:.3g} exceeds {tol:.3g}; "
                           "nothing written", hint="--no-verify writes it anyway, at your own risk")
    result.verified = True
