"""The classifier side of a conversion: --strip-head, class names (--labels) and multi-head splits
(--class-splits; EPIC-KITCHENS-100's noun 300 + verb 97 projection)."""

from __future__ import annotations

from vivitcli.convert.options import ConvertOptions, parse_class_splits
from vivitcli.errors import CheckpointError, UsageError
from vivitcli.models.vivit_fe import EPIC_SPLITS, HEAD_DATASETS

HEAD_KEYS = ("classifier.",)
EPIC_KITCHENS = "epic-kitchens-100"
EPIC_NAMES = (EPIC_KITCHENS, "epic-kitchens", "ek100")


def num_labels(state: dict) -> int:
    w = state.get("classifier.weight")
    return int(w.shape[0]) if w is not None else 0


def strip_head(config: dict, state: dict, notes: list) -> tuple[dict, dict]:
    """Embedding-only: drop the classifier (the architecture stays, with num_labels 0: transformers then uses
    an Identity head, so `logits` are the pooled embedding and fc_norm is kept), or a pre-training decoder
    (the result is a bare VideoMAEModel)."""
    arch = config["architectures"][0]
    config = dict(config)
    if arch.endswith("ForPreTraining"):
        state = {k[len("videomae."):]: v for k, v in state.items() if k.startswith("videomae.")}
        config["architectures"] = ["VideoMAEModel"]
        notes.append("stripped the pre-training decoder: written as a bare VideoMAEModel")
    elif arch.endswith("ForVideoClassification"):
        dropped = [k for k in state if k.startswith(HEAD_KEYS)]
        if not dropped:
            raise CheckpointError(f"{arch} checkpoint has no classifier to strip")
        state = {k: v for k, v in state.items() if not k.startswith(HEAD_KEYS)}
        notes.append("stripped the classifier: num_labels 0, the model outputs its pooled embedding")
    else:
        notes.append(f"{arch} has no head: nothing to strip")
    config["id2label"], config["label2id"] = {}, {}
    config.pop("num_labels", None)
    config.pop("class_splits", None)
    return config, state


def _epic_names(splits) -> list[str]:
    from vivitcli.labels import dataset_labels

    if sorted(splits) != sorted(EPIC_SPLITS):
        raise UsageError(f"--labels {EPIC_KITCHENS}: needs the heads noun:300 and verb:97, not "
                         f"{','.join(f'{n}:{s}' for n, s in splits)}")
    names = []
    for split in splits:
        names += dataset_labels(HEAD_DATASETS[split])
    return names


def apply_labels(config: dict, state: dict, opts: ConvertOptions, notes: list) -> tuple[str, list | None]:
    """Write id2label / label2id (and class_splits) into config; returns (label source, class splits)."""
    n = num_labels(state)
    spec = opts.labels
    epic = spec is not None and str(spec).strip().lower() in EPIC_NAMES
    splits = parse_class_splits(opts.class_splits) if opts.class_splits else None
    if epic and n != sum(size for _, size in EPIC_SPLITS):
        raise UsageError(f"--labels {spec}: 397 names (noun 300 + verb 97), the classifier has {n} classes")
    if splits is None and config.get("class_splits") and not epic:
        splits = [(str(a), int(b)) for a, b in config["class_splits"]]   # a vivit_fe source that had them
    if splits is None and (epic or (config.get("model_type") == "vivit_fe" and n == 397 and spec is None)):
        splits = list(EPIC_SPLITS)
        if not epic:
            notes.append("class splits: noun:300,verb:97 (a 397-class factorised encoder is EPIC-KITCHENS-100's "
                         "multi-head model; --class-splits overrides)")
    if splits is not None:
        if n == 0:
            raise UsageError("--class-splits given, but the checkpoint has no classifier")
        if config.get("model_type") != "vivit_fe":
            raise UsageError("--class-splits: only factorised-encoder (vivit_fe) checkpoints hold several heads")
        if sum(s for _, s in splits) != n:
            raise UsageError(f"--class-splits {','.join(f'{a}:{b}' for a, b in splits)}: sizes add up to "
                             f"{sum(s for _, s in splits)}, the classifier has {n} classes")
        config["class_splits"] = [[a, b] for a, b in splits]

    if spec is None and splits is not None and sorted(splits) == sorted(EPIC_SPLITS):
        spec, epic = EPIC_KITCHENS, True
    if spec is None:
        if n and len(config.get("id2label") or {}) != n:
            # transformers would build a classifier of len(id2label) rows (2 when absent) and fail to load.
            config["id2label"] = {str(i): f"LABEL_{i}" for i in range(n)}
            config["label2id"] = {f"LABEL_{i}": i for i in range(n)}
        if n and all(str(v) == f"LABEL_{k}" for k, v in (config.get("id2label") or {}).items()):
            notes.append(f"labels: placeholders LABEL_0..LABEL_{n - 1} (name them with --labels)")
            return "placeholder", splits
        return ("checkpoint" if n else "none"), splits
    if n == 0:
        raise UsageError("--labels given, but the checkpoint has no classifier")
    if epic:
        names, source = _epic_names(splits), EPIC_KITCHENS
    else:
        from vivitcli.labels import read_labels

        names, source = read_labels(spec, n)
    if splits is None:
        config["id2label"] = {str(i): name for i, name in enumerate(names)}
        config["label2id"] = {name: i for i, name in enumerate(names)}
        return source, None
    # Several heads may share a name (EPIC: "water" is a verb and a noun): label2id keys say which head.
    config["id2label"] = {str(i): name for i, name in enumerate(names)}
    config["label2id"] = {}
    start = 0
    for head, size in splits:
        seen = set()
        for i in range(start, start + size):
            if names[i] in seen:
                raise UsageError(f"--labels {spec}: the name {names[i]!r} appears twice in head {head!r}")
            seen.add(names[i])
            config["label2id"][f"{head}:{names[i]}"] = i
        start += size
    return source, splits
