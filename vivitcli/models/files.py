"""Checkpoint directory files: names, JSON, the shard index and the one rule for where a file may be read from.

Shared by load_model and `vivit convert` (see also checkpoint.load_weights for the tensors). No torch here, so
`vivit models` and model-name resolution stay light.

The rule (issue 11): a checkpoint only ever reads files *inside its folder*. A shard name in an index is a
plain file name (no `/`, `\\`, `..`, no absolute path), and a file whose real path (after symlinks) leaves the
folder is refused. One exception keeps the Hugging Face cache working: in a snapshot folder
(`models--owner--name/snapshots/<rev>/`) the files are symlinks into that repository's own `blobs/` folder.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

from vivitcli.errors import CheckpointError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH = "pytorch_model.bin"
PYTORCH_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFETENSORS, SAFETENSORS_INDEX, PYTORCH, PYTORCH_INDEX)

# JSON files of a checkpoint are small; a bigger one is not a config (and would only cost memory to parse).
MAX_JSON_BYTES = 64 << 20
# A safetensors header is a JSON table of names → dtype/shape/offsets; the format itself caps it at 100 MB.
MAX_SAFETENSORS_HEADER = 100 << 20


def _allowed_roots(directory: Path) -> list[Path]:
    """Real folders the files of `directory` may live in: the folder itself, plus the repository's blobs/
    when it is a huggingface_hub cache snapshot."""
    real = directory.resolve()
    roots = [real]
    if real.parent.name == "snapshots" and real.parent.parent.name.startswith("models--"):
        roots.append(real.parent.parent / "blobs")
    return roots


def is_plain_name(name) -> bool:
    """True for a bare file name: a non-empty str without directory parts, `..`, drive or NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\x00" not in name and ":" not in name and name == os.path.basename(name))


def checkpoint_file(directory, name: str, *, listed_in=None, required: bool = True) -> Path | None:
    """`directory / name` after checking the one rule: `name` is a plain file name and the file's real
    path (symlinks followed) stays inside the folder (or its HF-cache blobs). Returns the path as named
    (not resolved), or None when it does not exist and `required` is False.

    listed_in: the index file that named it (for the message). Raises CheckpointError naming the file.
    """
    directory = Path(directory)
    where = Path(listed_in) if listed_in is not None else directory / str(name)
    if not is_plain_name(name):
        raise CheckpointError(
            f"{where}: shard name {name!r} is not a plain file name inside the model folder",
            "an index may only name files next to it; refusing to read outside the folder")
    path = directory / name
    if not os.path.lexists(path):
        if not required:
            return None
        what = f"shard {name!r} listed in {where} is missing" if listed_in is not None else "no such file"
        raise CheckpointError(f"{path}: {what}" if listed_in is None else f"{where}: {what}")
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:       # dangling link, symlink loop (RuntimeError before 3.13)
        loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
        raise CheckpointError(f"{path}: {'symlink loop' if loop else 'broken link'} ({_short(exc)})") from None
    if not any(real == root or root in real.parents for root in _allowed_roots(directory)):
        raise CheckpointError(
            f"{path}: is a link to {real}, outside the model folder {directory}",
            "copy the file into the folder; checkpoints never read files outside their folder")
    if not real.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    return path


def read_json(path, *, what: str = "JSON") -> dict:
    """A JSON object from `path`; CheckpointError (one line, naming the file) for anything else.

    NaN/Infinity literals (which Python's json accepts and no config needs) are refused."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise CheckpointError(f"{path}: {size} bytes is too large for a {what} file")
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: cannot read {what} ({_short(exc)})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def read_index(path) -> list[str]:
    """The shard file names of a `*.index.json` (sorted, unique), each checked to be a plain name."""
    path = Path(path)
    index = read_json(path, what="shard index")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{path}: 'weight_map' must be a non-empty object of tensor name → file name")
    bad = next((v for v in weight_map.values() if not is_plain_name(v)), None)
    if bad is not None:
        raise CheckpointError(f"{path}: shard name {bad!r} is not a plain file name inside the model folder",
                              "an index may only name files next to it; refusing to read outside the folder")
    return sorted(set(weight_map.values()))


def weight_files(directory, names=WEIGHT_FILES) -> list[Path]:
    """The weight files of a checkpoint directory, safetensors preferred, each inside the folder (see
    checkpoint_file); CheckpointError when there are none. `names`: the single files / indexes to try,
    in order of preference."""
    directory = Path(directory)
    for name in names:
        path = checkpoint_file(directory, name, required=False)
        if path is None:
            continue
        if name.endswith(".index.json"):
            shards = read_index(path)
            missing = [s for s in shards if not os.path.lexists(directory / s)]
            if missing:
                raise CheckpointError(f"{path}: shard file(s) missing: {', '.join(missing[:3])}")
            return [checkpoint_file(directory, s, listed_in=path) for s in shards]
        return [path]
    present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    other = [n for n in present if n.endswith((".msgpack", ".h5", ".ckpt", ".npz", ".pth", ".pt"))]
    hint = "convert it with `vivit convert`" if other else None
    raise CheckpointError(
        f"{directory}: no {SAFETENSORS} or {PYTORCH} (or sharded index) found; files here: "
        f"{', '.join(present[:6]) or 'none'}{' ...' if len(present) > 6 else ''}", hint)


def safetensors_shapes(path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} from a safetensors file's header, without reading any tensor data.

    The header is 8 bytes of little-endian length + a JSON table; checked to be one the safetensors library
    would accept as far as names, dtypes and shapes go (its offsets are checked when the tensors are read)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("file is shorter than a safetensors header")
            n = int.from_bytes(head, "little")
            if n > MAX_SAFETENSORS_HEADER or n > path.stat().st_size - 8:
                raise ValueError(f"header length {n} does not fit the file")
            header = json.loads(f.read(n).decode("utf-8"), parse_constant=_refuse_constant)
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            shape = info.get("shape") if isinstance(info, dict) else None
            if (not isinstance(shape, list) or not isinstance(info.get("dtype"), str)
                    or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
                raise ValueError(f"entry {name!r} has no valid dtype/shape")
            out[name] = (info["dtype"], tuple(shape))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({_short(exc)})") from None
    return out


def numel(shape) -> int:
    return math.prod(shape)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."
