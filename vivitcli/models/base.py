"""VideoModel: what ViViT and VideoMAE share — blocks, head, pooling, attention switch, metadata, I/O helpers."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from vivitcli.errors import UsageError
from vivitcli.models.config import ModelConfig
from vivitcli.models.layers import ATTN_IMPLS, Attention, Block

POOLS = ("default", "mean", "cls")


class VideoModel(nn.Module):
    """A video transformer that maps float pixels (B, T, C, H, W) to logits (B, K) or embeddings (B, D).

    Subclasses implement `tokens(pixel_values)` (patch + position embedding, before the blocks),
    `finish(x)` (what follows the blocks) and `pool(x, pool)`.

    In eval mode, forward / embed / forward_features run under torch.no_grad (outputs are plain tensors
    without autograd history); call `.train()` to get gradients.
    """

    model_type = ""

    def __init__(self, cfg: ModelConfig, *, num_labels: int = 0, attn: str = "sdpa"):
        super().__init__()
        check_attn(attn)
        self.cfg = cfg
        d = cfg.hidden_size
        self.blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.intermediate_size, cfg.hidden_act, cfg.layer_norm_eps, cfg.qkv_bias, attn)
            for _ in range(cfg.num_layers)
        )
        self.head = nn.Linear(d, num_labels) if num_labels > 0 else None
        # Metadata filled in by the loader (load_model / build_model).
        self.name: str = cfg.raw.get("_name_or_path") or cfg.model_type
        self.labels: list[str] = []
        self.label_source: str = "placeholder"
        self.preprocessor = None
        self.load_report: dict = {"ignored_keys": [], "warnings": []}
        self.path = None                      # the checkpoint directory, when loaded from one
        self._pos_cache: dict = {}

    # ---- metadata -------------------------------------------------------------------------------------
    @property
    def config(self) -> dict:
        """The config.json dict this model was built from."""
        return self.cfg.raw

    @property
    def num_frames(self) -> int:
        return self.cfg.num_frames

    @property
    def image_size(self) -> int | tuple[int, int]:
        """The checkpoint's input size: an int for square inputs (the usual case), else (height, width)."""
        h, w = self.cfg.image_size
        return h if h == w else (h, w)

    @property
    def num_labels(self) -> int:
        return self.head.out_features if self.head is not None else 0

    @property
    def has_classifier(self) -> bool:
        return self.head is not None

    @property
    def hidden_size(self) -> int:
        return self.cfg.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def attn(self) -> str:
        return self.blocks[0].attn.impl if len(self.blocks) else "sdpa"

    def set_attn(self, impl: str) -> "VideoModel":
        """Switch every attention layer to "eager" (float32 softmax, the reference) or "sdpa"."""
        check_attn(impl)
        for m in self.modules():
            if isinstance(m, Attention):
                m.impl = impl
        return self

    # ---- input helpers ----------------------------------------------------------------------------------
    def preprocess(self, frames) -> torch.Tensor:
        """uint8 RGB (T, H, W, 3) → float32 (T, C, S, S) as the checkpoint's preprocessor_config.json says."""
        return self.preprocessor(frames)

    def read_clip(self, path, **kwargs):
        """vivitcli.video.read.read_clip with this model's preprocessor and frame count."""
        from vivitcli.video.read import read_clip

        kwargs.setdefault("num_frames", self.num_frames)
        return read_clip(path, self.preprocessor, **kwargs)

    # ---- compute ----------------------------------------------------------------------------------------
    def _mode(self):
        # no_grad rather than inference_mode: inference tensors would break callers that feed outputs to
        # modules with trainable parameters (e.g. model.head(model.embed(x))); the speed is the same here.
        return torch.no_grad() if not self.training else contextlib.nullcontext()

    def _check_input(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 5:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values)
            raise UsageError(f"{self.name}: pixel_values must be (batch, frames, channels, height, width), "
                             f"got {shape}")
        _, t, c, h, w = pixel_values.shape
        tt, p, q = self.cfg.tubelet
        if c != self.cfg.num_channels or t < tt or h < p or w < q:
            raise UsageError(f"{self.name}: input (frames={t}, channels={c}, {h}x{w}) is too small or has the "
                             f"wrong channel count (needs {self.cfg.num_channels} channels, at least {tt} frames "
                             f"and {p}x{q} pixels)")
        return pixel_values.to(device=self.device, dtype=self.dtype)

    def tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pool(self, x: torch.Tensor, pool: str = "default") -> torch.Tensor:
        raise NotImplementedError

    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.tokens(self._check_input(pixel_values))
        for block in self.blocks:
            x = block(x)
        return self.finish(x)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) → last hidden state (B, N, D), as transformers' `last_hidden_state`."""
        with self._mode():
            return self._features(pixel_values)

    def check_head(self) -> None:
        """UsageError for logits from a checkpoint without a classifier (every runner asks this one)."""
        if self.head is None:
            raise UsageError(f"{self.name}: this checkpoint has no classification head "
                             f"(a base or pre-training checkpoint); use it for embeddings")

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) → logits (B, num_labels)."""
        self.check_head()
        with self._mode():
            return self.head(self.pool(self._features(pixel_values), "default"))

    def embed(self, pixel_values: torch.Tensor, pool: str = "default") -> torch.Tensor:
        """(B, T, C, H, W) → (B, D). pool="default" is the vector the classifier reads."""
        check_pool(pool)
        with self._mode():
            return self.pool(self._features(pixel_values), pool)

    # ---- position-table cache ---------------------------------------------------------------------------
    def _cached_pos(self, key, compute):
        """Memoise a derived position table (per grid, dtype, device) unless autograd needs a fresh one."""
        if torch.is_grad_enabled():
            return compute()
        table = self._pos_cache.get(key)
        if table is None:
            with torch.no_grad():
                table = compute()
            self._pos_cache[key] = table
        return table

    def _apply(self, fn, *args, **kwargs):
        self._pos_cache = {}
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs):
        self._pos_cache = {}
        return super()._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        return (f"model_type={self.model_type}, frames={self.num_frames}, image_size={self.image_size}, "
                f"tubelet={self.cfg.tubelet}, labels={self.num_labels}, attn={self.attn}")


def check_pool(pool: str) -> None:
    """UsageError for a pooling name no model has (a model may still refuse one it lacks, e.g. cls)."""
    if pool not in POOLS:
        raise UsageError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")


def check_attn(impl: str) -> None:
    if impl not in ATTN_IMPLS:
        raise UsageError(f"attention must be one of {', '.join(ATTN_IMPLS)}, got {impl!r}")
