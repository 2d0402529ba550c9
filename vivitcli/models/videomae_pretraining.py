"""VideoMAE pre-training: what transformers' VideoMAEForPreTraining computes, in plain PyTorch.

    model = load_pretraining("MCG-NJU/videomae-base")       # or load_model(..., task="pretraining")
    logits, loss = model(pixel_values, bool_masked_pos)     # (B, M, t·p·q·C), scalar

pixels (B, T, C, H, W) → tubelets + sinusoid table → keep the visible tokens (bool_masked_pos False; the
same count in every clip) → encoder blocks → [LayerNorm when not use_mean_pooling] → encoder_to_decoder
(no bias) → visible tokens + their decoder positions, then one mask token + position per hidden token, in
that order → decoder blocks (the encoder's block type at the decoder's width, heads, MLP size) → the last M
tokens → LayerNorm (eps 1e-5) → head → one patch per hidden token, values in (t, p, q, C) order.

Loss: MSE against the hidden patches of the target = pixels back through ImageNet mean/std (whatever the
preprocessor used; pixels as given when C != 3) and, with norm_pix_loss, each patch normalised per channel
by its own mean and unbiased std (+1e-6 on the std). Predictions therefore live in that target space; see
`patch_stats` / vivitcli.reconstruct for the way back to pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vivitcli.errors import CheckpointError, UsageError
from vivitcli.models.config import ModelConfig
from vivitcli.models.layers import Block, sinusoid_table
from vivitcli.models.videomae import VideoMAE

# VideoMAEConfig's defaults for the decoder fields a config.json may leave out.
_DECODER_DEFAULTS = dict(decoder_hidden_size=384, decoder_num_hidden_layers=4, decoder_num_attention_heads=6,
                         decoder_intermediate_size=1536, norm_pix_loss=True)
NORM_PIX_EPS = 1e-6   # added to the patch std, not the variance, as transformers and the original code do


@dataclass(frozen=True)
class DecoderConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    norm_pix_loss: bool

    @classmethod
    def from_model_config(cls, cfg: ModelConfig, source: str = "config.json") -> "DecoderConfig":
        c = {**_DECODER_DEFAULTS, **{k: v for k, v in cfg.raw.items() if k in _DECODER_DEFAULTS}}
        try:
            dec = cls(int(c["decoder_hidden_size"]), int(c["decoder_num_hidden_layers"]),
                      int(c["decoder_num_attention_heads"]), int(c["decoder_intermediate_size"]),
                      bool(c["norm_pix_loss"]))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: invalid VideoMAE decoder config ({exc})") from None
        if min(dec.hidden_size, dec.num_heads, dec.intermediate_size) < 1 or dec.num_layers < 0 \
                or dec.hidden_size % dec.num_heads:
            raise CheckpointError(f"{source}: invalid VideoMAE decoder config (hidden {dec.hidden_size}, "
                                  f"{dec.num_heads} heads, {dec.num_layers} layers, MLP {dec.intermediate_size})")
        return dec


# ---- patches: the decoder's output layout ----------------------------------------------------------------
def patchify(frames: torch.Tensor, tubelet: tuple[int, int, int]) -> torch.Tensor:
    """(B, T, C, H, W) → (B, N, t·p·q·C): tokens in (t, h, w) raster order, values in (t, p, q, C) order."""
    b, frames_, c, h, w = frames.shape
    t, p, q = tubelet
    x = frames.reshape(b, frames_ // t, t, c, h // p, p, w // q, q)
    x = x.permute(0, 1, 4, 6, 2, 5, 7, 3)                     # (B, T/t, H/p, W/q, t, p, q, C)
    return x.reshape(b, (frames_ // t) * (h // p) * (w // q), t * p * q * c)


def unpatchify(patches: torch.Tensor, tubelet: tuple[int, int, int], grid: tuple[int, int, int],
               channels: int) -> torch.Tensor:
    """Inverse of patchify: (B, N, t·p·q·C) → (B, T, C, H, W)."""
    b = patches.shape[0]
    t, p, q = tubelet
    gt, gh, gw = grid
    x = patches.reshape(b, gt, gh, gw, t, p, q, channels)
    x = x.permute(0, 1, 4, 7, 2, 5, 3, 6)                     # (B, T/t, t, C, H/p, p, W/q, q)
    return x.reshape(b, gt * t, channels, gh * p, gw * q)


def target_space(pixel_values: torch.Tensor) -> torch.Tensor:
    """The pixels the loss compares against: ImageNet mean/std undone (RGB), or the input as is (C != 3).

    transformers hard-codes ImageNet's statistics here, whatever the checkpoint's preprocessor used."""
    from vivitcli.preprocess import IMAGENET_MEAN, IMAGENET_STD

    if pixel_values.shape[2] != 3:
        return pixel_values
    mean = torch.tensor(IMAGENET_MEAN, dtype=pixel_values.dtype, device=pixel_values.device)[None, None, :, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=pixel_values.dtype, device=pixel_values.device)[None, None, :, None, None]
    return pixel_values * std + mean


def patch_stats(patches: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per patch and channel over its t·p·q values: (mean, std + 1e-6), each (B, N, 1, C).

    norm_pix_loss targets are (patch − mean) / (std + 1e-6) with these, on (B, N, t·p·q, C) views."""
    b, n, _ = patches.shape
    x = patches.reshape(b, n, -1, channels)
    return x.mean(dim=-2, keepdim=True), x.var(dim=-2, unbiased=True, keepdim=True).sqrt() + NORM_PIX_EPS


def loss_targets(pixel_values: torch.Tensor, tubelet: tuple[int, int, int], norm_pix_loss: bool) -> torch.Tensor:
    """(B, T, C, H, W) pixel values → (B, N, t·p·q·C) regression targets for every token."""
    c = pixel_values.shape[2]
    if not norm_pix_loss and c != 3:
        raise UsageError("VideoMAE pre-training without norm_pix_loss needs 3-channel (RGB) input")
    patches = patchify(target_space(pixel_values), tubelet)
    if not norm_pix_loss:
        return patches
    mean, std = patch_stats(patches, c)
    b, n, _ = patches.shape
    return ((patches.reshape(b, n, -1, c) - mean) / std).reshape(b, n, -1)


# ---- the model --------------------------------------------------------------------------------------------
class VideoMAEForPreTraining(VideoMAE):
    """The VideoMAE encoder (see VideoMAE) plus the pre-training decoder; embed/forward_features still work
    on the full (unmasked) clip. Call as `model(pixel_values, bool_masked_pos)` → (logits, loss)."""

    def __init__(self, cfg: ModelConfig, *, attn: str = "sdpa", source: str = "config.json"):
        super().__init__(cfg, num_labels=0, fc_norm=False, attn=attn)
        dec = DecoderConfig.from_model_config(cfg, source)
        self.decoder_cfg = dec
        t, p, q = cfg.tubelet
        self.encoder_to_decoder = nn.Linear(cfg.hidden_size, dec.hidden_size, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec.hidden_size))
        # Fixed, not in the checkpoint, float32 (cast per forward), like the encoder's table.
        self.register_buffer("decoder_pos_embed", sinusoid_table(cfg.num_patches, dec.hidden_size), persistent=False)
        self.decoder_blocks = nn.ModuleList(
            Block(dec.hidden_size, dec.num_heads, dec.intermediate_size, cfg.hidden_act, cfg.layer_norm_eps,
                  cfg.qkv_bias, attn)
            for _ in range(dec.num_layers)
        )
        # transformers builds the decoder norm with nn.LayerNorm's default eps (1e-5).
        self.decoder_norm = nn.LayerNorm(dec.hidden_size)
        self.decoder_head = nn.Linear(dec.hidden_size, cfg.num_channels * t * p * q)

    @property
    def norm_pix_loss(self) -> bool:
        return self.decoder_cfg.norm_pix_loss

    @property
    def patch_dim(self) -> int:
        return self.decoder_head.out_features

    def check_mask(self, bool_masked_pos, batch: int) -> torch.Tensor:
        """bool (B, N) on the model's device; UsageError unless every clip hides the same 1..N−1 tokens."""
        n = self.cfg.num_patches
        if not isinstance(bool_masked_pos, torch.Tensor):
            raise UsageError(f"{self.name}: bool_masked_pos must be a tensor of shape ({batch}, {n})")
        mask = bool_masked_pos.to(device=self.device, dtype=torch.bool)
        if mask.ndim == 1:
            mask = mask.expand(batch, -1)
        if tuple(mask.shape) != (batch, n):
            raise UsageError(f"{self.name}: bool_masked_pos has shape {tuple(bool_masked_pos.shape)}, "
                             f"expected ({batch}, {n})")
        counts = mask.sum(dim=1)
        if bool((counts != counts[0]).any()):
            raise UsageError(f"{self.name}: every clip must hide the same number of tokens "
                             f"(got {sorted(set(counts.tolist()))})")
        if int(counts[0]) in (0, n):
            raise UsageError(f"{self.name}: the mask hides {int(counts[0])} of {n} tokens; "
                             f"it must leave at least one token visible and one hidden")
        return mask

    def _check_native(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self._check_input(pixel_values)
        _, t, _, h, w = x.shape
        if (t, h, w) != (self.cfg.num_frames, *self.cfg.image_size):
            raise UsageError(f"{self.name}: pre-training needs the checkpoint's own input size "
                             f"({self.cfg.num_frames} frames of {self.cfg.image_size[0]}x{self.cfg.image_size[1]}), "
                             f"got {t} frames of {h}x{w}")
        return x

    def decoder_pos(self, dtype: torch.dtype) -> torch.Tensor:
        return self._cached_pos(("decoder", dtype, self.decoder_pos_embed.device),
                                lambda: self.decoder_pos_embed.to(dtype))

    def predict(self, pixel_values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Decoder output for the hidden tokens: (B, M, t·p·q·C), hidden tokens in raster order."""
        b = pixel_values.shape[0]
        x = self.tokens(pixel_values)                                      # (B, N, D)
        x = x[~mask].reshape(b, -1, x.shape[-1])                           # (B, V, D) visible only
        for block in self.blocks:
            x = block(x)
        x = self.encoder_to_decoder(self.finish(x))                        # (B, V, Dd)
        pos = self.decoder_pos(x.dtype).expand(b, -1, -1)                  # (B, N, Dd)
        dd = pos.shape[-1]
        pos_visible = pos[~mask].reshape(b, -1, dd)
        pos_hidden = pos[mask].reshape(b, -1, dd)                          # (B, M, Dd)
        z = torch.cat([x + pos_visible, self.mask_token.to(x.dtype) + pos_hidden], dim=1)
        for block in self.decoder_blocks:
            z = block(z)
        z = z[:, -pos_hidden.shape[1]:]                                    # the hidden tokens' outputs
        return self.decoder_head(self.decoder_norm(z))

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None):
        """(B, T, C, H, W), bool (B, N) → (logits (B, M, t·p·q·C), loss scalar), as transformers' outputs."""
        if bool_masked_pos is None:
            raise UsageError(f"{self.name}: pre-training needs bool_masked_pos (see vivitcli.masking.make_mask)")
        x = self._check_native(pixel_values)
        mask = self.check_mask(bool_masked_pos, x.shape[0])
        with self._mode():
            logits = self.predict(x, mask)
            with torch.no_grad():
                targets = loss_targets(x, self.cfg.tubelet, self.norm_pix_loss)
                targets = targets[mask].reshape(x.shape[0], -1, targets.shape[-1])
            loss = F.mse_loss(logits, targets)
        return logits, loss

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        if self.decoder_pos_embed.dtype != torch.float32:
            self.decoder_pos_embed = sinusoid_table(self.cfg.num_patches, self.decoder_cfg.hidden_size).to(
                self.decoder_pos_embed.device)
        return out

    def extra_repr(self) -> str:
        d = self.decoder_cfg
        return (super().extra_repr() + f", decoder=({d.hidden_size} wide, {d.num_layers} layers, {d.num_heads} heads), "
                f"norm_pix_loss={d.norm_pix_loss}")


# ---- checkpoint keys ------------------------------------------------------------------------------------
_DECODER_LAYER = "decoder.decoder_layers."
_TOP = {"encoder_to_decoder.weight": "encoder_to_decoder.weight", "mask_token": "mask_token",
        "decoder.norm.weight": "decoder_norm.weight", "decoder.norm.bias": "decoder_norm.bias",
        "decoder.head.weight": "decoder_head.weight", "decoder.head.bias": "decoder_head.bias"}
_TOP_BACK = {v: k for k, v in _TOP.items()}
# Fixed sinusoid tables some exports persist; recomputed, never read.
_IGNORED = ("position_embeddings", "embeddings.position_embeddings")
_NO_DECODER_HINT = "use a VideoMAEForPreTraining checkpoint, e.g. MCG-NJU/videomae-base or demo-mae"


def hf_to_native(state: dict, cfg: ModelConfig) -> dict:
    """Prefix-less hub-layout VideoMAEForPreTraining state dict → native keys.

    The decoder layers have the encoder layers' layout, so both go through checkpoint.hf_to_native (which
    fuses q/k/v); unknown keys come back unchanged for the caller's unexpected-key check."""
    from vivitcli.models import checkpoint

    encoder, decoder, out = {}, {}, {}
    for key, value in state.items():
        if key in _TOP:
            out[_TOP[key]] = value
        elif key.startswith(_DECODER_LAYER):
            decoder["encoder.layer." + key[len(_DECODER_LAYER):]] = value
        else:
            encoder[key] = value
    out.update(checkpoint.hf_to_native(encoder, cfg))
    out.update({"decoder_" + k: v for k, v in checkpoint.hf_to_native(decoder, cfg).items()})
    return out


def native_to_hf(state: dict, cfg: ModelConfig) -> dict:
    """Native state dict → the prefix-less hub layout (inverse of hf_to_native; q/k/v split again)."""
    from vivitcli.models import checkpoint

    encoder, decoder, out = {}, {}, {}
    for key, value in state.items():
        if key in _TOP_BACK:
            out[_TOP_BACK[key]] = value
        elif key.startswith("decoder_blocks."):
            decoder[key[len("decoder_"):]] = value
        elif key not in ("pos_embed", "decoder_pos_embed"):
            encoder[key] = value
    out.update(checkpoint.native_to_hf(encoder, cfg, prefix=False))
    out.update({_DECODER_LAYER + k[len("encoder.layer."):]: v
                for k, v in checkpoint.native_to_hf(decoder, cfg, prefix=False).items()})
    return out


def check_fit(cfg: ModelConfig, shapes: dict, *, source: str = "checkpoint", attn: str = "sdpa"):
    """Check hub-layout tensor names/shapes ({key: shape}, any spelling normalize_hf_keys knows) against the
    config before any tensor is read; returns the model built on the meta device (no memory) and the ignored
    keys. One CheckpointError line naming `source` otherwise."""
    from vivitcli.models.checkpoint import compare_shapes, normalize_hf_keys

    if cfg.model_type != "videomae":
        raise CheckpointError(f"{source}: model_type {cfg.model_type!r} has no pre-training decoder", _NO_DECODER_HINT)
    hf = normalize_hf_keys({k: tuple(v) for k, v in shapes.items()}, "videomae")
    if "decoder.head.weight" not in hf:
        raise CheckpointError(f"{source}: no decoder weights (not a VideoMAE pre-training checkpoint)",
                              _NO_DECODER_HINT)
    ignored = sorted(k for k in hf if k in _IGNORED)
    hf = {k: v for k, v in hf.items() if k not in _IGNORED}
    with torch.device("meta"):
        model = VideoMAEForPreTraining(cfg, attn=attn, source=source)
    expected = {k: tuple(v.shape) for k, v in native_to_hf(model.state_dict(), cfg).items()}
    compare_shapes(hf, expected, source=source, what="VideoMAE pre-training")
    return model, ignored


def from_state_dict(cfg: ModelConfig, state: dict, *, source: str = "checkpoint",
                    attn: str = "sdpa") -> VideoMAEForPreTraining:
    """Build the pre-training model for `cfg` and load a hub-layout state dict (strict, shape-checked)."""
    from vivitcli.models.checkpoint import normalize_hf_keys

    model, ignored = check_fit(cfg, {k: v.shape for k, v in state.items()}, source=source, attn=attn)
    hf = normalize_hf_keys(state, "videomae")
    native = hf_to_native({k: v for k, v in hf.items() if k not in _IGNORED}, cfg)
    dtypes = {v.dtype for v in native.values() if v.is_floating_point()}
    load_dtype = dtypes.pop() if len(dtypes) == 1 else torch.float32
    model.load_state_dict({k: v.to(load_dtype) if v.is_floating_point() else v for k, v in native.items()},
                          strict=True, assign=True)
    model.pos_embed = sinusoid_table(cfg.num_patches, cfg.hidden_size)
    model.decoder_pos_embed = sinusoid_table(cfg.num_patches, model.decoder_cfg.hidden_size)
    model.load_report = {"ignored_keys": ignored, "warnings": []}
    return model.eval()


def load_pretraining(name_or_path, *, device="auto", dtype="auto", attn: str = "sdpa",
                     task: str = "pretraining") -> VideoMAEForPreTraining:
    """load_model(..., task="pretraining"): a VideoMAE pre-training checkpoint with its decoder, eval mode.

    name_or_path: a directory in the Hugging Face layout, a model name (e.g. demo-mae) or a hub id. The
    folder is opened as every loader opens an untrusted one (checkpoint.open_checkpoint: validated JSON,
    files inside the folder), names and shapes are checked from the safetensors headers, and only then are
    tensors read. Raises ModelNotFoundError when nothing is found, CheckpointError when it is not a
    pre-training checkpoint."""
    from vivitcli.models.base import check_attn
    from vivitcli.models.build import finalize
    from vivitcli.models.checkpoint import load_weights, open_checkpoint, weight_shapes
    from vivitcli.models.hub import resolve_model_path

    if task != "pretraining":
        raise UsageError(f"task must be 'default' or 'pretraining', got {task!r}")
    check_attn(attn)
    path, name = resolve_model_path(name_or_path)
    cfg, pre, files = open_checkpoint(path)
    if cfg.model_type != "videomae":     # before reading any weights
        raise CheckpointError(f"{path}: model_type {cfg.model_type!r} has no pre-training decoder", _NO_DECODER_HINT)
    DecoderConfig.from_model_config(cfg, str(path / "config.json"))
    shapes = weight_shapes(files)
    if shapes is not None:
        check_fit(cfg, shapes, source=str(path), attn=attn)
    state: dict = {}
    for f in files:
        state.update(load_weights(f))
    model = from_state_dict(cfg, state, source=str(path), attn=attn)
    model = finalize(model, name=name, device=device, dtype=dtype, preprocessor_config=pre)
    model.path = path
    return model


def build_pretraining(config: dict, *, device="auto", dtype="auto", attn: str = "sdpa", name: str | None = None,
                      seed: int | None = None) -> VideoMAEForPreTraining:
    """A pre-training model with random weights for a VideoMAE config.json dict (benchmarks, tests), eval mode.

    Weights as build_model draws them (models.layers.init_weights); the mask token too. seed makes them
    reproducible without touching the global generator's state for the caller."""
    from vivitcli.models.base import check_attn
    from vivitcli.models.build import finalize
    from vivitcli.models.layers import init_weights

    check_attn(attn)
    cfg = ModelConfig.from_dict(config, source=name or "config")
    if cfg.model_type != "videomae":
        raise UsageError(f"{name or 'config'}: model_type {cfg.model_type!r} has no pre-training decoder")
    state = torch.random.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        with torch.device("meta"):
            model = VideoMAEForPreTraining(cfg, attn=attn, source=name or "config")
        model.to_empty(device="cpu")
        init_weights(model)
        with torch.no_grad():
            model.mask_token.normal_(0.0, 0.02).clamp_(-0.04, 0.04)
        model.pos_embed = sinusoid_table(cfg.num_patches, cfg.hidden_size)
        model.decoder_pos_embed = sinusoid_table(cfg.num_patches, model.decoder_cfg.hidden_size)
    finally:
        if seed is not None:
            torch.random.set_rng_state(state)
    return finalize(model, name=name or config.get("_name_or_path") or "videomae-pretraining", device=device,
                    dtype=dtype)
