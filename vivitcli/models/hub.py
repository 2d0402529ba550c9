"""load_model: a local directory, a model name from vivitcli.models.names, or a hub id (local HF cache first,
then a download).

The cache is huggingface_hub's own (its `constants.HF_HUB_CACHE`, which honours HF_HUB_CACHE / HF_HOME /
XDG_CACHE_HOME as set when the process starts), read through its cache API (try_to_load_from_cache,
scan_cache_dir): a cached snapshot is used without any network access. Otherwise huggingface_hub downloads
config.json, preprocessor_config.json and one weight format (safetensors preferred), unless its offline mode
is on (HF_HUB_OFFLINE=1, or TRANSFORMERS_OFFLINE=1).
"""

from __future__ import annotations

import re
from pathlib import Path

from vivitcli.errors import CheckpointError, ModelNotFoundError
from vivitcli.models.files import PYTORCH, PYTORCH_INDEX, SAFETENSORS, SAFETENSORS_INDEX, read_index, read_json, \
    weight_files

PACKAGE_DIR = Path(__file__).resolve().parent.parent
DEMO_DIR = PACKAGE_DIR / "demo" / "model"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def load_model(name_or_path, *, device="auto", dtype="auto", attn: str = "sdpa", task: str = "default",
               backend: str = "torch"):
    """Load a ViViT or VideoMAE checkpoint as a VideoModel (eval mode) on `device` in `dtype`.

    task="pretraining": a VideoMAE pre-training checkpoint with its decoder (videomae_pretraining.load_pretraining).

    name_or_path: a directory in the Hugging Face layout, a model name (`vivit models`), or a hub id.
    device: auto | cpu | cuda[:N] | mps. dtype: auto (float32 on CPU) | float32 | float16 | bfloat16.
    attn: eager | sdpa (switch later with model.set_attn). Raises ModelNotFoundError when nothing is
    found, CheckpointError when what is found does not load.
    """
    from vivitcli.models.backends import apply_backend, check_backend
    from vivitcli.models.base import check_attn

    if task != "default":  # "pretraining" (anything else is refused there)
        from vivitcli.models.videomae_pretraining import load_pretraining
        return load_pretraining(name_or_path, device=device, dtype=dtype, attn=attn, task=task)
    check_attn(attn)
    check_backend(backend)
    path, name = resolve_model_path(name_or_path)
    # backend: torch | openvino | auto (models/backends: OpenVINO runs the same model, compiled for the CPU).
    return apply_backend(load_from_dir(path, name=name, device=device, dtype=dtype, attn=attn), backend, dtype=dtype)


def load_from_dir(path, *, name: str | None = None, device="auto", dtype="auto", attn: str = "sdpa"):
    """load_model for a known checkpoint directory.

    Order matters for untrusted folders: config.json and preprocessor_config.json are validated, then the
    weights' names and shapes (safetensors headers) are checked against the config, and only then are
    tensors read and the model built; every file is read from inside the folder (files.checkpoint_file).
    """
    from vivitcli.models.build import finalize
    from vivitcli.models.checkpoint import check_fit, load_weights, model_from_state_dict, open_checkpoint, \
        weight_shapes

    path = Path(path)
    if (path / "probe.json").is_file():  # a linear probe on a referenced backbone: `vivit probe train`
        from vivitcli.linear_probe.model import load_probe
        return load_probe(path, name=name, device=device, dtype=dtype, attn=attn)
    cfg, pre, files = open_checkpoint(path)
    shapes = weight_shapes(files)
    if shapes is not None:
        check_fit(cfg, shapes, source=str(path))          # before any tensor is read
    state: dict = {}
    for f in files:
        state.update(load_weights(f))
    model = model_from_state_dict(cfg, state, source=str(path), attn=attn)
    model = finalize(model, name=name or str(path), device=device, dtype=dtype, preprocessor_config=pre)
    model.path = path
    return model


def resolve_model_path(name_or_path, *, download: bool = True) -> tuple[Path, str]:
    """(checkpoint directory, display name) for a directory, model name or hub id; ModelNotFoundError otherwise."""
    from vivitcli.models import names

    text = str(name_or_path).strip()
    if not text:
        raise ModelNotFoundError("no model given", "pass a directory, a hub id or a model name such as 'vivit'")
    entry = names.lookup(text)
    if entry is not None:
        if entry.kind == "package":
            folder = PACKAGE_DIR / entry.target
            if not (folder / "config.json").is_file():
                raise ModelNotFoundError(f"model {text!r}: the shipped checkpoint is missing from {folder}",
                                         "reinstall vivitcli")
            return folder, text
        if entry.kind == "hub":
            return _resolve_hub(entry.target, download=download, alias=text), entry.target
        if entry.kind == "random":
            raise ModelNotFoundError(f"model {text!r} is a random-weight architecture (no checkpoint to load)",
                                     "use it with `vivit benchmark`, or pass a trained checkpoint")
        raise ModelNotFoundError(f"model {text!r} has no Hugging Face checkpoint", entry.note or None)
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
    close = names.suggest(text)
    raise ModelNotFoundError(
        f"model {text!r} not found: no such directory ({path.absolute()}), not a model name and not a hub id "
        f"(owner/name); " + (f"did you mean {close!r}?" if close else f"names: {', '.join(names.alias_names())}"),
        "`vivit models` lists the names")


# ---- the Hugging Face cache ------------------------------------------------------------------------------
def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def offline() -> bool:
    """huggingface_hub's offline mode (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _cached_revisions(repo_id: str, cache: Path) -> list[Path]:
    """Snapshot folders of `repo_id` in the cache, refs/main first, then the others newest first."""
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import CacheNotFound

    if not (cache / repo_folder_name(repo_id=repo_id, repo_type="model")).is_dir():
        return []
    found: list[Path] = []
    try:
        main = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache)
    except ValueError:                              # an id huggingface_hub does not accept
        return []
    if isinstance(main, str):
        found.append(Path(main).parent)
    try:
        info = scan_cache_dir(cache)
    except (CacheNotFound, OSError):
        return found
    for repo in info.repos:
        if repo.repo_id == repo_id and repo.repo_type == "model":
            for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
                if Path(rev.snapshot_path) not in found:
                    found.append(Path(rev.snapshot_path))
    return found


def find_in_cache(repo_id: str, cache_dir: Path | None = None) -> Path | None:
    """The cached snapshot of `repo_id` holding config.json and loadable weights, or None. No network."""
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    for snap in _cached_revisions(repo_id, cache):
        if (snap / "config.json").is_file():
            try:
                weight_files(snap)
            except CheckpointError:
                continue
            return snap
    return None


def cached_checkpoints(cache_dir: Path | None = None) -> list[str]:
    """Repository ids of ViViT / VideoMAE models in the cache (any revision with such a config.json)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.utils import CacheNotFound

    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    try:
        info = scan_cache_dir(cache)
    except (CacheNotFound, OSError):
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            try:
                model_type = read_json(Path(rev.snapshot_path) / "config.json").get("model_type")
            except CheckpointError:
                continue
            if model_type in ("vivit", "videomae"):
                found.append(repo.repo_id)
                break
    return found


def download_command(repo_id: str) -> str:
    """The shell command that puts `repo_id` into the cache (huggingface_hub's CLI)."""
    return f"hf download {repo_id}"


def _resolve_hub(repo_id: str, *, download: bool, alias: str | None = None, also_not: str | None = None) -> Path:
    cache = hub_cache_dir()
    cached = find_in_cache(repo_id, cache)
    if cached is not None:
        return cached
    label = f"model {alias!r} ({repo_id})" if alias else f"model {repo_id!r}"
    if also_not:
        label += f" ({also_not})"
    what_next = (f"download it with `{download_command(repo_id)}` where there is network, pass a local "
                 "checkpoint folder, or try `--model demo`")
    if not download or offline():
        why = "HF_HUB_OFFLINE is set" if offline() else "downloads are off"
        raise ModelNotFoundError(f"{label} is not in the Hugging Face cache ({cache}) and {why}", what_next)
    try:
        return _download(repo_id, cache)
    except CheckpointError:
        raise
    except Exception as exc:  # huggingface_hub raises many types (HTTP, offline, gated, not found)
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ModelNotFoundError(f"{label} is not in the Hugging Face cache ({cache}) and the download "
                                 f"failed: {type(exc).__name__}: {reason}", what_next) from None


def _check_reachable(timeout: float = 3.0) -> None:
    """Fail fast without network: huggingface_hub retries connection errors with back-off for ~30 s."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT or "https://huggingface.co")          # HF_ENDPOINT, as huggingface_hub reads it
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"{host} is not reachable ({exc.strerror or exc})") from None


def _download(repo_id: str, cache: Path) -> Path:
    """Fetch config, preprocessor config and one weight format (all shards) into the cache with
    huggingface_hub's snapshot_download; return the snapshot dir."""
    _check_reachable()
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    files = set(HfApi().list_repo_files(repo_id))
    if "config.json" not in files:
        raise FileNotFoundError(f"{repo_id} has no config.json")
    wanted = ["config.json"] + [f for f in ("preprocessor_config.json",) if f in files]
    weights = next((w for w in (SAFETENSORS, SAFETENSORS_INDEX, PYTORCH, PYTORCH_INDEX) if w in files), None)
    if weights is None:
        raise FileNotFoundError(f"{repo_id} has no {SAFETENSORS} or {PYTORCH}")
    wanted.append(weights)
    if weights.endswith(".index.json"):
        # The index names the shards: read (and check) it before fetching what it lists.
        wanted += read_index(hf_hub_download(repo_id, weights, cache_dir=str(cache)))
    return Path(snapshot_download(repo_id, cache_dir=str(cache), allow_patterns=wanted))
