"""Checkpoint I/O in the Hugging Face layout, and the key mapping between it and the native modules.

On disk (what transformers writes and loads):  config.json, model.safetensors | pytorch_model.bin
(or shards with model.safetensors.index.json | pytorch_model.bin.index.json), preprocessor_config.json.
Keys: `vivit.` / `videomae.` prefix (absent for bare-model checkpoints), then
  embeddings.{cls_token, position_embeddings, patch_embeddings.projection.*}
  encoder.layer.{i}.{layernorm_before, layernorm_after}.*
  encoder.layer.{i}.attention.attention.{query, key, value}.*   (VideoMAE: q_bias, v_bias, no key bias)
  encoder.layer.{i}.attention.output.dense.*, .intermediate.dense.*, .output.dense.*
  layernorm.*, plus fc_norm.* and classifier.* at the top level.
In memory q/k/v are stored as one fused `qkv` linear (see layers.Attention for how it runs); `hf_to_native` and
`native_to_hf` are pure state_dict → state_dict functions.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from vivitcli.errors import CheckpointError
from vivitcli.models.config import ModelConfig
from vivitcli.models.files import _short, checkpoint_file, read_json, safetensors_shapes, weight_files

PREFIXES = {"vivit": "vivit.", "videomae": "videomae."}

# Keys a checkpoint may carry that the runners do not use: reported in load_report, never an error.
_IGNORED = {
    "vivit": re.compile(r"pooler\..*"),
    # VideoMAEForPreTraining's decoder side; position_embeddings is the fixed sinusoid some exports persist.
    "videomae": re.compile(r"(decoder\..*|encoder_to_decoder\..*|mask_token|embeddings\.position_embeddings)"),
}

# transformers 5 in-memory names (if a checkpoint was saved that way) → the hub layout.
_RENAMES = [
    (re.compile(r"^layers\.(\d+)\.attention\.q_proj\."), r"encoder.layer.\1.attention.attention.query."),
    (re.compile(r"^layers\.(\d+)\.attention\.k_proj\."), r"encoder.layer.\1.attention.attention.key."),
    (re.compile(r"^layers\.(\d+)\.attention\.v_proj\."), r"encoder.layer.\1.attention.attention.value."),
    (re.compile(r"^layers\.(\d+)\.attention\.o_proj\."), r"encoder.layer.\1.attention.output.dense."),
    (re.compile(r"^layers\.(\d+)\.mlp\.fc1\."), r"encoder.layer.\1.intermediate.dense."),
    (re.compile(r"^layers\.(\d+)\.mlp\.fc2\."), r"encoder.layer.\1.output.dense."),
    (re.compile(r"^layers\.(\d+)\.(layernorm_before|layernorm_after)\."), r"encoder.layer.\1.\2."),
]
_VIDEOMAE_BIAS = re.compile(r"attention\.attention\.(query|value)\.bias$")

_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.*)$")
_LAYER_MAP = {
    "layernorm_before.weight": "norm1.weight", "layernorm_before.bias": "norm1.bias",
    "layernorm_after.weight": "norm2.weight", "layernorm_after.bias": "norm2.bias",
    "attention.output.dense.weight": "attn.proj.weight", "attention.output.dense.bias": "attn.proj.bias",
    "intermediate.dense.weight": "mlp.fc1.weight", "intermediate.dense.bias": "mlp.fc1.bias",
    "output.dense.weight": "mlp.fc2.weight", "output.dense.bias": "mlp.fc2.bias",
}
_TOP_MAP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.bias",
    "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
    "fc_norm.weight": "fc_norm.weight", "fc_norm.bias": "fc_norm.bias",
    "classifier.weight": "head.weight", "classifier.bias": "head.bias",
}
_TOP_MAP_BACK = {v: k for k, v in _TOP_MAP.items()}
_LAYER_MAP_BACK = {v: k for k, v in _LAYER_MAP.items()}
_QKV_NAMES = ("query", "key", "value")


# ---- files ------------------------------------------------------------------------------------------------
ZIP_MAGIC = b"PK\x03\x04"


def open_checkpoint(directory) -> tuple[ModelConfig, dict | None, list[Path]]:
    """(validated config, validated preprocessor_config.json dict or None, weight files) of a checkpoint folder.

    The common first step of every loader of an untrusted folder: only JSON is read; config.json and
    preprocessor_config.json are validated (config.ModelConfig.from_dict, validate_preprocessor_config), and
    every file is inside the folder (files.checkpoint_file). Next: check_fit on the weights' shapes
    (weight_shapes gives them for safetensors without reading tensors), then load_weights.
    """
    from vivitcli.models.config import validate_preprocessor_config

    directory = Path(directory)
    config_path = checkpoint_file(directory, "config.json", required=False)
    if config_path is None:
        raise CheckpointError(f"{directory}: no config.json (not a Hugging Face checkpoint directory)")
    cfg = ModelConfig.from_dict(read_json(config_path, what="config.json"), source=str(config_path))
    pre_path = checkpoint_file(directory, "preprocessor_config.json", required=False)
    pre = None
    if pre_path is not None:
        pre = validate_preprocessor_config(read_json(pre_path, what="preprocessor_config.json"), str(pre_path),
                                           model=cfg)
    return cfg, pre, weight_files(directory)


def read_state_dict(directory) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory on CPU (files chosen by files.weight_files: inside the folder,
    safetensors preferred). Pickle files load only with weights_only=True."""
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        state.update(load_weights(path))
    return state


def load_weights(path) -> dict[str, torch.Tensor]:
    """One weights file → {name: tensor} on CPU: safetensors, or a pickle through safe_torch_load (a bare
    state dict, or one under a "state_dict" key). CheckpointError naming the file for anything else."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own SafetensorError / OSError variants
            raise CheckpointError(f"{path}: not a readable safetensors file ({_short(exc)})") from None
    state = safe_torch_load(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a dict of tensors")
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CheckpointError(f"{path}: entry {str(bad)[:60]!r} is a {type(state[bad]).__name__}, not a tensor")
    return state


def safe_torch_load(path, *, mmap: bool = False):
    """torch.load(weights_only=True) on CPU: nothing in the file can run code. Whatever it holds is returned
    (tensors in plain containers); every failure is one CheckpointError line naming the file.

    mmap=True maps the tensors of a zip-format file instead of reading them (for a look at names and shapes;
    not for keeping: a mapped file that is later truncated would fault)."""
    import pickle

    path = Path(path)
    try:
        with open(path, "rb") as f:
            zipped = f.read(4) == ZIP_MAGIC
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or _short(exc)})") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap and zipped)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to unpickle with weights_only=True: the file asks for code or objects other "
            f"than tensors; nothing from it was run ({_short(exc)})") from None
    except Exception as exc:  # RuntimeError for corrupt archives, EOFError, ValueError, ... : one line each
        raise CheckpointError(f"{path}: cannot load as a plain tensor file with weights_only=True "
                              f"({type(exc).__name__}: {_short(exc)})") from None


def weight_shapes(files) -> dict[str, tuple[int, ...]] | None:
    """{name: shape} of safetensors weight files from their headers alone (no tensor read); None when any
    file is a pickle (its shapes are known only once loaded)."""
    if not all(Path(f).suffix == ".safetensors" for f in files):
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        shapes.update({k: shape for k, (_, shape) in safetensors_shapes(f).items()})
    return shapes


# ---- key mapping ------------------------------------------------------------------------------------------
def normalize_hf_keys(state: dict, model_type: str) -> dict:
    """Strip the `vivit.` / `videomae.` prefix and map other spellings to the hub layout (no prefix)."""
    prefix = PREFIXES[model_type]
    out = {}
    for key, value in state.items():
        if key.startswith(prefix):
            key = key[len(prefix):]
        for pattern, repl in _RENAMES:
            key = pattern.sub(repl, key)
        if model_type == "videomae":
            key = _VIDEOMAE_BIAS.sub(lambda m: f"attention.attention.{m.group(1)[0]}_bias", key)
        out[key] = value
    return out


def split_ignored(state: dict, model_type: str) -> tuple[dict, list[str]]:
    pattern = _IGNORED[model_type]
    kept = {k: v for k, v in state.items() if not pattern.fullmatch(k)}
    return kept, sorted(k for k in state if pattern.fullmatch(k))


def hf_to_native(state: dict, cfg: ModelConfig) -> dict:
    """Prefix-less hub-layout state dict (see normalize_hf_keys) → native keys, q/k/v fused per layer."""
    out: dict[str, torch.Tensor] = {}
    pending: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key in _TOP_MAP:
            out[_TOP_MAP[key]] = value
            continue
        m = _LAYER.match(key)
        if m is None:
            out[key] = value          # unknown: left for the caller's unexpected-key check
            continue
        i, rest = int(m.group(1)), m.group(2)
        if rest in _LAYER_MAP:
            out[f"blocks.{i}.{_LAYER_MAP[rest]}"] = value
        elif rest.startswith("attention.attention."):
            pending.setdefault(i, {})[rest[len("attention.attention."):]] = value
        else:
            out[f"blocks.{i}.{rest}"] = value
    for i, parts in pending.items():
        w = [parts.get(f"{n}.weight") for n in _QKV_NAMES]
        if all(t is not None for t in w):
            out[f"blocks.{i}.attn.qkv.weight"] = torch.cat(w, dim=0)
        if cfg.model_type == "vivit":
            b = [parts.get(f"{n}.bias") for n in _QKV_NAMES]
            if all(t is not None for t in b):
                out[f"blocks.{i}.attn.qkv.bias"] = torch.cat(b, dim=0)
        elif "q_bias" in parts and "v_bias" in parts:
            q, v = parts["q_bias"], parts["v_bias"]
            out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([q, torch.zeros_like(q), v], dim=0)
    return out


def native_to_hf(state: dict, cfg: ModelConfig, *, prefix: bool = True) -> dict:
    """Native state dict → the hub layout transformers loads (q/k/v split again).

    prefix=True writes the `*ForVideoClassification` layout (`vivit.` / `videomae.` before the encoder
    keys); False writes the bare-model layout.
    """
    p = PREFIXES[cfg.model_type] if prefix else ""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "pos_embed" and cfg.model_type == "videomae":
            continue                                  # fixed table, never stored
        if key in _TOP_MAP_BACK:
            hf = _TOP_MAP_BACK[key]
            top_level = hf.startswith(("fc_norm.", "classifier."))
            out[hf if top_level else p + hf] = value
            continue
        m = re.match(r"^blocks\.(\d+)\.(.*)$", key)
        if m is None:
            raise ValueError(f"no hub name for native key {key!r}")
        i, rest = int(m.group(1)), m.group(2)
        base = f"{p}encoder.layer.{i}."
        if rest in _LAYER_MAP_BACK:
            out[base + _LAYER_MAP_BACK[rest]] = value
        elif rest == "attn.qkv.weight":
            for name, part in zip(_QKV_NAMES, value.chunk(3, dim=0)):
                out[f"{base}attention.attention.{name}.weight"] = part.contiguous()
        elif rest == "attn.qkv.bias":
            q, k, v = (t.contiguous() for t in value.chunk(3, dim=0))
            if cfg.model_type == "vivit":
                for name, part in zip(_QKV_NAMES, (q, k, v)):
                    out[f"{base}attention.attention.{name}.bias"] = part
            else:
                out[f"{base}attention.attention.q_bias"] = q
                out[f"{base}attention.attention.v_bias"] = v
        else:
            raise ValueError(f"no hub name for native key {key!r}")
    return out


# ---- building a model from a checkpoint ----------------------------------------------------------------
def compare_shapes(given: dict, expected: dict, *, source: str, what: str) -> None:
    """CheckpointError (one line) unless `given` has exactly `expected`'s names and shapes: the check every
    loader runs on the weights' headers before it reads a tensor or builds a model. what: e.g. "vivit"."""
    missing, unexpected = set(expected) - set(given), set(given) - set(expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_fmt_keys(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_fmt_keys(unexpected)}")
        raise CheckpointError(f"{source}: weights do not fit its {what} config.json ({'; '.join(parts)})",
                              "is config.json from the same checkpoint?")
    bad = [f"{k} {tuple(given[k])} vs {tuple(expected[k])}" for k in expected if tuple(given[k]) != tuple(expected[k])]
    if bad:
        raise CheckpointError(f"{source}: tensor shapes do not fit config.json (checkpoint vs config: "
                              f"{_fmt_keys(bad, 2)})", "is config.json from the same checkpoint?")


def _fmt_keys(keys, limit: int = 3) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _template(cfg: ModelConfig, *, num_labels: int, fc_norm: bool, attn: str = "sdpa", layers: int | None = None):
    """The native module for `cfg` on the meta device (no weights allocated), with `layers` blocks."""
    import dataclasses

    from vivitcli.models.videomae import VideoMAE
    from vivitcli.models.vivit import ViViT

    if layers is not None:
        cfg = dataclasses.replace(cfg, num_layers=layers)
    with torch.device("meta"):
        if cfg.model_type == "vivit":
            return ViViT(cfg, num_labels=num_labels, attn=attn)
        return VideoMAE(cfg, num_labels=num_labels, fc_norm=fc_norm, attn=attn)


def expected_shapes(cfg: ModelConfig, *, num_labels: int, fc_norm: bool) -> dict[str, tuple[int, ...]]:
    """{hub-layout key (no prefix): shape} that a checkpoint for `cfg` must hold, computed from a one-block
    template whose block keys are repeated per layer: milliseconds, whatever num_hidden_layers says."""
    template = _template(cfg, num_labels=num_labels, fc_norm=fc_norm, layers=min(cfg.num_layers, 1))
    shapes: dict[str, tuple[int, ...]] = {}
    for key, value in native_to_hf(template.state_dict(), cfg, prefix=False).items():
        if key.startswith("encoder.layer.0."):
            rest = key[len("encoder.layer.0."):]
            for i in range(cfg.num_layers):
                shapes[f"encoder.layer.{i}.{rest}"] = tuple(value.shape)
        else:
            shapes[key] = tuple(value.shape)
    return shapes


def check_fit(cfg: ModelConfig, shapes: dict, *, source: str = "checkpoint") -> dict:
    """Check checkpoint tensor names/shapes ({key: shape}, any key spelling normalize_hf_keys knows) against
    the config BEFORE anything is built or read: a config that does not fit its weights (more layers, other
    widths) is one CheckpointError line in milliseconds. Returns {"num_labels", "fc_norm", "ignored"}."""
    if cfg.model_type == "vivit_fe":  # the factorised encoder has its own layout (models/vivit_fe.py)
        from vivitcli.models.vivit_fe import check_fit as check_fit_fe

        return check_fit_fe(cfg, shapes, source=source)
    hf = normalize_hf_keys({k: tuple(v) for k, v in shapes.items()}, cfg.model_type)
    hf, ignored = split_ignored(hf, cfg.model_type)
    head = hf.get("classifier.weight")
    num_labels = int(head[0]) if head is not None and len(head) == 2 else 0
    fc_norm = "fc_norm.weight" in hf
    expected = expected_shapes(cfg, num_labels=num_labels, fc_norm=fc_norm)
    compare_shapes(hf, expected, source=source, what=cfg.model_type)
    return {"num_labels": num_labels, "fc_norm": fc_norm, "ignored": ignored}


def model_from_state_dict(cfg: ModelConfig, state: dict, *, source: str = "checkpoint", attn: str = "sdpa"):
    """Build the native model for `cfg` and load a hub-layout state dict into it (strict, shape-checked).

    Returns the model (float32 unless the checkpoint is all one other float dtype, on CPU) with
    `load_report` = {"ignored_keys": [...], "warnings": [...]}. Raises CheckpointError naming `source`
    with a few missing / unexpected keys when the weights do not fit the config (checked by check_fit
    before the model is built).
    """
    if cfg.model_type == "vivit_fe":  # the factorised encoder has its own layout and loader
        from vivitcli.models.vivit_fe import from_state_dict

        return from_state_dict(cfg, state, source=source, attn=attn)
    fit = check_fit(cfg, {k: tuple(v.shape) for k, v in state.items()}, source=source)
    hf, ignored = split_ignored(normalize_hf_keys(state, cfg.model_type), cfg.model_type)
    not_float = sorted(k for k, v in hf.items() if not v.is_floating_point())
    if not_float:
        raise CheckpointError(f"{source}: weights must be floating point; {_fmt_keys(not_float, 2)} "
                              f"{'is' if len(not_float) == 1 else 'are'} {hf[not_float[0]].dtype}".replace("torch.", ""))
    model = _template(cfg, num_labels=fit["num_labels"], fc_norm=fit["fc_norm"], attn=attn)
    native = hf_to_native(hf, cfg)
    dtypes = {v.dtype for v in native.values() if v.is_floating_point()}
    load_dtype = dtypes.pop() if len(dtypes) == 1 else torch.float32
    native = {k: v.to(load_dtype) if v.is_floating_point() else v for k, v in native.items()}
    model.load_state_dict(native, strict=True, assign=True)
    _materialize_buffers(model)
    model.eval()
    model.load_report = {"ignored_keys": ignored, "warnings": []}
    if ignored:
        what = "decoder" if any(k.startswith("decoder.") for k in ignored) else "unused"
        model.load_report["warnings"].append(
            f"{source}: ignored {len(ignored)} {what} tensor(s) not used for classification or embedding "
            f"({_fmt_keys(ignored, 2)})")
    return model


def _materialize_buffers(model) -> None:
    """Non-persistent buffers are not in the state dict: rebuild those still on the meta device."""
    from vivitcli.models.layers import sinusoid_table

    if getattr(model, "pos_embed", None) is not None and model.pos_embed.is_meta:
        model.pos_embed = sinusoid_table(model.cfg.num_patches, model.cfg.hidden_size)
