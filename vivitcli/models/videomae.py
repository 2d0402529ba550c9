"""VideoMAE: what transformers' VideoMAEModel / VideoMAEForVideoClassification compute, in plain PyTorch.

tubelets → + fixed sinusoid table over the flattened (t, h, w) index → pre-LN blocks (exact GELU,
eps 1e-12; q and v biases, none on k) → then either
  use_mean_pooling=True:  token mean → fc_norm (eps 1e-5) → classifier, or
  use_mean_pooling=False: LayerNorm → first token → classifier.
There is no CLS token. Pre-training checkpoints (encoder + decoder) load without their decoder.
"""

from __future__ import annotations

import torch
from torch import nn

from vivitcli.errors import UsageError
from vivitcli.models.base import VideoModel, check_pool
from vivitcli.models.config import ModelConfig
from vivitcli.models.layers import TubeletEmbed, interpolate_pos_table, sinusoid_table


class VideoMAE(VideoModel):
    model_type = "videomae"

    def __init__(self, cfg: ModelConfig, *, num_labels: int = 0, fc_norm: bool | None = None,
                 attn: str = "sdpa"):
        """fc_norm: whether the mean-pooled vector goes through `fc_norm` (the classification checkpoints
        with use_mean_pooling have it; pre-training and base checkpoints do not). Default: when there is
        a classifier and use_mean_pooling."""
        super().__init__(cfg, num_labels=num_labels, attn=attn)
        d = cfg.hidden_size
        self.patch_embed = TubeletEmbed(cfg.num_channels, d, cfg.tubelet)
        # Fixed, not in the checkpoint: kept in float32 and cast per dtype in pos_table.
        self.register_buffer("pos_embed", sinusoid_table(cfg.num_patches, d), persistent=False)
        self.norm = None if cfg.use_mean_pooling else nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        if fc_norm is None:
            fc_norm = cfg.use_mean_pooling and num_labels > 0
        # transformers builds fc_norm with nn.LayerNorm's default eps (1e-5), not layer_norm_eps.
        self.fc_norm = nn.LayerNorm(d) if fc_norm else None

    def pos_table(self, grid: tuple[int, int, int], dtype: torch.dtype) -> torch.Tensor:
        """(N, D) in `dtype`: the sinusoid table at the native grid, else the native table resampled over
        (t, h, w) like ViViT's learned one (bicubic in space, linear in time), so every token keeps the
        geometric position the checkpoint was trained with. Cached per grid and dtype."""
        table = self.pos_embed
        key = (grid, dtype, table.device)

        def compute():
            if grid == self.cfg.grid:
                return table.to(dtype)
            return interpolate_pos_table(table, self.cfg.grid, grid).to(dtype)

        return self._cached_pos(key, compute)

    def tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        _, t, _, h, w = pixel_values.shape
        x = self.patch_embed(pixel_values)                                   # (B, N, D)
        return x + self.pos_table(self.patch_embed.grid(t, h, w), x.dtype)

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) if self.norm is not None else x

    def pool(self, x: torch.Tensor, pool: str = "default") -> torch.Tensor:
        """default: what the classifier reads — fc_norm(token mean) when the checkpoint has fc_norm, the
        token mean for mean-pooling or head-less checkpoints, else the first token of the final LayerNorm.
        mean: the token mean (through fc_norm when there is one)."""
        check_pool(pool)
        if pool == "cls":
            raise UsageError(f"{self.name}: VideoMAE has no CLS token; use pool 'default' or 'mean'")
        if pool == "default" and not self.cfg.use_mean_pooling and self.head is not None:
            return x[:, 0]
        pooled = x.mean(dim=1)
        return self.fc_norm(pooled) if self.fc_norm is not None else pooled

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        if self.pos_embed.dtype != torch.float32:
            # The fixed table stays float32 under .half()/.to(dtype) (it is cast per forward, as transformers
            # does); recomputing it avoids a lossy round trip through the low-precision dtype.
            self.pos_embed = sinusoid_table(self.cfg.num_patches, self.cfg.hidden_size).to(self.pos_embed.device)
        return out
