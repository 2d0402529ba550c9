"""Records the output tests write: one helper for the files that need the same classify record."""

from __future__ import annotations

import numpy as np

from vivitcli import output


def classify_record(path, score=0.5, error=None):
    """A classify record for `path` with one label scored `score`, frames 0 and 2; a failed one when `error`."""
    labels = [] if error else [{"label": "x", "score": score, "index": 1}]
    return output.make_record("classify", path=path, labels=labels, model="m", label_source="checkpoint",
                              frame_indices=None if error else np.array([0, 2]),
                              timestamps=None if error else np.array([0.0, 0.08]),
                              approximate=None if error else False, error=error)
