"""Checkpoint conversion for `vivit convert`: original releases and pickles in, the Hugging Face layout out.

    from vivitcli.convert import convert_checkpoint
    result = convert_checkpoint("vit_b_k400.pth", "videomae-b-k400", labels="kinetics400")
    result.max_abs_diff   # verification: source vs result on one synthetic clip

Modules: sources (format detection, safe loading), videomae_original and scenic_vivit (key mappings),
msgpack_reader (Flax checkpoints without flax), reference (forwards over the original layouts, for
verification), output (atomic writing), core (the pipeline).
"""

from __future__ import annotations

from vivitcli.convert.core import ConvertOptions, ConvertResult, convert_checkpoint, read_labels

__all__ = ["ConvertOptions", "ConvertResult", "convert_checkpoint", "read_labels"]
