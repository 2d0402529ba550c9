"""Token masks for VideoMAE pre-training: `bool_masked_pos` (B, N) over the (t, h, w) raster token order.

tube (the paper's TubeMaskingGenerator): one spatial mask of int(ratio · h·w) patches per clip, repeated in
  every time slot, so a hidden patch stays hidden for the whole clip and cannot be copied from a
  neighbouring frame;
random: int(ratio · N) tokens drawn independently over the whole (t, h, w) grid, for comparison.

Every clip in a batch hides the same number of tokens (the encoder keeps (B, visible, D) rectangular).
The masks come from a seeded torch.Generator, so a seed gives the same mask on every machine.
"""

from __future__ import annotations

from vivitcli.errors import UsageError

MASKINGS = ("tube", "random")
DEFAULT_MASK_RATIO = 0.9


def masked_count(mask_ratio: float, grid: tuple[int, int, int], masking: str = "tube") -> int:
    """How many tokens a clip hides: int(ratio · h·w) per time slot (tube) or int(ratio · N) (random)."""
    check_masking(masking, mask_ratio)
    t, h, w = grid
    if masking == "tube":
        return int(mask_ratio * h * w) * t
    return int(mask_ratio * t * h * w)


def check_masking(masking: str, mask_ratio: float) -> None:
    if masking not in MASKINGS:
        raise UsageError(f"masking must be one of {', '.join(MASKINGS)}, got {masking!r}")
    if not 0.0 < float(mask_ratio) < 1.0:
        raise UsageError(f"mask ratio must be between 0 and 1 (exclusive), got {mask_ratio:g}")


def make_mask(grid: tuple[int, int, int], mask_ratio: float = DEFAULT_MASK_RATIO, *, masking: str = "tube",
              batch: int = 1, seed: int | None = 0, generator=None):
    """bool (batch, t·h·w) with True = hidden. `generator` (a torch.Generator) wins over `seed`.

    Raises UsageError for an unknown masking, a ratio outside (0, 1), or a ratio that hides no token or
    every token of the grid (the encoder needs at least one visible token, the loss one hidden token).
    """
    import torch

    t, h, w = (int(v) for v in grid)
    check_masking(masking, mask_ratio)
    n_hidden = masked_count(mask_ratio, (t, h, w), masking)
    if n_hidden == 0 or n_hidden == t * h * w:
        what = "no token" if n_hidden == 0 else "every token"
        raise UsageError(f"mask ratio {mask_ratio:g} hides {what} of a {t}x{h}x{w} token grid "
                         f"({masking} masking); pick a ratio that leaves some tokens on each side")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    if masking == "tube":
        per_slot = n_hidden // t
        spatial = _rows_with_k_true(batch, h * w, per_slot, generator)           # (B, h·w)
        return spatial[:, None, :].expand(batch, t, h * w).reshape(batch, t * h * w).contiguous()
    return _rows_with_k_true(batch, t * h * w, n_hidden, generator)


def _rows_with_k_true(rows: int, length: int, k: int, generator):
    """bool (rows, length) with exactly k True per row at uniformly random places."""
    import torch

    order = torch.rand(rows, length, generator=generator).argsort(dim=1)        # a random permutation per row
    mask = torch.zeros(rows, length, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return mask
