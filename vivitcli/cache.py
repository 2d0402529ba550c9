"""Where vivitcli keeps what it computes once and reuses (probe embeddings, compiled OpenVINO models).
Stdlib only."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """$VIVIT_CACHE, else $XDG_CACHE_HOME/vivitcli, else ~/.cache/vivitcli; joined with `parts`."""
    env = os.environ.get("VIVIT_CACHE")
    if env:
        root = Path(env).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")).expanduser() / "vivitcli"
    return root.joinpath(*parts)
