"""Accuracy of a demo checkpoint on freshly written clips: `python -m vivitcli.demo.evaluate [--clips 300]`.

Clip i is `synthetic.sample_spec(seed_start + i)` (the whole range: sizes, aspects, fps, durations, codecs,
shapes, backgrounds), written to a temporary directory with PyAV, then read back and classified through
`vivitcli.load_model(...)` and `model.read_clip(path)`: the chain `vivit classify` runs. Integer seeds never
coincide with the training clips' seed material (see train.py). Prints per-group accuracy on stderr and a
JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from vivitcli import synthetic

DEFAULT_SEED_START = 1_000_000


def _aspect(spec: synthetic.ClipSpec) -> str:
    ratio = spec.width / spec.height
    return min(synthetic.ASPECTS, key=lambda k: abs(ratio - synthetic.ASPECTS[k][0] / synthetic.ASPECTS[k][1]))


class _TransformersReference:
    """Dev/reference path: transformers' model and a plain PyAV decode with uniform linspace sampling."""

    def __init__(self, path: str):
        import torch
        from transformers import AutoModelForVideoClassification

        from vivitcli.preprocess import Preprocessor

        self.hf = AutoModelForVideoClassification.from_pretrained(path).eval()
        config = json.loads((Path(path) / "preprocessor_config.json").read_text())
        self.preprocessor = Preprocessor.from_config(config, self.hf.config.model_type)
        self.labels = [self.hf.config.id2label[i] for i in range(self.hf.config.num_labels)]
        self.num_frames = self.hf.config.num_frames
        self.device, self.dtype = torch.device("cpu"), torch.float32

    def read_clip(self, path):
        import av

        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        idx = np.rint(np.linspace(0, len(frames) - 1, self.num_frames)).astype(int)
        return self.preprocessor(np.stack([frames[i] for i in idx]))

    def __call__(self, pixels):
        return self.hf(pixel_values=pixels).logits


def evaluate(model_name: str, clips: int, seed_start: int, workdir: Path, log=print,
             backend: str = "vivitcli") -> dict:
    import torch

    if backend == "transformers":
        model = _TransformersReference(model_name)
    else:
        import vivitcli

        model = vivitcli.load_model(model_name, device="cpu")
    labels = list(model.labels)
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    confusion = np.zeros((len(synthetic.CLASSES), len(labels)), dtype=np.int64)
    wrong = []
    t0 = time.time()
    for i in range(clips):
        seed = seed_start + i
        spec = synthetic.sample_spec(seed)
        path = synthetic.write_clip(spec, workdir / f"clip_{seed}{synthetic.CODECS[spec.codec][1]}")
        with torch.inference_mode():
            pixels = model.read_clip(path)
            logits = model(pixels[None].to(model.device, model.dtype))
        predicted = labels[int(logits.argmax(-1))]
        ok = predicted == spec.label
        confusion[synthetic.CLASSES.index(spec.label), int(logits.argmax(-1))] += 1
        for key in ("all", spec.label, spec.codec, _aspect(spec), spec.shape, spec.background,
                    "fps<=24" if spec.fps <= 24 else "fps>24", "<=2s" if spec.duration <= 2 else ">2s",
                    "long<=200" if max(spec.width, spec.height) <= 200 else "long>200"):
            groups[key][0] += ok
            groups[key][1] += 1
        if not ok:
            wrong.append({"seed": seed, "predicted": predicted, "spec": spec.describe()})
        Path(path).unlink()
    seconds = time.time() - t0
    for key, (ok, n) in groups.items():
        log(f"{key:>14}: {ok}/{n} = {ok / n:.3f}")
    for w in wrong:
        log(f"wrong: seed {w['seed']}: predicted {w['predicted']!r} for {w['spec']}")
    return {"model": model_name, "clips": clips, "seed_start": seed_start,
            "accuracy": round(groups["all"][0] / clips, 4), "wrong": len(wrong),
            "confusion": confusion.tolist(), "seconds": round(seconds, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vivitcli.demo.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demo", help="alias, hub id or checkpoint directory")
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--seed-start", type=int, default=DEFAULT_SEED_START)
    parser.add_argument("--backend", choices=("vivitcli", "transformers"), default="vivitcli",
                        help="vivitcli (the CLI's chain) or transformers (reference; --model must be a directory)")
    args = parser.parse_args(argv)
    if args.backend == "transformers" and args.model == "demo":
        args.model = str(Path(__file__).resolve().parent / "model")
    with tempfile.TemporaryDirectory(prefix="vivit-demo-eval-") as tmp:
        result = evaluate(args.model, args.clips, args.seed_start, Path(tmp),
                          log=lambda m: print(m, file=sys.stderr, flush=True), backend=args.backend)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
