"""Class names: the checkpoint's own id2label, or a shipped dataset list when those are placeholders.

google/vivit-b-16x2-kinetics400 names its 400 classes LABEL_0..LABEL_399; they follow the alphabetical
Kinetics-400 order (LABEL_116 is "eating spaghetti"). A placeholder id2label with 400 classes gets the
Kinetics-400 list, one with 174 the Something-Something-v2 list; other counts keep LABEL_i.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

# class count -> label source name (also the .txt file shipped next to this module)
DATASETS = {400: "kinetics400", 174: "something-something-v2"}
LABEL_SOURCES = ("checkpoint", *DATASETS.values(), "placeholder")

_PLACEHOLDER = re.compile(r"LABEL_(\d+)")


@lru_cache(maxsize=None)
def dataset_labels(name: str) -> tuple[str, ...]:
    """The shipped class list `name` (kinetics400 | something-something-v2), in index order."""
    text = resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def is_placeholder(id2label: dict, num_labels: int) -> bool:
    """True when id2label is missing or names class i "LABEL_i" (entries it lacks count as placeholders)."""
    if not id2label:
        return True
    names = {int(k): str(v) for k, v in id2label.items()}
    return all((m := _PLACEHOLDER.fullmatch(names.get(i, f"LABEL_{i}"))) and int(m.group(1)) == i
               for i in range(num_labels))


def resolve_labels(id2label: dict | None, num_labels: int) -> tuple[list[str], str]:
    """(class names, label source) for a classifier with `num_labels` outputs.

    source: "checkpoint" (real names in id2label), "kinetics400" / "something-something-v2" (placeholder
    names replaced by the shipped list for that class count), or "placeholder" (LABEL_i kept).
    """
    id2label = {int(k): str(v) for k, v in (id2label or {}).items()}
    if num_labels <= 0:
        return [], "placeholder"
    if not is_placeholder(id2label, num_labels):
        return [id2label.get(i, f"LABEL_{i}") for i in range(num_labels)], "checkpoint"
    dataset = DATASETS.get(num_labels)
    if dataset is not None:
        names = dataset_labels(dataset)
        if len(names) == num_labels:
            return list(names), dataset
    return [f"LABEL_{i}" for i in range(num_labels)], "placeholder"
