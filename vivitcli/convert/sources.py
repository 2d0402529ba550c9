"""Recognise what `vivit convert` was given and read it safely.

Formats:
    hf-pickle        a Hugging Face directory with pytorch_model.bin (or pytorch_model-*.bin shards + index)
    hf-safetensors   a Hugging Face directory already in safetensors (re-cast, relabel or strip its head)
    videomae-pth     an original VideoMAE release file (.pth / .bin pickle)
    scenic-flax      a Scenic ViViT Flax checkpoint (msgpack file, or a directory of checkpoint_<step> files)

Pickles are only ever opened with torch.load(weights_only=True): a file that needs anything beyond tensors and
plain containers is refused before any of its code can run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from vivitcli.errors import CheckpointError, ConvertError

ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class Source:
    path: Path
    format: str
    files: list = field(default_factory=list)  # the weight files that will be read


def _head(path: Path, n: int = 8) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read: {err.strerror or err}") from None


def _is_pickle(head: bytes) -> bool:
    # torch.save's zip container, or a bare pickle (protocol 2+ starts with PROTO 0x80).
    return head.startswith(ZIP_MAGIC) or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _scenic_checkpoints(directory: Path) -> list[Path]:
    def step(p: Path) -> int:
        m = re.fullmatch(r"checkpoint_?(\d*)", p.name)
        return int(m.group(1) or -1) if m else -2

    found = [p for p in directory.iterdir() if p.is_file() and step(p) > -2]
    return sorted(found, key=step)


def detect(src) -> Source:
    """Classify SRC; raises CheckpointError naming it when nothing fits."""
    from vivitcli.convert.flax_msgpack import looks_like_msgpack_map

    path = Path(src)
    if not path.exists():
        raise ConvertError(f"{path}: no such file or directory")
    if path.is_dir():
        if (path / "config.json").is_file():
            # load_model's rule (models/files.py): safetensors first, shard names plain, files inside the folder.
            from vivitcli.models.files import weight_files

            files = weight_files(path)
            return Source(path, "hf-safetensors" if files[0].suffix == ".safetensors" else "hf-pickle", files)
        _refuse_orbax(path)
        ckpts = [p for p in _scenic_checkpoints(path) if looks_like_msgpack_map(_head(p))]
        if ckpts:
            return Source(path, "scenic-flax", [ckpts[-1]])
        raise CheckpointError(f"{path}: not a Hugging Face checkpoint directory (no config.json) and no Flax "
                              "checkpoint_<step> file in it")
    head = _head(path)
    if _is_pickle(head):
        return Source(path, "videomae-pth", [path])
    if looks_like_msgpack_map(head):
        return Source(path, "scenic-flax", [path])
    if path.suffix == ".safetensors" or path.name == "config.json":
        raise CheckpointError(f"{path}: pass the checkpoint's directory, not one of its files")
    raise CheckpointError(f"{path}: neither a PyTorch pickle (.pth/.bin) nor a Flax msgpack checkpoint")


# Files and folders Orbax writes into a checkpoint folder (flax >= 0.7 saves through Orbax by default).
_ORBAX_MARKERS = ("_METADATA", "_CHECKPOINT_METADATA", "manifest.ocdbt", "_sharding", "commit_success.txt", "d",
                  "ocdbt.process_0")


def _refuse_orbax(path: Path) -> None:
    """An Orbax folder (or a folder of checkpoint_<step>/ folders) gets one line saying what to do."""
    def is_orbax(folder: Path) -> bool:
        return any((folder / m).exists() for m in _ORBAX_MARKERS)

    step_dirs = sorted(p for p in path.iterdir() if p.is_dir() and re.fullmatch(r"checkpoint_\d+", p.name))
    if is_orbax(path) or any(is_orbax(p) for p in step_dirs):
        raise CheckpointError(
            f"{path}: an Orbax checkpoint folder; vivit convert reads Flax msgpack checkpoint files (what the "
            "released ViViT checkpoints are)",
            hint="restore it with orbax (orbax.checkpoint.PyTreeCheckpointer().restore(path)), write "
                 "flax.serialization.to_bytes(tree) to a file named checkpoint and convert that file")


def safe_torch_load(path: Path):
    """torch.load with weights_only=True; anything it refuses becomes one line naming the file (load_model's)."""
    from vivitcli.models.checkpoint import safe_torch_load as load

    return load(path)


def read_hf(source: Source) -> tuple[dict, dict, dict | None]:
    """(config.json dict, state dict of tensors, preprocessor_config.json dict or None), read as load_model
    reads them: config and preprocessor validated, every file inside the folder, pickles weights_only."""
    from vivitcli.models.checkpoint import load_weights, open_checkpoint

    cfg, preprocessor, files = open_checkpoint(source.path)
    state = {}
    for f in files:
        state.update(load_weights(f))
    return dict(cfg.raw), state, preprocessor
