"""`vivit models`: the aliases and known checkpoints, whether each is in the local cache, and its size."""

from __future__ import annotations

from typing import Annotated

import typer


def estimate_params(model_type: str, hidden: int, layers: int, mlp: int, frames: int, image: int, tubelet_t: int,
                    patch: int, classes: int, decoder=None) -> int:
    """Parameter count of a ViViT / VideoMAE checkpoint from its shape (what the HF classes allocate)."""

    def blocks(d, n, f):  # q,k,v,o with biases + 2-layer MLP + 2 LayerNorms, per block
        return n * (4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d)

    tokens = (frames // tubelet_t) * (image // patch) ** 2
    embed = 3 * tubelet_t * patch * patch * hidden + hidden
    total = embed + blocks(hidden, layers, mlp) + 2 * hidden  # final / fc_norm LayerNorm
    if classes:
        total += hidden * classes + classes
    if model_type == "vivit":
        total += (tokens + 1) * hidden + hidden  # learned position table (with CLS) + CLS token
    if decoder is not None:
        dd, dn, df = decoder
        total += hidden * dd + dd + dd + blocks(dd, dn, df) + 2 * dd + dd * (3 * tubelet_t * patch * patch) + \
            3 * tubelet_t * patch * patch
    return total


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} GB"  # pragma: no cover


def _dir_size(path) -> int:
    import os

    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size  # follows the cache's blob symlinks
            except OSError:
                pass
    return total


def _cached_others(cache, known: set[str]) -> list[str]:
    """Hub ids in the cache that hold a ViViT or VideoMAE config, other than the known ones."""
    import json

    found = []
    if not cache.is_dir():
        return found
    for repo in sorted(cache.glob("models--*")):
        repo_id = repo.name[len("models--"):].replace("--", "/", 1)
        if repo_id in known:
            continue
        for config in repo.glob("snapshots/*/config.json"):
            try:
                model_type = json.loads(config.read_text()).get("model_type")
            except (OSError, ValueError):
                continue
            if model_type in ("vivit", "videomae"):
                found.append(repo_id)
                break
    return found


def list_models() -> list[dict]:
    """One row per entry of the model-name table, plus other ViViT/VideoMAE checkpoints in the cache:
    aliases, checkpoint, kind, cached, where, size_bytes, size_estimated, note."""
    from pathlib import Path

    from vivitcli.models import hub, names

    cache = hub.hub_cache_dir()
    package = Path(__file__).resolve().parent.parent
    rows = []
    for entry in names.MODELS:
        row = {"aliases": list(entry.aliases), "checkpoint": entry.target, "kind": entry.kind, "cached": False,
               "where": None, "size_bytes": None, "size_estimated": False, "note": entry.note}
        if entry.kind == "package":
            folder = package / entry.target
            row.update(checkpoint=str(folder), where="package", cached=(folder / "config.json").is_file())
            row["size_bytes"] = _dir_size(folder) if row["cached"] else None
        elif entry.kind == "hub":
            snap = hub.find_in_cache(entry.target, cache)
            if snap is not None:
                row.update(cached=True, where=str(snap), size_bytes=_dir_size(snap))
            elif entry.shape is not None:
                row.update(size_bytes=4 * estimate_params(*entry.shape), size_estimated=True)
        elif entry.kind == "random":
            row.update(cached=True, where="built")
        rows.append(row)
    known = {e.target for e in names.MODELS}
    for repo_id in _cached_others(cache, known):
        snap = hub.find_in_cache(repo_id, cache)
        if snap is not None:
            rows.append({"aliases": [], "checkpoint": repo_id, "kind": "hub", "cached": True, "where": str(snap),
                         "size_bytes": _dir_size(snap), "size_estimated": False, "note": ""})
    return rows


def command(
    json_out: Annotated[bool, typer.Option("--json", help="One JSON array on stdout instead of a table.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    """List model aliases and known checkpoints: whether each is in the local cache, and its size.

    Sizes are on-disk sizes for cached checkpoints and float32 weight-size estimates (marked ~) for the others.
    The cache is $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. Any listed name, or a local
    checkpoint directory, works with --model.
    """
    rows = list_models()
    if json_out:
        import json

        typer.echo(json.dumps(rows, indent=1))
        return
    table = [("ALIASES", "CHECKPOINT", "CACHED", "SIZE")]
    for r in rows:
        size = "-" if r["size_bytes"] is None else ("~" if r["size_estimated"] else "") + human_size(r["size_bytes"])
        cached = {"package": "package" if r["cached"] else "missing", "random": "random weights",
                  "convert": "convert first"}.get(r["kind"], "yes" if r["cached"] else "no")
        table.append((", ".join(r["aliases"]) or "-", r["checkpoint"], cached, size))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
