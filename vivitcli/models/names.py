"""Every model name vivit knows, in one table: aliases of hub checkpoints, models shipped in the package,
random-weight architecture presets, and checkpoints that must be converted first.

Stdlib only: `vivit --help`, `vivit models` and the completion generator read this without torch.

    kind "hub"      a Hugging Face repository; `target` is its id (downloaded once into the HF cache)
    kind "package"  a checkpoint shipped inside vivitcli; `target` is its folder under vivitcli/
    kind "random"   an architecture with random weights (benchmarks, tests); `target` names a config in
                    vivitcli.models.presets. The names start with "random-" so nobody mistakes them for
                    trained checkpoints.
    kind "convert"  an official release with no hub port; `note` holds the `vivit convert` command

`shape` feeds the download-size estimate of `vivit models`:
    (model_type, hidden, layers, mlp, frames, image, tubelet_t, patch, classes, decoder (hidden, layers, mlp))
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelName:
    target: str
    kind: str
    aliases: tuple[str, ...] = ()
    shape: tuple | None = None
    note: str = ""


SCENIC_BUCKET = "https://storage.googleapis.com/scenic-bucket/vivit"


def _scenic_fe(release: str, alias: str, what: str, labels: str) -> ModelName:
    """A released Scenic checkpoint: its URL, and the note saying how to convert it."""
    return ModelName(f"{SCENIC_BUCKET}/{release}/checkpoint", "convert", (alias,),
                     note=f"{what}; convert from Scenic: download the checkpoint URL, then "
                          f"vivit convert checkpoint ~/models/{alias} --labels {labels}")


MODELS: tuple[ModelName, ...] = (
    ModelName("demo/model", "package", ("demo",),
              note="a small ViViT trained on synthetic clips (6 motion classes), for offline use"),
    ModelName("demo/mae/model", "package", ("demo-mae",),
              note="a small VideoMAE pre-training model (with its decoder) trained on synthetic clips, for vivit reconstruct"),
    ModelName("google/vivit-b-16x2-kinetics400", "hub", ("vivit", "vivit-k400"),
              ("vivit", 768, 12, 3072, 32, 224, 2, 16, 400, None)),
    ModelName("MCG-NJU/videomae-base-finetuned-kinetics", "hub", ("videomae", "videomae-base-k400"),
              ("videomae", 768, 12, 3072, 16, 224, 2, 16, 400, None)),
    ModelName("MCG-NJU/videomae-small-finetuned-kinetics", "hub", ("videomae-small-k400",),
              ("videomae", 384, 12, 1536, 16, 224, 2, 16, 400, None)),
    ModelName("MCG-NJU/videomae-large-finetuned-kinetics", "hub", ("videomae-large-k400",),
              ("videomae", 1024, 24, 4096, 16, 224, 2, 16, 400, None)),
    ModelName("MCG-NJU/videomae-base-finetuned-ssv2", "hub", ("videomae-base-ssv2",),
              ("videomae", 768, 12, 3072, 16, 224, 2, 16, 174, None)),
    ModelName("MCG-NJU/videomae-base", "hub", ("videomae-base",),
              ("videomae", 768, 12, 3072, 16, 224, 2, 16, 0, (384, 4, 1536)),
              note="pre-training checkpoint: embeddings (and reconstruction with its decoder)"),
    ModelName("vivit", "random", ("random-vivit-b",),
              note="ViViT-B/16x2 architecture (32x224x224), random weights: no download"),
    ModelName("videomae", "random", ("random-videomae-b",),
              note="VideoMAE-B architecture (16x224x224), random weights: no download"),
    # The Scenic releases with no hub port (fe: vivitcli/convert; README "All five official ViViT checkpoints").
    *(_scenic_fe(*row) for row in (
        ("kinetics_400/vivit_base_16x2_fe", "vivit-b-fe-k400", "ViViT-B/16x2 factorised encoder, Kinetics-400 (78.4%)",
         "kinetics400"),
        ("kinetics_400/vivit_large_16x2_fe", "vivit-l-fe-k400", "ViViT-L/16x2 factorised encoder, Kinetics-400 (80.3%)",
         "kinetics400"),
        ("kinetics_600/vivit_large_16x2_fe", "vivit-l-fe-k600", "ViViT-L/16x2 factorised encoder, Kinetics-600 (81.6%)",
         "kinetics600"),
        ("epic_kitchens/vivit_large_16x2_fe", "vivit-l-fe-epic-kitchens",
         "ViViT-L/16x2 factorised encoder, EPIC-KITCHENS-100 noun + verb heads", "epic-kitchens-100"),
    )),
)


def _index() -> dict[str, ModelName]:
    table: dict[str, ModelName] = {}
    for entry in MODELS:
        for alias in entry.aliases:
            if alias in table:  # pragma: no cover - a table error, caught by the tests
                raise ValueError(f"model alias {alias!r} listed twice")
            table[alias] = entry
    return table


BY_ALIAS: dict[str, ModelName] = _index()
ALIASES: dict[str, str] = {alias: entry.target for alias, entry in BY_ALIAS.items()}
DEFAULT_MODEL = "google/vivit-b-16x2-kinetics400"
DEFAULT_BENCHMARK_MODEL = "random-vivit-b"


def lookup(name: str) -> ModelName | None:
    """The table entry for an alias (exact spelling), or None."""
    return BY_ALIAS.get(str(name).strip())


def by_target(target: str) -> ModelName | None:
    """The table entry whose hub id / folder is `target`, or None."""
    for entry in MODELS:
        if entry.target == target:
            return entry
    return None


def alias_names(kind: str | None = None) -> list[str]:
    """All aliases (of one kind), sorted: for completions and help texts."""
    return sorted(a for a, e in BY_ALIAS.items() if kind is None or e.kind == kind)


def suggest(name: str) -> str | None:
    """The nearest known alias to a mistyped `name`, or None when nothing is close."""
    close = difflib.get_close_matches(str(name).strip(), list(BY_ALIAS), n=1, cutoff=0.6)
    return close[0] if close else None
