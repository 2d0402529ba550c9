"""ViViT (factorised-encoder-free "model 1" as in google/vivit-b-16x2-kinetics400): what transformers'
VivitModel / VivitForVideoClassification compute, in plain PyTorch.

tubelets → [CLS] + tokens → + learned position table → pre-LN blocks (gelu_fast, eps 1e-6) → LayerNorm
→ classifier on the CLS token.
"""

from __future__ import annotations

import torch
from torch import nn

from vivitcli.models.base import VideoModel, check_pool
from vivitcli.models.config import ModelConfig
from vivitcli.models.layers import TubeletEmbed, interpolate_pos_table


class ViViT(VideoModel):
    model_type = "vivit"

    def __init__(self, cfg: ModelConfig, *, num_labels: int = 0, attn: str = "sdpa"):
        super().__init__(cfg, num_labels=num_labels, attn=attn)
        d = cfg.hidden_size
        self.patch_embed = TubeletEmbed(cfg.num_channels, d, cfg.tubelet)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.num_patches, d))    # [CLS] row + (t, h, w) raster
        self.norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)

    def pos_table(self, grid: tuple[int, int, int]) -> torch.Tensor:
        """(1, 1 + t·h·w, D): the checkpoint's table itself at the native grid, else resampled and cached.

        See layers.interpolate_pos_table: bicubic in space, linear in time; the CLS row is kept as is.
        """
        if grid == self.cfg.grid:
            return self.pos_embed
        table = self.pos_embed
        key = (grid, table.dtype, table.device, table._version)

        def compute():
            patches = interpolate_pos_table(table[0, 1:], self.cfg.grid, grid)
            return torch.cat([table[0, :1], patches], dim=0).unsqueeze(0)

        return self._cached_pos(key, compute)

    def tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        b, t, _, h, w = pixel_values.shape
        x = self.patch_embed(pixel_values)                                   # (B, N, D)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)          # (B, 1 + N, D)
        return x + self.pos_table(self.patch_embed.grid(t, h, w))

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)

    def pool(self, x: torch.Tensor, pool: str = "default") -> torch.Tensor:
        """default / cls: the final-LayerNorm CLS token (what the classifier reads); mean: mean of patch tokens."""
        check_pool(pool)
        if pool == "mean":
            return x[:, 1:].mean(dim=1)
        return x[:, 0]  # default, cls
