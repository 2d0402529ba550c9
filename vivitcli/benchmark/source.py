"""Which model a benchmark name means: a random-weight architecture (runs offline) or a checkpoint.

The random-weight names are the "random" rows of vivitcli.models.names (e.g. random-vivit-b: ViViT-B/16x2,
32 x 224 x 224, 3137 tokens; random-videomae-b: VideoMAE-B, 16 x 224 x 224, 1568 tokens); their configs are
the hub checkpoints' config.json dicts in vivitcli.models.presets. Random weights time and measure exactly
like trained ones and need no download. Anything else (hub id, alias, directory) is a real checkpoint for
vivitcli.load_model; an existing directory always is.
"""

from __future__ import annotations

import os

from vivitcli.models.names import DEFAULT_BENCHMARK_MODEL, alias_names, lookup

DEFAULT_MODEL = DEFAULT_BENCHMARK_MODEL


def random_names() -> list[str]:
    """The names that build random weights (for help texts and completions)."""
    return alias_names("random")


def resolve(name: str) -> dict | None:
    """The config dict of random-weight model `name`, or None when `name` should be loaded as a checkpoint."""
    if os.path.isdir(name):
        return None
    entry = lookup(name)
    if entry is None or entry.kind != "random":
        return None
    from vivitcli.models.presets import preset

    return preset(entry.target)
