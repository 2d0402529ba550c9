"""Labelled clip folders: DATA/<class>/... (optionally DATA/train/<class> + DATA/val/<class>), and the split.

Stdlib only. The folder name is the label; DATA/labels.txt (one name per line) may fix the class order,
otherwise classes are sorted by name. Videos are found as `vivit classify DATA/` finds them (recursively,
by extension, hidden files skipped).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

from vivitcli.errors import UsageError
from vivitcli.inputs import DEFAULT_EXTENSIONS, walk_folder

LABELS_FILE = "labels.txt"
SPLITS = ("train", "val")


@dataclass
class LabelledClips:
    """Class names in index order and the clips: paths, class indices, and each clip's split
    ("train" | "val" | None when the folder does not fix it)."""

    root: str
    classes: list[str]
    paths: list[str] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)

    @property
    def has_splits(self) -> bool:
        return any(s is not None for s in self.splits)

    def counts(self, indices=None) -> list[int]:
        """Clips per class (over `indices` when given)."""
        counts = [0] * len(self.classes)
        for i in range(len(self.paths)) if indices is None else indices:
            counts[self.targets[i]] += 1
        return counts


def read_labels_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except OSError as err:
        raise UsageError(f"{path}: cannot read the class list ({err.strerror})") from None
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"{path}: class {dupes[0]!r} is listed twice", "one class name per line")
    return names


def _class_dirs(folder: str) -> list[str]:
    try:
        entries = sorted(os.listdir(folder))
    except OSError as err:
        raise UsageError(f"{folder}: cannot list the folder ({err.strerror})") from None
    return [e for e in entries if not e.startswith(".") and os.path.isdir(os.path.join(folder, e))]


def scan(root: str, *, classes: list[str] | None = None, exts=DEFAULT_EXTENSIONS, min_classes: int = 2
         ) -> LabelledClips:
    """Find the labelled clips under `root`. `classes` fixes the order (else labels.txt, else sorted names).

    Raises UsageError (one line naming the folder) for: no such folder, no class subfolders, fewer than
    `min_classes` classes, a class folder without videos, a labels.txt name without a folder or a folder
    missing from labels.txt.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise UsageError(f"{root}: no such folder", "pass a folder with one subfolder of clips per class")
    top = _class_dirs(root)
    split_layout = all(s in top for s in SPLITS)
    bases = [os.path.join(root, s) for s in SPLITS] if split_layout else [root]
    labels_path = os.path.join(root, LABELS_FILE)
    if classes is None and os.path.isfile(labels_path):
        classes = read_labels_file(labels_path)
    found = _class_dirs(bases[0])
    if split_layout:
        extra = sorted(set(_class_dirs(bases[1])) - set(found))
        if extra:
            raise UsageError(f"{bases[1]}/{extra[0]}: class has no folder in {bases[0]}",
                             "every validation class needs training clips")
    if classes is None:
        classes = found
    else:
        missing = [c for c in classes if c not in found]
        if missing:
            raise UsageError(f"{os.path.join(bases[0], missing[0])}: no such class folder",
                             f"listed in {labels_path if os.path.isfile(labels_path) else 'the class list'}")
        unlisted = [c for c in found if c not in classes]
        if unlisted:
            raise UsageError(f"{os.path.join(bases[0], unlisted[0])}: folder is not in the class list",
                             f"add it to {LABELS_FILE} or move it out of {bases[0]}")
    if not classes:
        raise UsageError(f"{bases[0]}: no class subfolders", "put the clips of each class in a subfolder named "
                         "after the class (DATA/<label>/*.mp4)")
    if len(classes) < min_classes:
        raise UsageError(f"{bases[0]}: only one class ({classes[0]!r})", "a classifier needs at least 2 classes")
    data = LabelledClips(root=root, classes=list(classes))
    for base, split in zip(bases, SPLITS if split_layout else (None,)):
        for k, name in enumerate(classes):
            folder = os.path.join(base, name)
            paths = walk_folder(folder, exts) if os.path.isdir(folder) else []
            if not paths and split != "val":
                raise UsageError(f"{folder}: no video files in this class folder",
                                 f"looked for .{', .'.join(exts)}; add clips or remove the folder")
            data.paths += paths
            data.targets += [k] * len(paths)
            data.splits += [split] * len(paths)
    return data


def check_counts(data: LabelledClips, keep: list[int]) -> None:
    """Each class needs 2 usable clips (one to fit on, one to validate); raises UsageError naming the folder."""
    counts = data.counts(keep)
    for k, n in enumerate(counts):
        if n < 2:
            raise UsageError(f"{os.path.join(data.root, data.classes[k])}: class {data.classes[k]!r} has "
                             f"{n} usable clip{'s' if n != 1 else ''}", "each class needs at least 2")


def split(data: LabelledClips, keep: list[int], *, val_fraction: float = 0.2, seed: int = 0
          ) -> tuple[list[int], list[int]]:
    """(train indices, val indices) among `keep` (the clips that embedded).

    The folder's own train/val split when it has one; otherwise per class a seeded shuffle and
    round(val_fraction * n) clips (at least 1, at most n - 1) to validation, so every class is on both sides.
    """
    check_counts(data, keep)
    if data.has_splits:
        train = [i for i in keep if data.splits[i] == "train"]
        val = [i for i in keep if data.splits[i] == "val"]
        for k, n in enumerate(data.counts(train)):
            if n == 0:
                raise UsageError(f"{os.path.join(data.root, 'train', data.classes[k])}: no usable training clips")
        if not val:
            raise UsageError(f"{os.path.join(data.root, 'val')}: no usable validation clips")
        return train, val
    if not 0 < val_fraction < 1:
        raise UsageError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    rng = random.Random(seed)
    train, val = [], []
    for k in range(len(data.classes)):
        members = [i for i in keep if data.targets[i] == k]
        rng.shuffle(members)
        n_val = min(max(1, round(val_fraction * len(members))), len(members) - 1)
        val += members[:n_val]
        train += members[n_val:]
    return sorted(train), sorted(val)
