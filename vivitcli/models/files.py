"""Checkpoint directory files: names, JSON and the weight-file list. No torch here, so `vivit models` and
model-name resolution stay light."""

from __future__ import annotations

import json
from pathlib import Path

from vivitcli.errors import CheckpointError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH = "pytorch_model.bin"
PYTORCH_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFETENSORS, SAFETENSORS_INDEX, PYTORCH, PYTORCH_INDEX)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read JSON ({_short(exc)})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def weight_files(directory: Path) -> list[Path]:
    """The weight files of a checkpoint directory, safetensors preferred; CheckpointError when there are none."""
    directory = Path(directory)
    for name in WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            index = read_json(path)
            shards = sorted(set((index.get("weight_map") or {}).values()))
            if not shards:
                raise CheckpointError(f"{path}: index lists no weight files")
            missing = [s for s in shards if not (directory / s).is_file()]
            if missing:
                raise CheckpointError(f"{path}: shard file(s) missing: {', '.join(missing[:3])}")
            return [directory / s for s in shards]
        return [path]
    present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    other = [n for n in present if n.endswith((".msgpack", ".h5", ".ckpt", ".npz", ".pth", ".pt"))]
    hint = "convert it with `vivit convert`" if other else None
    raise CheckpointError(
        f"{directory}: no {SAFETENSORS} or {PYTORCH} (or sharded index) found; files here: "
        f"{', '.join(present[:6]) or 'none'}{' ...' if len(present) > 6 else ''}", hint)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."
