"""Multi-view evaluation geometry: three spatial crops along the long side, as the ViViT / SlowFast papers test.

After the resize (shortest edge → e.g. 256), take three `crop`-sized squares: left / centre / right when the
frame is wider than tall (or square), top / middle / bottom when it is taller. Offsets follow Scenic's
dataset_lib/video_ops.deterministic_crop: the centre offset is ceil((side - crop) / 2) — one pixel right of /
below the single centre crop's floor((side - crop) / 2) (HF's) when the difference is odd — and the outer two
touch the frame's edges. The caller averages the views' logits (with --clips K: K×3 views).

    from vivitcli.crops import three_crop_boxes, take_crops
    boxes = three_crop_boxes(256, 341, 224)          # [(top, left, height, width), ...] × 3
    views = take_crops(frames, boxes)                # frames (T, H, W, C) → three (T, 224, 224, C) views
"""

from __future__ import annotations

NUM_VIEWS = 3


def three_crop_boxes(height: int, width: int, crop: int | tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """(top, left, crop_h, crop_w) of the three views of a `height` × `width` frame, in order 0, 1, 2
    (left/centre/right or top/middle/bottom). ValueError when the crop is larger than the frame."""
    ch, cw = (crop, crop) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))
    if ch <= 0 or cw <= 0 or ch > height or cw > width:
        raise ValueError(f"a {ch}x{cw} crop does not fit a {height}x{width} frame")
    top, left = -(-(height - ch) // 2), -(-(width - cw) // 2)      # ceil division, as Scenic
    if height > width:
        return [(0, left, ch, cw), (top, left, ch, cw), (height - ch, left, ch, cw)]
    return [(top, 0, ch, cw), (top, left, ch, cw), (top, width - cw, ch, cw)]


def take_crops(frames, boxes):
    """Slice each (top, left, h, w) box out of frames shaped (..., H, W, C) (numpy or torch): views, no copies."""
    return [frames[..., t:t + h, l:l + w, :] for t, l, h, w in boxes]
