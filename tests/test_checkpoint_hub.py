"""The download side of hub resolution, with huggingface_hub's network calls replaced by fakes (no network):
one weight format is fetched through snapshot_download, and a shard index is checked before its shards are."""

from __future__ import annotations

import json

import pytest

from vivitcli.errors import CheckpointError, ModelNotFoundError


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """huggingface_hub online (empty cache, offline mode off) with list/download calls served from `files`."""
    import huggingface_hub
    from huggingface_hub import constants

    import vivitcli.models.hub as hub

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_check_reachable", lambda timeout=3.0: None)
    state = {"files": {}, "calls": []}
    snap = tmp_path / "snapshot"
    snap.mkdir()

    class FakeApi:
        def list_repo_files(self, repo_id):
            return list(state["files"])

    def fake_file(repo_id, filename, cache_dir=None):
        state["calls"].append(("file", filename))
        (snap / filename).write_text(state["files"][filename])
        return str(snap / filename)

    def fake_snapshot(repo_id, cache_dir=None, allow_patterns=None):
        state["calls"].append(("snapshot", tuple(allow_patterns)))
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_file)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    return state


def test_download_fetches_config_preprocessor_and_safetensors_only(fake_hub):
    from vivitcli.models.hub import resolve_model_path

    fake_hub["files"] = dict.fromkeys(["config.json", "preprocessor_config.json", "model.safetensors",
                                       "pytorch_model.bin", "flax_model.msgpack", "README.md"], "{}")
    path, name = resolve_model_path("acme/model")
    assert name == "acme/model" and path.name == "snapshot"
    assert fake_hub["calls"] == [("snapshot", ("config.json", "preprocessor_config.json", "model.safetensors"))]


def test_download_of_a_sharded_model_reads_the_index_first(fake_hub):
    from vivitcli.models.hub import resolve_model_path

    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    fake_hub["files"] = {"config.json": "{}", "pytorch_model.bin.index.json": json.dumps(index)}
    resolve_model_path("acme/model")
    assert fake_hub["calls"] == [
        ("file", "pytorch_model.bin.index.json"),
        ("snapshot", ("config.json", "pytorch_model.bin.index.json", "model-00001-of-00002.safetensors",
                      "model-00002-of-00002.safetensors")),
    ]


def test_download_refuses_an_index_reaching_outside(fake_hub):
    from vivitcli.models.hub import resolve_model_path

    index = {"weight_map": {"a": "../../../../etc/passwd"}}
    fake_hub["files"] = {"config.json": "{}", "model.safetensors.index.json": json.dumps(index)}
    with pytest.raises(CheckpointError, match="not a plain file name"):
        resolve_model_path("acme/model")
    assert [c[0] for c in fake_hub["calls"]] == ["file"]               # nothing fetched after the index


def test_failed_download_says_what_to_do(fake_hub):
    from vivitcli.models.hub import resolve_model_path

    fake_hub["files"] = {"README.md": ""}
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model_path("acme/model")
    text = str(err.value)
    assert "acme/model has no config.json" in text and "`hf download acme/model`" in text and "\n" not in text
