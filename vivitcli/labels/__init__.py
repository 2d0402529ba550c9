"""Class names: the checkpoint's own id2label, a shipped dataset list when those are placeholders, or what
`--labels` names (the one reader every command uses).

google/vivit-b-16x2-kinetics400 names its 400 classes LABEL_0..LABEL_399; they follow the alphabetical
Kinetics-400 order (LABEL_116 is "eating spaghetti"). A placeholder id2label with 400 classes gets the
Kinetics-400 list, one with 174 the Something-Something-v2 list; other counts keep LABEL_i.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from importlib import resources

# class count -> label source name (also the .txt file shipped next to this module)
DATASETS = {400: "kinetics400", 174: "something-something-v2", 600: "kinetics600"}
# Names `--labels` accepts for the shipped lists (the values are files next to this module, without .txt).
DATASET_NAMES = {"kinetics400": "kinetics400", "k400": "kinetics400",
                 "something-something-v2": "something-something-v2", "ssv2": "something-something-v2",
                 "kinetics600": "kinetics600", "k600": "kinetics600"}
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


def read_labels(spec: str, expected: int | None = None) -> tuple[list[str], str]:
    """The class names a `--labels` value names, and their label source.

    spec: a shipped dataset (see DATASET_NAMES) -> source = the dataset's name; or a file: one name per line
    (blank lines only at the end), or JSON (a list of names, or an {index: name} object covering 0..N-1)
    -> source = "file:PATH". expected: the model's class count, checked when given. UsageError otherwise.
    """
    from vivitcli.errors import UsageError

    key = str(spec).strip().lower()
    if key in DATASET_NAMES:
        names, source = list(dataset_labels(DATASET_NAMES[key])), DATASET_NAMES[key]
    else:
        names, source = _read_labels_file(str(spec)), f"file:{spec}"
    check_count(names, spec, expected)
    seen: set[str] = set()
    dup = next((n for n in names if n in seen or seen.add(n)), None)
    if dup is not None:
        raise UsageError(f"--labels {spec}: the name {dup!r} appears more than once")
    return names, source


def check_count(names: list[str], spec: str, expected: int | None) -> None:
    """UsageError when a --labels list does not have the model's class count."""
    from vivitcli.errors import UsageError

    if expected is not None and len(names) != expected:
        raise UsageError(f"--labels {spec}: {len(names)} names, but the model has {expected} classes",
                         "one class name per line, in index order")


def _read_labels_file(spec: str) -> list[str]:
    from vivitcli.errors import UsageError

    if not os.path.exists(spec):
        known = ", ".join(sorted(DATASET_NAMES))
        raise UsageError(f"--labels {spec}: no such file, and not a shipped list ({known})")
    if os.path.isdir(spec):
        raise UsageError(f"--labels {spec}: is a folder", "give a file with one class name per line")
    if not os.path.isfile(spec):  # a FIFO, a device (/dev/zero): reading it could block or never end
        raise UsageError(f"--labels {spec}: not a regular file", "give a file with one class name per line")
    try:
        with open(spec, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise UsageError(f"--labels {spec}: not UTF-8 text", "save the file as UTF-8") from None
    except OSError as err:
        raise UsageError(f"--labels {spec}: cannot read ({err.strerror})") from None
    if spec.lower().endswith(".json"):
        try:
            value = json.loads(text)
        except ValueError as err:
            raise UsageError(f"--labels {spec}: invalid JSON ({err})") from None
        if isinstance(value, dict):
            try:
                items = sorted((int(k), str(v)) for k, v in value.items())
            except (TypeError, ValueError):
                raise UsageError(f"--labels {spec}: JSON keys must be class indices") from None
            if [i for i, _ in items] != list(range(len(items))):
                raise UsageError(f"--labels {spec}: class indices are not 0..{len(items) - 1}")
            return [v for _, v in items]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise UsageError(f"--labels {spec}: JSON must be a list of names or an {{index: name}} object")
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise UsageError(f"--labels {spec}: the file is empty")
    if "" in names:
        raise UsageError(f"--labels {spec}: line {names.index('') + 1} is empty")
    return names
