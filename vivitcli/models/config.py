"""Model dimensions read from a Hugging Face config.json (ViViT or VideoMAE), as a plain dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field

from vivitcli.errors import CheckpointError

MODEL_TYPES = ("vivit", "videomae")

# HF defaults for fields a config.json may leave out (VivitConfig / VideoMAEConfig).
_DEFAULTS = {
    "vivit": dict(
        image_size=224, num_frames=32, tubelet_size=[2, 16, 16], num_channels=3, hidden_size=768,
        num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, hidden_act="gelu_fast",
        layer_norm_eps=1e-6, qkv_bias=True,
    ),
    "videomae": dict(
        image_size=224, num_frames=16, patch_size=16, tubelet_size=2, num_channels=3, hidden_size=768,
        num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
        layer_norm_eps=1e-12, qv_bias=True, use_mean_pooling=True,
    ),
}


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


@dataclass
class ModelConfig:
    """What the runners need to know; `raw` keeps the config.json dict as it was."""

    model_type: str
    image_size: tuple[int, int]          # (height, width) the checkpoint was trained at
    num_frames: int
    tubelet: tuple[int, int, int]        # (time, height, width) of one token
    num_channels: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    hidden_act: str
    layer_norm_eps: float
    qkv_bias: bool                       # ViViT: q, k, v biases. VideoMAE: q and v biases (k has none)
    use_mean_pooling: bool = False       # VideoMAE only
    id2label: dict[int, str] = field(default_factory=dict)
    raw: dict = field(default_factory=dict)

    @property
    def grid(self) -> tuple[int, int, int]:
        """(t, h, w) token grid at the checkpoint's native frame count and image size."""
        return (self.num_frames // self.tubelet[0], self.image_size[0] // self.tubelet[1],
                self.image_size[1] // self.tubelet[2])

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_dict(cls, config: dict, source: str = "config.json") -> "ModelConfig":
        """Parse a config.json dict; raises CheckpointError naming `source` for an unsupported model_type."""
        model_type = config.get("model_type")
        if model_type not in MODEL_TYPES:
            raise CheckpointError(
                f"{source}: model_type {model_type!r} is not supported (expected one of {', '.join(MODEL_TYPES)})")
        c = {**_DEFAULTS[model_type], **config}
        try:
            if model_type == "vivit":
                tubelet = tuple(int(v) for v in c["tubelet_size"])
                qkv_bias = bool(c["qkv_bias"])
            else:
                p = _pair(c["patch_size"])
                tubelet = (int(c["tubelet_size"]), p[0], p[1])
                qkv_bias = bool(c["qv_bias"])
            id2label = {int(k): str(v) for k, v in (c.get("id2label") or {}).items()}
            parsed = cls(
                model_type=model_type, image_size=_pair(c["image_size"]), num_frames=int(c["num_frames"]),
                tubelet=tubelet, num_channels=int(c["num_channels"]), hidden_size=int(c["hidden_size"]),
                num_layers=int(c["num_hidden_layers"]), num_heads=int(c["num_attention_heads"]),
                intermediate_size=int(c["intermediate_size"]), hidden_act=str(c["hidden_act"]),
                layer_norm_eps=float(c["layer_norm_eps"]), qkv_bias=qkv_bias,
                use_mean_pooling=bool(c.get("use_mean_pooling", False)) if model_type == "videomae" else False,
                id2label=id2label, raw=dict(config),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: invalid {model_type} config ({exc})") from None
        if len(parsed.tubelet) != 3 or parsed.hidden_size % parsed.num_heads:
            raise CheckpointError(
                f"{source}: invalid {model_type} config (tubelet {parsed.tubelet}, hidden_size "
                f"{parsed.hidden_size} not divisible by {parsed.num_heads} heads)")
        return parsed
