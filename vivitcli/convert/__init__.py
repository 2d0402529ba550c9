"""Checkpoint conversion for `vivit convert`: original releases and pickles in, the Hugging Face layout out.

    from vivitcli.convert import convert_checkpoint
    result = convert_checkpoint("vit_b_k400.pth", "videomae-b-k400", labels="kinetics400")
    result.max_abs_diff   # verification: source vs result on one synthetic clip

Modules: options (ConvertOptions / ConvertResult), sources (format detection, safe loading), readers (one per
source format), videomae_original / scenic_vivit / scenic_fe (key mappings), flax_msgpack (Flax checkpoints
without flax), reference (forwards over the original layouts), classes (head, labels, splits), verify, output
(atomic writing), core (the pipeline).
"""

from __future__ import annotations

from vivitcli.convert.core import convert_checkpoint
from vivitcli.convert.options import ConvertOptions, ConvertResult

__all__ = ["ConvertOptions", "ConvertResult", "convert_checkpoint"]
