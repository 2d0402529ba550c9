"""ViViT Factorised Encoder ("model 2" of the paper; Scenic's SpaceTimeViViT), in plain PyTorch.

tubelets (B, T', h·w, D) → per time slot: [CLS_s] + tokens + spatial table (shared by every slot) → spatial
pre-LN blocks → LayerNorm → token 0 (or the token mean for the "gap" classifier)  → (B, T', D)
→ [CLS_t] + + temporal table → temporal blocks → LayerNorm → token 0 (or mean) → classifier.

The temporal encoder has its own depth, heads and MLP width (config: num_temporal_layers,
temporal_num_attention_heads, temporal_intermediate_size); the blocks are the shared layers.Block.

On disk (written by `vivit convert`; transformers has no such class): config.json with model_type "vivit_fe",
model.safetensors with HF-style keys
    vivit_fe.embeddings.patch_embeddings.projection.{weight (D, C, t, p, p), bias}
    vivit_fe.{spatial,temporal}.{cls_token (1, 1, D), position_embeddings (1, [1+]N, D)}
    vivit_fe.{spatial,temporal}.encoder.layer.{i}.<the HF ViViT layer names>
    vivit_fe.{spatial,temporal}.layernorm.{weight, bias}
    classifier.{weight, bias}
and `class_splits` ([["noun", 300], ["verb", 97]] for EPIC-KITCHENS) when one projection holds several heads.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from vivitcli.errors import CheckpointError, UsageError
from vivitcli.models.base import VideoModel, check_pool
from vivitcli.models.config import ModelConfig
from vivitcli.models.layers import Block, TubeletEmbed, interpolate_pos_table

MODEL_TYPE = "vivit_fe"
PREFIX = "vivit_fe."
CLASSIFIERS = ("token", "gap")
# Shipped class lists of known heads (vivitcli/labels/*.txt): a multi-head checkpoint with placeholder names gets
# them, as a 400-class one gets Kinetics-400's. Scenic's EPIC-KITCHENS-100 config: class_splits [300, 97],
# split_names ['noun', 'verb'].
HEAD_DATASETS = {("noun", 300): "epic-kitchens-100-noun", ("verb", 97): "epic-kitchens-100-verb"}
EPIC_SPLITS = [("noun", 300), ("verb", 97)]


@dataclasses.dataclass(frozen=True)
class TemporalConfig:
    num_layers: int
    num_heads: int
    intermediate_size: int
    classifier: str          # "token" (CLS tokens, Scenic's released models) or "gap" (token means)

    @classmethod
    def from_config(cls, cfg: ModelConfig, source: str = "config.json") -> "TemporalConfig":
        raw = cfg.raw
        try:
            out = cls(num_layers=_int(raw.get("num_temporal_layers", 4)),
                      num_heads=_int(raw.get("temporal_num_attention_heads", cfg.num_heads)),
                      intermediate_size=_int(raw.get("temporal_intermediate_size", cfg.intermediate_size)),
                      classifier=str(raw.get("classifier", "token")))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: invalid vivit_fe config ({exc})") from None
        if out.classifier not in CLASSIFIERS:
            raise CheckpointError(f"{source}: classifier {out.classifier!r} is not one of {', '.join(CLASSIFIERS)}")
        if not (0 <= out.num_layers <= 256 and out.num_heads > 0 and out.intermediate_size > 0
                and cfg.hidden_size % out.num_heads == 0):
            raise CheckpointError(f"{source}: invalid vivit_fe temporal encoder ({out.num_layers} layers, "
                                  f"{out.num_heads} heads, MLP {out.intermediate_size}, width {cfg.hidden_size})")
        return out


def _int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def class_splits_of(cfg: ModelConfig, num_labels: int, source: str = "config.json"):
    """[(head, size), ...] in logit order from config.json's class_splits, or None (one softmax)."""
    raw = cfg.raw.get("class_splits")
    if raw is None:
        return None
    try:
        splits = [(str(name), _int(size)) for name, size in raw]
    except (TypeError, ValueError):
        raise CheckpointError(f"{source}: class_splits must be a list of [name, size] pairs, got {raw!r}") from None
    if len({n for n, _ in splits}) != len(splits) or any(s <= 0 for _, s in splits) or \
            sum(s for _, s in splits) != num_labels:
        raise CheckpointError(f"{source}: class_splits {raw!r} do not partition {num_labels} classes into "
                              "named heads")
    return splits


class ViViTFE(VideoModel):
    model_type = MODEL_TYPE

    def __init__(self, cfg: ModelConfig, *, num_labels: int = 0, attn: str = "sdpa",
                 temporal: TemporalConfig | None = None):
        super().__init__(cfg, num_labels=num_labels, attn=attn)   # self.blocks: the spatial encoder
        self.temporal = temporal or TemporalConfig.from_config(cfg)
        d = cfg.hidden_size
        token = self.temporal.classifier == "token"
        gt, gh, gw = cfg.grid
        self.patch_embed = TubeletEmbed(cfg.num_channels, d, cfg.tubelet)
        self.spatial_cls = nn.Parameter(torch.zeros(1, 1, d)) if token else None
        self.spatial_pos = nn.Parameter(torch.zeros(1, int(token) + gh * gw, d))
        self.spatial_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.temporal_cls = nn.Parameter(torch.zeros(1, 1, d)) if token else None
        self.temporal_pos = nn.Parameter(torch.zeros(1, int(token) + gt, d))
        self.temporal_blocks = nn.ModuleList(
            Block(d, self.temporal.num_heads, self.temporal.intermediate_size, cfg.hidden_act,
                  cfg.layer_norm_eps, cfg.qkv_bias, attn)
            for _ in range(self.temporal.num_layers))
        self.norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.class_splits = None          # [(head, size), ...] for multi-head checkpoints (set by the loader)

    # ---- multi-head metadata (API.md) -------------------------------------------------------------------
    @property
    def head_labels(self) -> dict | None:
        """{head: [names...]} in class_splits order, or None for a single-head model."""
        if not self.class_splits:
            return None
        from vivitcli.labels import dataset_labels

        out, start = {}, 0
        for name, size in self.class_splits:
            names = list(self.labels[start:start + size])
            shipped = HEAD_DATASETS.get((name, size))
            if shipped and all(n == f"LABEL_{i}" for i, n in enumerate(names, start)):
                names = list(dataset_labels(shipped))
            out[name] = names
            start += size
        return out

    # ---- position tables ----------------------------------------------------------------------------------
    @property
    def _token(self) -> bool:
        return self.temporal.classifier == "token"

    def _pos(self, which: str, table: torch.Tensor, src: tuple[int, int, int], dst: tuple[int, int, int]):
        """The table at the native grid, else resampled (bicubic in space, linear in time; CLS row kept)."""
        if src == dst:
            return table
        key = (which, dst, table.dtype, table.device, table._version)
        skip = int(self._token)

        def compute():
            rows = interpolate_pos_table(table[0, skip:], src, dst)
            return torch.cat([table[0, :skip], rows], dim=0).unsqueeze(0)

        return self._cached_pos(key, compute)

    def spatial_table(self, gh: int, gw: int) -> torch.Tensor:
        _, h, w = self.cfg.grid
        return self._pos("spatial", self.spatial_pos, (1, h, w), (1, gh, gw))

    def temporal_table(self, gt: int) -> torch.Tensor:
        return self._pos("temporal", self.temporal_pos, (self.cfg.grid[0], 1, 1), (gt, 1, 1))

    # ---- compute --------------------------------------------------------------------------------------------
    def _encode(self, x, cls, pos, blocks, norm):
        if cls is not None:
            x = torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + pos
        for block in blocks:
            x = block(x)
        return norm(x)

    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self._check_input(pixel_values)
        b, t, _, h, w = x.shape
        gt, gh, gw = self.patch_embed.grid(t, h, w)
        tokens = self.patch_embed(x).reshape(b * gt, gh * gw, -1)            # one sequence per time slot
        s = self._encode(tokens, self.spatial_cls, self.spatial_table(gh, gw), self.blocks, self.spatial_norm)
        s = (s[:, 0] if self._token else s.mean(dim=1)).reshape(b, gt, -1)   # (B, T', D)
        return self._encode(s, self.temporal_cls, self.temporal_table(gt), self.temporal_blocks, self.norm)

    def tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:  # pragma: no cover - _features is overridden
        raise NotImplementedError("ViViTFE runs two encoders; use forward_features")

    def finish(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - _features is overridden
        return x

    def pool(self, x: torch.Tensor, pool: str = "default") -> torch.Tensor:
        """default: the vector the classifier reads (final temporal CLS token, or the temporal token mean for
        "gap"); cls: the temporal CLS token; mean: the mean of the time-slot tokens."""
        check_pool(pool)
        if pool == "default":
            pool = "cls" if self._token else "mean"
        if pool == "mean":
            return x[:, int(self._token):].mean(dim=1)
        if pool == "cls":
            if not self._token:
                raise UsageError(f"{self.name}: a 'gap' factorised encoder has no CLS token; use pool mean")
            return x[:, 0]

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", temporal_layers={self.temporal.num_layers}, "
                f"classifier={self.temporal.classifier}, class_splits={self.class_splits}")


# ---- checkpoint layout ------------------------------------------------------------------------------------
_TOP = {
    "embeddings.patch_embeddings.projection.weight": "patch_embed.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.bias",
    "spatial.cls_token": "spatial_cls", "spatial.position_embeddings": "spatial_pos",
    "spatial.layernorm.weight": "spatial_norm.weight", "spatial.layernorm.bias": "spatial_norm.bias",
    "temporal.cls_token": "temporal_cls", "temporal.position_embeddings": "temporal_pos",
    "temporal.layernorm.weight": "norm.weight", "temporal.layernorm.bias": "norm.bias",
}
_ENCODERS = {"spatial.": "blocks.", "temporal.": "temporal_blocks."}


def hf_to_native(state: dict, cfg: ModelConfig) -> dict:
    """The on-disk layout (module doc; `vivit_fe.` prefix optional) → native keys with q/k/v fused."""
    from vivitcli.models.checkpoint import hf_to_native as layers_to_native

    as_vivit = dataclasses.replace(cfg, model_type="vivit")   # same layer names and q/k/v biases as ViViT
    out: dict = {}
    per_encoder: dict = {p: {} for p in _ENCODERS}
    for key, value in state.items():
        key = key[len(PREFIX):] if key.startswith(PREFIX) else key
        if key in _TOP:
            out[_TOP[key]] = value
        elif key in ("classifier.weight", "classifier.bias"):
            out["head." + key.split(".")[1]] = value
        elif any(key.startswith(p + "encoder.layer.") for p in _ENCODERS):
            enc = next(p for p in _ENCODERS if key.startswith(p))
            per_encoder[enc][key[len(enc):]] = value
        else:
            out[key] = value                  # unknown: reported by the caller's key check
    for enc, sub in per_encoder.items():
        for key, value in layers_to_native(sub, as_vivit).items():
            out[_ENCODERS[enc] + key[len("blocks."):] if key.startswith("blocks.") else key] = value
    return out


def native_to_hf(state: dict, cfg: ModelConfig) -> dict:
    """Native state dict → the on-disk layout (q/k/v split again), `vivit_fe.` prefix on the encoder keys."""
    from vivitcli.models.checkpoint import native_to_hf as layers_to_hf

    as_vivit = dataclasses.replace(cfg, model_type="vivit")
    back = {v: k for k, v in _TOP.items()}
    out: dict = {}
    blocks: dict = {p: {} for p in _ENCODERS}
    for key, value in state.items():
        if key in back:
            out[PREFIX + back[key]] = value
        elif key.startswith("head."):
            out["classifier." + key[len("head."):]] = value
        elif key.startswith("temporal_blocks."):
            blocks["temporal."]["blocks." + key[len("temporal_blocks."):]] = value
        elif key.startswith("blocks."):
            blocks["spatial."][key] = value
        else:
            raise ValueError(f"no on-disk name for native key {key!r}")
    for enc, sub in blocks.items():
        for key, value in layers_to_hf(sub, as_vivit, prefix=False).items():
            out[PREFIX + enc + key] = value
    return out


def _template(cfg: ModelConfig, num_labels: int, attn: str, source: str) -> ViViTFE:
    temporal = TemporalConfig.from_config(cfg, source)
    with torch.device("meta"):                          # shapes only: nothing is allocated
        return ViViTFE(cfg, num_labels=num_labels, attn=attn, temporal=temporal)


def check_fit(cfg: ModelConfig, shapes: dict, *, source: str = "checkpoint") -> dict:
    """Checkpoint names/shapes ({key: shape}) against the config before anything is read or built: one
    CheckpointError line naming a few missing / unexpected / mis-shaped keys. Returns {"num_labels", ...}."""
    from vivitcli.models.checkpoint import compare_shapes

    shapes = {(k if k.startswith(PREFIX) or k.startswith("classifier.") else PREFIX + k): tuple(v)
              for k, v in shapes.items()}
    head = shapes.get("classifier.weight")
    num_labels = int(head[0]) if head is not None and len(head) == 2 else 0
    model = _template(cfg, num_labels, "sdpa", source)
    expected = {k: tuple(v.shape) for k, v in native_to_hf(model.state_dict(), cfg).items()}
    compare_shapes(shapes, expected, source=source, what="vivit_fe")
    return {"num_labels": num_labels, "fc_norm": False, "ignored": []}


def from_state_dict(cfg: ModelConfig, state: dict, *, source: str = "checkpoint", attn: str = "sdpa") -> ViViTFE:
    """Build a ViViTFE for `cfg` and load an on-disk-layout state dict (strict, shape-checked first)."""
    fit = check_fit(cfg, {k: tuple(v.shape) for k, v in state.items()}, source=source)
    model = _template(cfg, fit["num_labels"], attn, source)
    native = hf_to_native(state, cfg)
    dtypes = {v.dtype for v in native.values() if v.is_floating_point()}
    load_dtype = dtypes.pop() if len(dtypes) == 1 else torch.float32
    native = {k: v.to(load_dtype) if v.is_floating_point() else v for k, v in native.items()}
    model.load_state_dict(native, strict=True, assign=True)
    model.class_splits = class_splits_of(cfg, fit["num_labels"], source)
    model.eval()
    model.load_report = {"ignored_keys": [], "warnings": []}
    return model

