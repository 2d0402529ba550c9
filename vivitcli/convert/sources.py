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

import json
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
            # Safetensors first when both are there: no reason to open a pickle then.
            for index_name, single, fmt in (("model.safetensors.index.json", "model.safetensors", "hf-safetensors"),
                                            ("pytorch_model.bin.index.json", "pytorch_model.bin", "hf-pickle")):
                if (path / index_name).is_file():
                    index = _read_json(path / index_name)
                    shards = sorted(set((index.get("weight_map") or {}).values()))
                    if not shards:
                        raise CheckpointError(f"{path / index_name}: empty weight_map")
                    if any(Path(s).name != s for s in shards):
                        raise CheckpointError(f"{path / index_name}: shard names must be plain file names")
                    return Source(path, fmt, [path / s for s in shards])
                if (path / single).is_file():
                    return Source(path, fmt, [path / single])
            raise CheckpointError(f"{path}: has config.json but no pytorch_model.bin or model.safetensors")
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


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable JSON ({err})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return value


def safe_torch_load(path: Path):
    """torch.load with weights_only=True; anything it refuses becomes one line naming the file."""
    import pickle

    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused to unpickle: the file asks for code or objects other than tensors "
            "(only weights_only pickles are loaded; nothing from it was run)") from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, ImportError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a loadable PyTorch checkpoint ({first})") from None


def read_hf(source: Source) -> tuple[dict, dict, dict | None]:
    """(config.json dict, state dict of tensors, preprocessor_config.json dict or None)."""
    config = _read_json(source.path / "config.json")
    pre_path = source.path / "preprocessor_config.json"
    preprocessor = _read_json(pre_path) if pre_path.is_file() else None
    state = {}
    for f in source.files:
        if not f.is_file():
            raise CheckpointError(f"{f}: listed in the index but missing")
        if source.format == "hf-pickle":
            part = safe_torch_load(f)
            if not isinstance(part, dict):
                raise CheckpointError(f"{f}: holds a {type(part).__name__}, not a state dict")
        else:
            from safetensors.torch import load_file

            try:
                part = load_file(str(f))
            except Exception as err:  # safetensors raises its own SafetensorError
                raise CheckpointError(f"{f}: unreadable safetensors file ({str(err).splitlines()[0]})") from None
        for k, v in part.items():
            if not hasattr(v, "dtype"):
                raise CheckpointError(f"{f}: entry '{k}' is a {type(v).__name__}, not a tensor")
            state[k] = v
    return config, state, preprocessor
