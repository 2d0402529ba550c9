"""Which model a benchmark name means: an architecture preset (random weights, runs offline) or a checkpoint.

    vivit-base       ViViT-B/16x2 (google/vivit-b-16x2-kinetics400's config.json: 32 x 224 x 224, 3137 tokens)
    videomae-base    VideoMAE-B (MCG-NJU/videomae-base-finetuned-kinetics's config.json: 16 x 224 x 224, 1568)
    preset:NAME      any vivitcli.models.presets name or alias (e.g. preset:vivit)

Random weights time and measure exactly like trained ones, and need no download. Anything else (hub id,
alias, directory) is a real checkpoint for vivitcli.load_model; an existing directory always is.
"""

from __future__ import annotations

import os

PRESET_NAMES = {"vivit-base": "vivit", "videomae-base": "videomae"}
PREFIX = "preset:"
DEFAULT_MODEL = "vivit-base"


def resolve(name: str) -> dict | None:
    """The config dict of preset `name`, or None when `name` should be loaded as a checkpoint."""
    if os.path.isdir(name):
        return None
    from vivitcli.models.presets import preset

    if name in PRESET_NAMES:
        return preset(PRESET_NAMES[name])
    if name.startswith(PREFIX):
        return preset(name[len(PREFIX):])  # UsageError naming the known presets when unknown
    return None
