"""Embedding array files (.npy, .npz, .safetensors) and the sidecar every embed output gets.

`feats.npy` holds a float32 (N, D) array, row i from the i-th successful record in input order; the sidecar
`feats.npy.json` says where each row came from:

    {"format": "vivitcli.embeddings/1", "file": "feats.npy", "kind": "embed", "shape": [N, D],
     "dtype": "float32",
     "complete": true,                      # false when the run was interrupted (continue with --resume)
     "settings": {...},                     # the options that shaped the results; --resume must match them
     "rows": [{"row": 0, "path": "a.mp4", "pool": ..., "model": ..., "frame_indices": [...],
               "timestamps": [...], "approximate": false}, ...],   # rows[i] describes array row i
     "errors": [{"path": "bad.mp4", "error": "..."}]}               # inputs that produced no row

.npz files also hold `paths` (N,); .safetensors files carry the paths as a JSON list in their metadata. A name
that is not valid UTF-8 is written with `\\udcXX` escapes (`records.safe_text`; in .npz `paths` the plain form,
which `records.original_text` reads back; os.fsencode then gives the name's bytes). The
jsonl, json and parquet embed outputs get the same sidecar (rows[i] = the i-th successful record). An all-failed
run keeps the model's width: shape (0, D). numpy is imported when a file is written or read, not before.
"""

from __future__ import annotations

import json
import os

from vivitcli.output.durable import OutputError, atomic_write, sidecar_path
from vivitcli.output.records import json_text, jsonable, safe_text

SIDECAR_FORMAT = "vivitcli.embeddings/1"


def embedding_matrix(records: list[dict], dim: int, path: str):
    """float32 (N, D) from the successful records; a vector of another width is an OutputError."""
    import numpy as np

    good = [r for r in records if not r.get("error")]
    array = np.zeros((len(good), dim), dtype=np.float32)
    for i, r in enumerate(good):
        vector = np.asarray(r["embedding"], dtype=np.float32).reshape(-1)
        if vector.shape[0] != dim:
            raise OutputError(f"{path}: {r['path']} has a {vector.shape[0]}-wide embedding, the output {dim}",
                              "the resumed run used another model or --pool; start over with --force")
        array[i] = vector
    return array


def embedding_sidecar(path: str, records: list[dict], *, dim: int, complete: bool, settings: dict | None) -> dict:
    good = [r for r in records if not r.get("error")]
    rows = []
    for i, r in enumerate(good):
        info = {k: v for k, v in jsonable(r).items() if k not in ("embedding", "error", "dim")}
        rows.append({"row": i, **info})
    return {"format": SIDECAR_FORMAT, "file": os.path.basename(path), "kind": "embed", "shape": [len(good), dim],
            "dtype": "float32", "complete": complete, "settings": settings, "rows": rows,
            "errors": [{"path": r["path"], "error": r["error"]} for r in records if r.get("error")]}


def write_sidecar(path: str, meta: dict, *, mode: int | None = None) -> None:
    text = json_text(meta, indent=1) + "\n"
    atomic_write(sidecar_path(path), lambda f: f.write(text.encode("utf-8")), mode=mode)


def write_array_file(path: str, kind: str, array, paths: list[str]) -> None:
    import numpy as np

    if kind == "npy":
        atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))
    elif kind == "npz":
        names = np.array([safe_text(p, plain=True) for p in paths], dtype=str) if paths else np.zeros((0,), dtype="<U1")
        atomic_write(path, lambda f: np.savez(f, embeddings=array, paths=names))
    elif kind == "safetensors":
        from safetensors.numpy import save

        blob = save({"embeddings": array}, metadata={"paths": json_text(paths)})
        atomic_write(path, lambda f: f.write(blob))
    else:
        raise ValueError(f"not an array format: {kind}")


def write_embedding_files(path: str, records: list[dict], *, dim: int, complete: bool, fmt: str | None = None,
                          settings: dict | None = None) -> None:
    """The (N, dim) float32 array file (fmt from the suffix when None) and its sidecar, both atomically."""
    from vivitcli.output.formats import SUFFIX_FORMAT

    fmt = fmt or SUFFIX_FORMAT[os.path.splitext(path)[1].lower()]
    array = embedding_matrix(records, dim, path)
    write_array_file(path, fmt, array, [r["path"] for r in records if not r.get("error")])
    write_sidecar(path, embedding_sidecar(path, records, dim=dim, complete=complete, settings=settings))


def read_sidecar(path: str) -> dict:
    """The sidecar of output `path`, checked to be one of ours; OutputError (one line) otherwise."""
    side = sidecar_path(path)
    try:
        with open(side, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise OutputError(f"{path}: no sidecar {os.path.basename(side)} next to it, cannot resume",
                          "start over with --force") from None
    except (OSError, ValueError) as err:
        raise OutputError(f"{side}: corrupt sidecar ({type(err).__name__}), cannot resume",
                          "start over with --force") from None
    if not isinstance(meta, dict) or not str(meta.get("format", "")).startswith("vivitcli."):
        raise OutputError(f"{side}: not a vivit sidecar, cannot resume", "start over with --force")
    return meta


def read_embedding_files(path: str, meta: dict | None = None) -> list[dict]:
    """Records (path, embedding, row info) from an embeddings array file and its sidecar."""
    import numpy as np

    from vivitcli.output.formats import SUFFIX_FORMAT

    meta = read_sidecar(path) if meta is None else meta
    kind = SUFFIX_FORMAT[os.path.splitext(path)[1].lower()]
    try:
        if kind == "npy":
            array = np.load(path, allow_pickle=False)
        elif kind == "npz":
            with np.load(path, allow_pickle=False) as z:
                array = z["embeddings"]
        else:
            from safetensors.numpy import load_file

            array = load_file(path)["embeddings"]
    except Exception as err:  # numpy/safetensors raise many types for a damaged file
        raise OutputError(f"{path}: cannot read the embeddings ({type(err).__name__}), cannot resume",
                          "start over with --force") from None
    rows, errors = meta.get("rows"), meta.get("errors", [])
    if not isinstance(rows, list) or not isinstance(errors, list):
        raise OutputError(f"{sidecar_path(path)}: corrupt sidecar (no rows list)", "start over with --force")
    if array.ndim != 2 or array.shape[0] != len(rows):
        raise OutputError(f"{path}: {array.shape[0] if array.ndim else 0} rows but the sidecar lists {len(rows)}",
                          "the two files come from different runs; start over with --force")
    records = []
    for row, vector in zip(rows, array):
        if not isinstance(row, dict) or not isinstance(row.get("path"), str):
            raise OutputError(f"{sidecar_path(path)}: corrupt sidecar row", "start over with --force")
        rec = {k: v for k, v in row.items() if k != "row"}
        rec["embedding"] = vector.astype(np.float32)
        rec["dim"] = int(array.shape[1])
        rec.setdefault("error", None)
        records.append(rec)
    return records
