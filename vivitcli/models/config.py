"""Model dimensions read from a Hugging Face config.json (ViViT or VideoMAE), as a plain dataclass, and the
validation of the two JSON files a checkpoint directory carries.

config.json and preprocessor_config.json come from untrusted folders, so every field that vivit reads is
checked for its type and range before anything is built (issue 11): an integer must be an int (32.9 is not
rounded), a flag must be true/false ("no" is not truthy), sizes must be positive and fit each other, and the
allocation the config implies (position table, weights) must be sane. Each problem is one CheckpointError
line naming the file and the field. Fields vivit does not read are left alone (transformers writes many).

No torch at import time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from vivitcli.errors import CheckpointError

MODEL_TYPES = ("vivit", "videomae", "vivit_fe")

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
_DEFAULTS["vivit_fe"] = _DEFAULTS["vivit"]  # factorised encoder (models/vivit_fe.py): ViViT's block settings

# Sane limits: far above every published ViViT / VideoMAE (VideoMAE V2-g: 1408 wide, 40 layers, ~1e9
# parameters), far below what would exhaust a machine. A config outside them is refused before any
# allocation; the budget below catches combinations of in-range fields.
LIMITS = dict(
    image_size=8192, num_frames=8192, num_channels=64, hidden_size=16384, num_hidden_layers=1000,
    num_attention_heads=1024, intermediate_size=262144, num_labels=1 << 20,
)
MAX_TOKENS = 1 << 16            # tokens per clip at the native grid (ViViT-L 32x320x320 has 6400)
MAX_PARAMETERS = 1 << 31        # weights + position tables the config implies (8 GiB in float32)

_INT_KEY = re.compile(r"^\d{1,9}$")


# ---- field checks (each raises one line: "<source>: field '<name>' ...") -------------------------------
def _fail(source: str, key: str, what: str, value) -> CheckpointError:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return CheckpointError(f"{source}: field '{key}' {what}, got {text}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _int(c: dict, key: str, source: str, lo: int = 1, hi: int | None = None) -> int:
    v = c[key]
    hi = LIMITS.get(key, hi) if hi is None else hi
    if not _is_int(v):
        raise _fail(source, key, "must be an integer", v)
    if v < lo or (hi is not None and v > hi):
        raise _fail(source, key, f"must be between {lo} and {hi}" if hi is not None else f"must be >= {lo}", v)
    return v


def _bool(c: dict, key: str, source: str) -> bool:
    v = c[key]
    if not isinstance(v, bool):
        raise _fail(source, key, "must be true or false", v)
    return v


def _ints(c: dict, key: str, source: str, n: int, hi: int, *, scalar_ok: bool) -> tuple[int, ...]:
    """An int (when scalar_ok: repeated n times) or a list of n ints, each in 1..hi."""
    v = c[key]
    items = [v] * n if scalar_ok and _is_int(v) else v
    form = f"an integer or a list of {n} integers" if scalar_ok else f"a list of {n} integers"
    if not isinstance(items, (list, tuple)) or len(items) != n or not all(_is_int(x) for x in items):
        raise _fail(source, key, f"must be {form}", v)
    if not all(1 <= x <= hi for x in items):
        raise _fail(source, key, f"must be between 1 and {hi}", v)
    return tuple(items)


def _id2label(c: dict, source: str) -> dict[int, str]:
    v = c.get("id2label")
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _fail(source, "id2label", "must be an object of class index → name", v)
    out: dict[int, str] = {}
    for k, name in v.items():
        if _is_int(k):
            i = k
        elif isinstance(k, str) and _INT_KEY.match(k.strip()):
            i = int(k)
        else:
            raise _fail(source, "id2label", "keys must be class indices (\"0\", \"1\", ...)", k)
        if i >= LIMITS["num_labels"]:
            raise _fail(source, "id2label", f"indices must be below {LIMITS['num_labels']}", k)
        if not isinstance(name, str):
            raise _fail(source, f"id2label[{k}]", "must be a string", name)
        out[i] = name
    return out


def _supported_activations() -> tuple[str, ...]:
    from vivitcli.models.layers import ACTIVATIONS

    return tuple(ACTIVATIONS)


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
        """Validate and parse a config.json dict; CheckpointError naming `source` and the field otherwise.

        Nothing is allocated here; the implied size is checked against LIMITS / MAX_TOKENS / MAX_PARAMETERS.
        """
        if not isinstance(config, dict):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(config).__name__}")
        model_type = config.get("model_type")
        if model_type not in MODEL_TYPES:
            raise CheckpointError(
                f"{source}: model_type {model_type!r} is not supported (expected one of {', '.join(MODEL_TYPES)})")
        c = {**_DEFAULTS[model_type], **config}          # a null is not a default: it fails its type check
        image = _ints(c, "image_size", source, 2, LIMITS["image_size"], scalar_ok=True)
        num_frames = _int(c, "num_frames", source)
        if model_type in ("vivit", "vivit_fe"):
            tubelet = _ints(c, "tubelet_size", source, 3, LIMITS["num_frames"], scalar_ok=False)
            qkv_bias = _bool(c, "qkv_bias", source)
            use_mean_pooling = False
        else:
            t = _int(c, "tubelet_size", source, hi=LIMITS["num_frames"])
            patch = _ints(c, "patch_size", source, 2, LIMITS["image_size"], scalar_ok=True)
            tubelet = (t, *patch)
            # Older transformers and the MCG-NJU hub configs spell the q/v bias flag "qkv_bias"; transformers'
            # VideoMAEConfig maps it onto qv_bias (and lets it win), so do we.
            qkv_bias = _bool(c, "qkv_bias" if "qkv_bias" in c else "qv_bias", source)
            use_mean_pooling = _bool(c, "use_mean_pooling", source)
        tube_key = "tubelet_size" if model_type in ("vivit", "vivit_fe") else None
        if tubelet[0] > num_frames:
            raise _fail(source, tube_key or "tubelet_size", f"(time {tubelet[0]}) must fit num_frames {num_frames}",
                        c["tubelet_size"])
        if tubelet[1] > image[0] or tubelet[2] > image[1]:
            raise _fail(source, tube_key or "patch_size",
                        f"(space {tubelet[1]}x{tubelet[2]}) must fit image_size {image[0]}x{image[1]}",
                        c[tube_key or "patch_size"])
        num_channels = _int(c, "num_channels", source)
        hidden = _int(c, "hidden_size", source)
        layers = _int(c, "num_hidden_layers", source)
        heads = _int(c, "num_attention_heads", source)
        if hidden % heads:
            raise _fail(source, "num_attention_heads", f"must divide hidden_size {hidden}", heads)
        intermediate = _int(c, "intermediate_size", source)
        act = c["hidden_act"]
        supported = _supported_activations()
        if not isinstance(act, str) or act not in supported:
            raise _fail(source, "hidden_act", f"must be one of {', '.join(supported)}", act)
        eps = c["layer_norm_eps"]
        if not _is_number(eps) or not 0 < eps < 1:
            raise _fail(source, "layer_norm_eps", "must be a number between 0 and 1 (exclusive)", eps)
        if "num_labels" in c:
            _int(c, "num_labels", source, lo=0)
        id2label = _id2label(c, source)
        arch = c.get("architectures")
        if arch is not None and (not isinstance(arch, list) or not all(isinstance(a, str) for a in arch)):
            raise _fail(source, "architectures", "must be a list of class names", arch)
        if not isinstance(c.get("_name_or_path") or "", str):
            raise _fail(source, "_name_or_path", "must be a string", c["_name_or_path"])
        parsed = cls(
            model_type=model_type, image_size=image, num_frames=num_frames, tubelet=tuple(tubelet),
            num_channels=num_channels, hidden_size=hidden, num_layers=layers, num_heads=heads,
            intermediate_size=intermediate, hidden_act=act, layer_norm_eps=float(eps), qkv_bias=qkv_bias,
            use_mean_pooling=use_mean_pooling, id2label=id2label, raw=dict(config),
        )
        decoder = _decoder(c, source) if model_type == "videomae" else None
        _check_budget(parsed, len(id2label) or c.get("num_labels", 0) or 0, decoder, source)
        return parsed


def _decoder(c: dict, source: str) -> tuple[int, int, int] | None:
    """(hidden, layers, mlp) of a VideoMAE pre-training decoder when the config describes one, validated."""
    keys = ("decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads",
            "decoder_intermediate_size")
    if not any(k in c for k in keys):
        return None
    d = {**dict(decoder_hidden_size=384, decoder_num_hidden_layers=4, decoder_num_attention_heads=6,
                decoder_intermediate_size=1536), **{k: c[k] for k in keys if k in c}}
    hidden = _int(d, "decoder_hidden_size", source, hi=LIMITS["hidden_size"])
    layers = _int(d, "decoder_num_hidden_layers", source, hi=LIMITS["num_hidden_layers"])
    heads = _int(d, "decoder_num_attention_heads", source, hi=LIMITS["num_attention_heads"])
    if hidden % heads:
        raise _fail(source, "decoder_num_attention_heads", f"must divide decoder_hidden_size {hidden}", heads)
    mlp = _int(d, "decoder_intermediate_size", source, hi=LIMITS["intermediate_size"])
    if "norm_pix_loss" in c:
        _bool(c, "norm_pix_loss", source)
    return hidden, layers, mlp


def implied_parameters(cfg: ModelConfig, num_labels: int = 0,
                       decoder: tuple[int, int, int] | None = None) -> dict[str, int]:
    """Element counts the config implies, by part: what building it would allocate (float32: 4 bytes each)."""
    d, n = cfg.hidden_size, cfg.num_patches
    t, p, q = cfg.tubelet
    parts = {
        "position table (image_size, num_frames, hidden_size)": (n + 1) * d,
        "patch embedding (tubelet/patch size, num_channels, hidden_size)": d * cfg.num_channels * t * p * q + d,
        "blocks (num_hidden_layers, hidden_size, intermediate_size)":
            cfg.num_layers * (4 * d * d + 2 * d * cfg.intermediate_size + 9 * d + cfg.intermediate_size),
        "classifier (id2label / num_labels, hidden_size)": num_labels * (d + 1),
    }
    if cfg.model_type == "vivit_fe":
        # The factorised encoder's temporal blocks (validated in models/vivit_fe.py; counted here for the budget).
        raw = cfg.raw
        layers, mlp = raw.get("num_temporal_layers", 4), raw.get("temporal_intermediate_size", cfg.intermediate_size)
        if _is_int(layers) and _is_int(mlp) and layers >= 0 and mlp > 0:
            parts["temporal blocks (num_temporal_layers, temporal_intermediate_size)"] = \
                layers * (4 * d * d + 2 * d * mlp + 9 * d + mlp)
    if decoder is not None:
        dh, dl, dm = decoder
        parts["decoder (decoder_* fields)"] = (n * dh + d * dh + dl * (4 * dh * dh + 2 * dh * dm)
                                               + dh * cfg.num_channels * t * p * q)
    return parts


def _check_budget(cfg: ModelConfig, num_labels: int, decoder, source: str) -> None:
    tokens = cfg.num_patches
    if tokens > MAX_TOKENS:
        raise CheckpointError(
            f"{source}: fields 'image_size'/'num_frames' with tubelet {cfg.tubelet} give {tokens} tokens per clip, "
            f"more than the {MAX_TOKENS} vivit accepts")
    parts = implied_parameters(cfg, num_labels, decoder)
    total = sum(parts.values())
    if total > MAX_PARAMETERS:
        worst = max(parts, key=parts.get)
        raise CheckpointError(
            f"{source}: the config implies {total / 1e9:.1f} billion weights ({total * 4 / 2**30:.0f} GiB in "
            f"float32), over the {MAX_PARAMETERS / 1e9:.1f} billion vivit accepts; most in the {worst}")


# ---- preprocessor_config.json ------------------------------------------------------------------------------
PIL_RESAMPLE = range(0, 6)       # NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING
MAX_FRAME_SIDE = 4096
MAX_NORM_VALUE = 255.0
MIN_STD = 1e-3


def validate_preprocessor_config(config, source: str = "preprocessor_config.json", *,
                                 model: ModelConfig | None = None) -> dict:
    """Check a preprocessor_config.json dict before Preprocessor.from_config sees it; returns it unchanged.

    Types and ranges of every field the Preprocessor reads (flags are booleans, sizes positive ints, std
    non-zero, mean/std one value or three, finite numbers). With `model`, a crop / resize smaller than one
    patch (every video would fail) is refused too. One CheckpointError line naming `source` and the field.
    """
    if not isinstance(config, dict):
        raise CheckpointError(f"{source}: expected a JSON object, got {type(config).__name__}")
    c = config
    for key in ("do_resize", "do_center_crop", "do_rescale", "offset", "do_normalize"):
        if key in c:
            _bool(c, key, source)
    if "resample" in c and (not _is_int(c["resample"]) or c["resample"] not in PIL_RESAMPLE):
        raise _fail(source, "resample", "must be a PIL filter number 0-5 (2 = bilinear)", c["resample"])
    size = _size(c, "size", source, square=False) if "size" in c else None
    crop = _size(c, "crop_size", source, square=True) if "crop_size" in c else None
    if "rescale_factor" in c:
        v = c["rescale_factor"]
        if not _is_number(v) or not 0 < v <= 1:
            raise _fail(source, "rescale_factor", "must be a positive number up to 1 (1/255 maps 8-bit to 0..1)", v)
    for key in ("image_mean", "image_std"):
        if key not in c:
            continue
        v = c[key]
        values = [v] if _is_number(v) else v
        if not isinstance(values, (list, tuple)) or len(values) not in (1, 3) or not all(_is_number(x) for x in values):
            raise _fail(source, key, "must be a number or a list of 3 finite numbers", v)
        if key == "image_std" and any(x == 0 for x in values):
            raise _fail(source, key, "must not be zero (it divides the pixels)", v)
        # Pixels are 0..255 before rescaling: a mean or std beyond that range (or a std so small that the
        # output overflows float16) is a broken config, not a choice.
        if any(abs(x) > MAX_NORM_VALUE for x in values) or (key == "image_std" and any(abs(x) < MIN_STD for x in values)):
            raise _fail(source, key, f"values must be within {MIN_STD if key == 'image_std' else 0:g}.."
                        f"{MAX_NORM_VALUE:g} in magnitude", v)
    if model is not None:
        _check_output_fits(c, size, crop, model, source)
    return config


def _size(c: dict, key: str, source: str, *, square: bool) -> dict:
    """HF's size forms: an int, [h, w], {"shortest_edge": n} (resize only) or {"height": h, "width": w}."""
    v = c[key]
    if _is_int(v):
        out = {"height": v, "width": v} if square else {"shortest_edge": v}
    elif isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v):
        out = {"height": v[0], "width": v[1]}
    elif isinstance(v, dict) and not square and set(v) == {"shortest_edge"}:
        out = dict(v)
    elif isinstance(v, dict) and set(v) == {"height", "width"}:
        out = dict(v)
    else:
        forms = "an integer, [height, width] or {\"height\", \"width\"}" + ("" if square else " or {\"shortest_edge\"}")
        raise _fail(source, key, f"must be {forms}", v)
    for name, x in out.items():
        if not _is_int(x) or not 1 <= x <= MAX_FRAME_SIDE:
            raise _fail(source, f"{key}.{name}" if isinstance(v, dict) else key,
                        f"must be an integer between 1 and {MAX_FRAME_SIDE}", x)
    return out


def _check_output_fits(c: dict, size, crop, model: ModelConfig, source: str) -> None:
    """The smallest frame the settings produce must hold one patch (a shortest edge bounds both sides)."""
    _, p, q = model.tubelet
    if c.get("do_center_crop", True) and crop is not None:
        key, dims = "crop_size", (crop["height"], crop["width"])
    elif c.get("do_resize", True) and size is not None:
        key = "size"
        dims = (size["shortest_edge"],) * 2 if "shortest_edge" in size else (size["height"], size["width"])
    else:
        return
    if dims[0] < p or dims[1] < q:
        raise _fail(source, key, f"must be at least one {p}x{q} patch of the model", c[key])
    tokens = (model.num_frames // model.tubelet[0]) * (dims[0] // p) * (dims[1] // q)
    if tokens > MAX_TOKENS:
        raise _fail(source, key, f"gives {tokens} tokens per {model.num_frames}-frame clip, more than the "
                    f"{MAX_TOKENS} vivit accepts", c[key])
