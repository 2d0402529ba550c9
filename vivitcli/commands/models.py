"""`vivit models`: the aliases and known checkpoints, whether each is in the local cache, and its size."""

from __future__ import annotations

import sys
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
    for repo_id in (r for r in hub.cached_checkpoints(cache) if r not in known):
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
    from rich.console import Console
    from rich.filesize import decimal
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ALIASES", "CHECKPOINT", "CACHED", "SIZE"):
        table.add_column(column, justify="right" if column == "SIZE" else "left", overflow="fold")
    for r in rows:
        size = "-" if r["size_bytes"] is None else ("~" if r["size_estimated"] else "") + decimal(r["size_bytes"])
        cached = {"package": "package" if r["cached"] else "missing", "random": "random weights",
                  "convert": "convert first"}.get(r["kind"], "yes" if r["cached"] else "no")
        table.add_row(", ".join(r["aliases"]) or "-", r["checkpoint"], cached, size)
    # Piped output is never cut to 80 columns: scripts read whole names.
    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 400)
    console.print(table)
    converts = [r for r in rows if r["kind"] == "convert" and r["note"]]
    if converts:
        console.print("\nconvert first (see README: All five official ViViT checkpoints):", markup=False)
        for r in converts:
            console.print(f"  {r['aliases'][0]}: {r['note']}", markup=False, highlight=False)
    console.print(f"\n--dtype auto on this machine: {_auto_dtype()}", markup=False, highlight=False)


def _auto_dtype() -> str:
    """What `--dtype auto` picks here on the default device, and why (read from the hardware, no torch)."""
    from vivitcli.models.backends.cpu import cpu_has_native_bf16

    if cpu_has_native_bf16():
        return "bfloat16 on the CPU (native bf16: AVX512_BF16 or AMX); bfloat16/float16 on a GPU"
    return "float32 on the CPU (no native bf16 here); bfloat16/float16 on a GPU"
