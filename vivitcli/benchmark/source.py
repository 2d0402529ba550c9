"""Which model a benchmark name means: an architecture preset (random weights, runs offline) or a checkpoint.

Presets are the full-size configurations in vivitcli.models.presets, under their own names there plus the
short names below. An existing directory of the same name wins over a preset; anything else goes to
vivitcli.load_model (hub id, alias or directory).
"""

from __future__ import annotations

import os

# Short benchmark names -> the model_type whose base preset they mean.
SHORT_NAMES = {"vivit-base": "vivit", "videomae-base": "videomae"}
DEFAULT_MODEL = "vivit-base"


def presets() -> dict[str, dict]:
    """Preset name -> HF config.json dict, short names included."""
    from vivitcli.models.presets import PRESETS

    table = dict(PRESETS)
    for short, model_type in SHORT_NAMES.items():
        if short not in table:
            matches = [name for name, cfg in PRESETS.items() if cfg.get("model_type") == model_type]
            if matches:
                table[short] = PRESETS[sorted(matches, key=len)[0]]
    return table


def resolve(name: str) -> dict | None:
    """The config dict of preset `name`, or None when `name` should be loaded as a checkpoint."""
    if os.path.isdir(name):
        return None
    return presets().get(name)
