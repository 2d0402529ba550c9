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
from vivitcli.models.files import _short, weight_files

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
def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory on CPU. Pickle files load only with weights_only=True."""
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        state.update(_read_file(path))
    return state


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own SafetensorError / OSError variants
            raise CheckpointError(f"{path}: not a readable safetensors file ({_short(exc)})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for unsafe pickles, RuntimeError for corrupt archives
        raise CheckpointError(f"{path}: cannot load as a plain tensor file with weights_only=True "
                              f"({_short(exc)})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors")
    return state


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
def _fmt_keys(keys, limit: int = 3) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def model_from_state_dict(cfg: ModelConfig, state: dict, *, source: str = "checkpoint", attn: str = "sdpa"):
    """Build the native model for `cfg` and load a hub-layout state dict into it (strict, shape-checked).

    Returns the model (float32 unless the checkpoint is all one other float dtype, on CPU) with
    `load_report` = {"ignored_keys": [...], "warnings": [...]}. Raises CheckpointError naming `source`
    with a few missing / unexpected keys when the weights do not fit the config.
    """
    from vivitcli.models.videomae import VideoMAE
    from vivitcli.models.vivit import ViViT

    hf = normalize_hf_keys(state, cfg.model_type)
    hf, ignored = split_ignored(hf, cfg.model_type)
    head = hf.get("classifier.weight")
    num_labels = int(head.shape[0]) if isinstance(head, torch.Tensor) and head.ndim == 2 else 0
    with torch.device("meta"):
        if cfg.model_type == "vivit":
            model = ViViT(cfg, num_labels=num_labels, attn=attn)
        else:
            model = VideoMAE(cfg, num_labels=num_labels, fc_norm="fc_norm.weight" in hf, attn=attn)
    expected = set(native_to_hf(model.state_dict(), cfg, prefix=False))
    missing, unexpected = expected - set(hf), set(hf) - expected
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_fmt_keys(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_fmt_keys(unexpected)}")
        raise CheckpointError(f"{source}: weights do not fit its {cfg.model_type} config.json ({'; '.join(parts)})",
                              "is config.json from the same checkpoint?")
    native = hf_to_native(hf, cfg)
    own = model.state_dict()
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in native.items() if v.shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{source}: tensor shapes do not fit config.json (checkpoint vs config: "
                              f"{_fmt_keys(bad, 2)})", "is config.json from the same checkpoint?")
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
