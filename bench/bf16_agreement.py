"""bfloat16 vivitcli logits against transformers' float32 logits: the range of the largest difference.

Random perturbed checkpoints (tests/checkpoints.py, written by transformers' save_pretrained) on random
normal pixels: the eight tiny parity configs of tests/test_models_parity.py, then ViViT-B and VideoMAE-B
geometry at 224 px (full token count and width) with a few layers, the size where rounding builds up.

    python bench/bf16_agreement.py            # about two minutes on 2 CPU cores
    python bench/bf16_agreement.py --layers 2 4
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.checkpoints import load_reference, make_tiny_videomae, make_tiny_vivit, random_pixels  # noqa: E402
from tests.test_models_parity import CASES  # noqa: E402

VIVIT_B = dict(image_size=224, num_frames=32, tubelet_size=[2, 16, 16], hidden_size=768, num_attention_heads=12,
               intermediate_size=3072, num_labels=400)
VIDEOMAE_B = dict(image_size=224, num_frames=16, tubelet_size=2, patch_size=16, hidden_size=768,
                  num_attention_heads=12, intermediate_size=3072, num_labels=400)


def measure(path: Path, batch: int, seed: int) -> tuple[float, float]:
    """(max |bf16 - fp32| over the logits, max |fp32 logit|) for one random batch."""
    import torch

    from vivitcli.models import load_model

    x = random_pixels(path, batch=batch, seed=seed)
    with torch.no_grad():
        ref = load_reference(path, attn="eager")(x).logits
        model = load_model(path, dtype="bfloat16", device="cpu")
        ours = model(x).float()
    return (ours - ref).abs().max().item(), ref.abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[2], help="encoder depths for the 224 px configs")
    parser.add_argument("--seeds", type=int, default=1, help="random inputs per large config")
    args = parser.parse_args()
    import torch
    import transformers

    torch.manual_seed(0)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}")
    print(f"{'config':36} {'max |bf16 - fp32|':>18} {'max |logit|':>12}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, maker, kwargs in CASES:
            path = maker(Path(tmp) / name, **kwargs)
            rows.append((name, *measure(path, batch=2, seed=1)))
            print(f"{rows[-1][0]:36} {rows[-1][1]:18.2e} {rows[-1][2]:12.3f}", flush=True)
        for layers in args.layers:
            for (name, maker, cfg), perturb in itertools.product(
                    (("vivit-b-224", make_tiny_vivit, VIVIT_B), ("videomae-b-224", make_tiny_videomae, VIDEOMAE_B)),
                    (False, True)):
                # perturb: every parameter moved by N(0, 0.05) as the tests do; without: transformers' init.
                label = f"{name}-L{layers}" + ("-perturbed" if perturb else "-init")
                path = maker(Path(tmp) / label, num_hidden_layers=layers, perturb=perturb, **cfg)
                for seed in range(args.seeds):
                    rows.append((f"{label} seed {seed}", *measure(path, batch=1, seed=seed)))
                    print(f"{rows[-1][0]:36} {rows[-1][1]:18.2e} {rows[-1][2]:12.3f}", flush=True)
    diffs = [r[1] for r in rows]
    print(f"range of max |bf16 - fp32| over {len(rows)} runs: {min(diffs):.1e} .. {max(diffs):.1e}")


if __name__ == "__main__":
    main()
