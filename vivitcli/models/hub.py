"""load_model: a local directory, a short alias, or a hub id (local HF cache first, then a download).

Aliases (documented in the README):
    demo                 the small demo checkpoint shipped in the package (vivitcli/demo/model)
    vivit, vivit-k400    google/vivit-b-16x2-kinetics400
    videomae, videomae-base-k400   MCG-NJU/videomae-base-finetuned-kinetics
    videomae-small-k400  MCG-NJU/videomae-small-finetuned-kinetics
    videomae-large-k400  MCG-NJU/videomae-large-finetuned-kinetics
    videomae-base-ssv2   MCG-NJU/videomae-base-finetuned-ssv2
    videomae-base        MCG-NJU/videomae-base (pre-training checkpoint: embeddings only)

The cache is huggingface_hub's layout (<cache>/models--owner--name/{refs,snapshots}), located at
$HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub, read at call time. A cached snapshot
is used without any network access; otherwise huggingface_hub downloads config.json,
preprocessor_config.json and one weight format (safetensors preferred), unless HF_HUB_OFFLINE is set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vivitcli.errors import CheckpointError, ModelNotFoundError
from vivitcli.models.files import PYTORCH, PYTORCH_INDEX, SAFETENSORS, SAFETENSORS_INDEX, read_json, weight_files

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo" / "model"

ALIASES = {
    "demo": "demo",
    "vivit": "google/vivit-b-16x2-kinetics400",
    "vivit-k400": "google/vivit-b-16x2-kinetics400",
    "videomae": "MCG-NJU/videomae-base-finetuned-kinetics",
    "videomae-base-k400": "MCG-NJU/videomae-base-finetuned-kinetics",
    "videomae-small-k400": "MCG-NJU/videomae-small-finetuned-kinetics",
    "videomae-large-k400": "MCG-NJU/videomae-large-finetuned-kinetics",
    "videomae-base-ssv2": "MCG-NJU/videomae-base-finetuned-ssv2",
    "videomae-base": "MCG-NJU/videomae-base",
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def load_model(name_or_path, *, device="auto", dtype="auto", attn: str = "sdpa", task: str = "default"):
    """Load a ViViT or VideoMAE checkpoint as a VideoModel (eval mode) on `device` in `dtype`.

    task="pretraining": a VideoMAE pre-training checkpoint with its decoder (videomae_pretraining.load_pretraining).

    name_or_path: a directory in the Hugging Face layout, an alias (see ALIASES), or a hub id.
    device: auto | cpu | cuda[:N] | mps. dtype: auto (float32 on CPU) | float32 | float16 | bfloat16.
    attn: eager | sdpa (switch later with model.set_attn). Raises ModelNotFoundError when nothing is
    found, CheckpointError when what is found does not load.
    """
    from vivitcli.models.base import check_attn

    if task != "default":  # "pretraining" (anything else is refused there)
        from vivitcli.models.videomae_pretraining import load_pretraining
        return load_pretraining(name_or_path, device=device, dtype=dtype, attn=attn, task=task)
    check_attn(attn)
    path, name = resolve_model_path(name_or_path)
    return load_from_dir(path, name=name, device=device, dtype=dtype, attn=attn)


def load_from_dir(path, *, name: str | None = None, device="auto", dtype="auto", attn: str = "sdpa"):
    """load_model for a known checkpoint directory."""
    from vivitcli.models.build import finalize
    from vivitcli.models.checkpoint import model_from_state_dict, read_state_dict
    from vivitcli.models.config import ModelConfig

    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{path}: no config.json (not a Hugging Face checkpoint directory)")
    cfg = ModelConfig.from_dict(read_json(config_path), source=str(config_path))
    model = model_from_state_dict(cfg, read_state_dict(path), source=str(path), attn=attn)
    pre_path = path / "preprocessor_config.json"
    pre = read_json(pre_path) if pre_path.is_file() else None
    model = finalize(model, name=name or str(path), device=device, dtype=dtype, preprocessor_config=pre)
    model.path = path
    return model


def resolve_model_path(name_or_path, *, download: bool = True) -> tuple[Path, str]:
    """(checkpoint directory, display name) for a directory, alias or hub id; ModelNotFoundError otherwise."""
    text = str(name_or_path).strip()
    if not text:
        raise ModelNotFoundError("no model given", "pass a directory, a hub id or an alias such as 'vivit'")
    if text in ALIASES:
        target = ALIASES[text]
        if target == "demo":
            if not (DEMO_DIR / "config.json").is_file():
                raise ModelNotFoundError(f"model 'demo': the demo checkpoint is missing from {DEMO_DIR}",
                                         "reinstall vivitcli")
            return DEMO_DIR, "demo"
        return _resolve_hub(target, download=download, alias=text), target
    path = Path(text).expanduser()
    if path.is_dir():
        return path, text
    if path.is_file():
        if path.name == "config.json" or path.name in (SAFETENSORS, SAFETENSORS_INDEX, PYTORCH, PYTORCH_INDEX):
            return path.parent, str(path.parent)
        raise ModelNotFoundError(f"model {text!r} is a file, not a checkpoint directory",
                                 "pass the directory holding config.json and the weights")
    if _HUB_ID.match(text) and not text.startswith((".", "~")):
        return _resolve_hub(text, download=download, also_not=f"no directory {path.absolute()}"), text
    raise ModelNotFoundError(
        f"model {text!r} not found: no such directory ({path.absolute()}), not an alias "
        f"({', '.join(ALIASES)}) and not a hub id (owner/name)")


def hub_cache_dir() -> Path:
    """huggingface_hub's cache location, from the environment at call time."""
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if cache:
        return Path(cache).expanduser()
    home = os.environ.get("HF_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        home = os.path.join(xdg, "huggingface")
    return Path(home).expanduser() / "hub"


def find_in_cache(repo_id: str, cache_dir: Path | None = None) -> Path | None:
    """The cached snapshot of `repo_id` holding config.json and loadable weights, or None. No network."""
    repo = (cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates = []
    ref = repo / "refs" / "main"
    if ref.is_file():
        candidates.append(snapshots / ref.read_text().strip())
    candidates += sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime,
                         reverse=True)
    for snap in candidates:
        if (snap / "config.json").is_file():
            try:
                weight_files(snap)
            except CheckpointError:
                continue
            return snap
    return None


def _resolve_hub(repo_id: str, *, download: bool, alias: str | None = None, also_not: str | None = None) -> Path:
    cache = hub_cache_dir()
    cached = find_in_cache(repo_id, cache)
    if cached is not None:
        return cached
    label = f"model {alias!r} ({repo_id})" if alias else f"model {repo_id!r}"
    if also_not:
        label += f" ({also_not})"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not download or offline:
        raise ModelNotFoundError(f"{label} is not in the Hugging Face cache ({cache}) and downloads are off",
                                 "download it once with network access, or pass a local directory")
    try:
        return _download(repo_id, cache)
    except Exception as exc:  # huggingface_hub raises many types (HTTP, offline, gated, not found)
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ModelNotFoundError(f"{label} is not in the Hugging Face cache ({cache}) and the download "
                                 f"failed: {type(exc).__name__}: {reason}") from None


def _check_reachable(timeout: float = 3.0) -> None:
    """Fail fast without network: huggingface_hub retries connection errors with back-off for ~30 s."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"{host} is not reachable ({exc.strerror or exc})") from None


def _download(repo_id: str, cache: Path) -> Path:
    """Fetch config, preprocessor config and one weight format into the cache; return the snapshot dir."""
    _check_reachable()
    from huggingface_hub import HfApi, hf_hub_download

    files = set(HfApi().list_repo_files(repo_id))
    if "config.json" not in files:
        raise FileNotFoundError(f"{repo_id} has no config.json")
    wanted = ["config.json"] + [f for f in ("preprocessor_config.json",) if f in files]
    for weights in (SAFETENSORS, SAFETENSORS_INDEX, PYTORCH, PYTORCH_INDEX):
        if weights in files:
            wanted.append(weights)
            break
    else:
        raise FileNotFoundError(f"{repo_id} has no {SAFETENSORS} or {PYTORCH}")
    snapshot = None
    for name in wanted:
        snapshot = Path(hf_hub_download(repo_id, name, cache_dir=str(cache))).parent
    if wanted[-1].endswith(".index.json"):
        index = read_json(snapshot / wanted[-1])
        for shard in sorted(set(index.get("weight_map", {}).values())):
            hf_hub_download(repo_id, shard, cache_dir=str(cache))
    return snapshot
