"""`vivit models`: the aliases and known checkpoints, whether each is in the local cache, and its size."""

from __future__ import annotations

from typing import Annotated

import typer

# Encoder shapes of the checkpoints the aliases name, for a download-size estimate when they are not cached
# (float32 weights = 4 bytes x parameters; the hub files are float32).
#   id: (model_type, hidden, layers, mlp, frames, image, tubelet_t, patch, classes, decoder)
_KNOWN = {
    "google/vivit-b-16x2-kinetics400": ("vivit", 768, 12, 3072, 32, 224, 2, 16, 400, None),
    "MCG-NJU/videomae-base-finetuned-kinetics": ("videomae", 768, 12, 3072, 16, 224, 2, 16, 400, None),
    "MCG-NJU/videomae-small-finetuned-kinetics": ("videomae", 384, 12, 1536, 16, 224, 2, 16, 400, None),
    "MCG-NJU/videomae-large-finetuned-kinetics": ("videomae", 1024, 24, 4096, 16, 224, 2, 16, 400, None),
    "MCG-NJU/videomae-base-finetuned-ssv2": ("videomae", 768, 12, 3072, 16, 224, 2, 16, 174, None),
    "MCG-NJU/videomae-base": ("videomae", 768, 12, 3072, 16, 224, 2, 16, 0, (384, 4, 1536)),
}


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
    """One row per alias / known or cached checkpoint: name, target, cached, size_bytes, size_estimated."""
    from vivitcli.models import hub

    cache = hub.hub_cache_dir()
    rows = []
    targets: dict[str, list[str]] = {}
    for alias, target in hub.ALIASES.items():
        targets.setdefault(target, []).append(alias)
    for target in list(targets) + [t for t in _KNOWN if t not in targets]:
        aliases = targets.get(target, [])
        if target == "demo":
            present = (hub.DEMO_DIR / "config.json").is_file()
            rows.append({"aliases": aliases, "checkpoint": str(hub.DEMO_DIR), "cached": present,
                         "where": "package", "size_bytes": _dir_size(hub.DEMO_DIR) if present else None,
                         "size_estimated": False})
            continue
        snap = hub.find_in_cache(target, cache)
        if snap is not None:
            size, estimated = _dir_size(snap), False
        elif target in _KNOWN:
            size, estimated = 4 * estimate_params(*_KNOWN[target]), True
        else:
            size, estimated = None, False
        rows.append({"aliases": aliases, "checkpoint": target, "cached": snap is not None,
                     "where": str(snap) if snap is not None else None, "size_bytes": size,
                     "size_estimated": estimated})
    for repo_id in _cached_others(cache, set(targets) | set(_KNOWN)):
        snap = hub.find_in_cache(repo_id, cache)
        if snap is not None:
            rows.append({"aliases": [], "checkpoint": repo_id, "cached": True, "where": str(snap),
                         "size_bytes": _dir_size(snap), "size_estimated": False})
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
        cached = ("yes" if r["cached"] else "no") if r["where"] != "package" else ("package" if r["cached"] else "missing")
        table.append((", ".join(r["aliases"]) or "-", r["checkpoint"], cached, size))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
