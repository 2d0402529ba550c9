"""Checkpoint files are read only from inside their folder (issue 11 item 9), with one rule for load_model and
`vivit convert`; pickles load only as plain tensors; every refusal is one line naming the file."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from tests.checkpoints import make_tiny_videomae
from vivitcli import load_model
from vivitcli.errors import CheckpointError
from vivitcli.models.files import checkpoint_file, read_index, read_json, weight_files


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """A tiny VideoMAE written by transformers in several safetensors shards with its index."""
    path = make_tiny_videomae(tmp_path_factory.mktemp("sharded") / "ckpt", max_shard_size="30KB")
    assert len(read_index(path / "model.safetensors.index.json")) > 1
    return path


def _copy(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _retarget_shard(ckpt, new_name):
    """Point every index entry of the first shard at `new_name`; returns the original shard name."""
    index_path = ckpt / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    first = sorted(set(index["weight_map"].values()))[0]
    index["weight_map"] = {k: (new_name if v == first else v) for k, v in index["weight_map"].items()}
    index_path.write_text(json.dumps(index))
    return first


@pytest.mark.parametrize("kind", ["parent", "absolute", "subdir-escape"])
def test_index_naming_a_file_outside_the_folder_is_refused(tmp_path, sharded, kind):
    ckpt = _copy(sharded, tmp_path / "model")
    outside = tmp_path / "outside.safetensors"
    name = {"parent": "../outside.safetensors", "absolute": str(outside),
            "subdir-escape": "sub/../../outside.safetensors"}[kind]
    first = _retarget_shard(ckpt, name)
    shutil.move(ckpt / first, outside)              # the file really exists where the index points
    with pytest.raises(CheckpointError) as err:
        load_model(ckpt, device="cpu")
    text = _one_line(err)
    assert "model.safetensors.index.json" in text and "not a plain file name" in text


def test_sharded_checkpoint_inside_its_folder_loads(sharded):
    model = load_model(sharded, device="cpu")
    assert model.model_type == "videomae" and model.num_labels == 5


@pytest.mark.parametrize("which", ["model.safetensors", "config.json", "preprocessor_config.json"])
def test_file_linked_to_outside_the_folder_is_refused(tmp_path, videomae_dir, which):
    ckpt = _copy(videomae_dir, tmp_path / "model")
    outside = tmp_path / "elsewhere" / which
    outside.parent.mkdir()
    shutil.move(ckpt / which, outside)
    os.symlink(outside, ckpt / which)
    with pytest.raises(CheckpointError) as err:
        load_model(ckpt, device="cpu")
    text = _one_line(err)
    assert str(ckpt / which) in text and "outside the model folder" in text


def test_shard_linked_to_outside_is_refused(tmp_path, sharded):
    ckpt = _copy(sharded, tmp_path / "model")
    first = sorted(read_index(ckpt / "model.safetensors.index.json"))[0]
    shutil.move(ckpt / first, tmp_path / first)
    os.symlink(os.path.join("..", first), ckpt / first)         # relative link that climbs out
    with pytest.raises(CheckpointError, match="outside the model folder"):
        load_model(ckpt, device="cpu")


def test_links_that_stay_inside_and_a_linked_folder_load(tmp_path, videomae_dir):
    ckpt = _copy(videomae_dir, tmp_path / "model")
    (ckpt / "weights").mkdir()
    shutil.move(ckpt / "model.safetensors", ckpt / "weights" / "real.safetensors")
    os.symlink(os.path.join("weights", "real.safetensors"), ckpt / "model.safetensors")
    os.symlink(ckpt, tmp_path / "alias")                        # the folder itself may be a link
    assert load_model(tmp_path / "alias", device="cpu").num_labels == 5


def test_cache_snapshot_may_link_into_its_own_blobs_only(tmp_path, videomae_dir):
    repo = tmp_path / "hub" / "models--acme--m"
    snap = repo / "snapshots" / "abc"
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in videomae_dir.iterdir():
        shutil.copy(f, repo / "blobs" / f.name)
        os.symlink(os.path.join("..", "..", "blobs", f.name), snap / f.name)
    assert weight_files(snap) == [snap / "model.safetensors"]
    # Another repository's blobs are outside this snapshot's folder.
    other = tmp_path / "hub" / "models--acme--other" / "blobs"
    other.mkdir(parents=True)
    shutil.move(repo / "blobs" / "model.safetensors", other / "w")
    (snap / "model.safetensors").unlink()
    os.symlink(other / "w", snap / "model.safetensors")
    with pytest.raises(CheckpointError, match="outside the model folder"):
        weight_files(snap)


def test_symlink_loop_dangling_link_and_directory_are_named(tmp_path, videomae_dir):
    ckpt = _copy(videomae_dir, tmp_path / "model")
    (ckpt / "model.safetensors").unlink()
    os.symlink("model.safetensors", ckpt / "model.safetensors")
    with pytest.raises(CheckpointError, match="symlink loop") as err:
        load_model(ckpt, device="cpu")
    _one_line(err)
    (ckpt / "model.safetensors").unlink()
    os.symlink("gone.safetensors", ckpt / "model.safetensors")
    with pytest.raises(CheckpointError, match="broken link"):
        load_model(ckpt, device="cpu")
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_model(ckpt, device="cpu")


@pytest.mark.parametrize("weight_map, message", [
    ([], "'weight_map' must be a non-empty object"),
    ({}, "'weight_map' must be a non-empty object"),
    ({"a": 3}, "not a plain file name"),
    ({"a": ""}, "not a plain file name"),
    ({"a": ".."}, "not a plain file name"),
])
def test_malformed_index(tmp_path, weight_map, message):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(CheckpointError, match=message) as err:
        weight_files(tmp_path)
    assert "model.safetensors.index.json" in _one_line(err)


@pytest.mark.parametrize("content, message", [
    (b"[1, 2]", "expected a JSON object"),
    (b'{"a": NaN}', "NaN is not valid JSON"),
    (b"\xff\xfe{", "cannot read"),
    (b'{"a": ' * 100000, "cannot read"),                 # nesting deep enough to hit the recursion limit
])
def test_bad_json_is_one_line(tmp_path, content, message):
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as err:
        read_json(tmp_path / "config.json")
    assert str(tmp_path / "config.json") in _one_line(err)


def test_checkpoint_file_names_and_missing_files(tmp_path):
    assert checkpoint_file(tmp_path, "config.json", required=False) is None
    with pytest.raises(CheckpointError, match="no such file"):
        checkpoint_file(tmp_path, "config.json")
    for bad in ("../x", "/etc/passwd", "a/b", "a\\b", "", "..", "x\x00y"):
        with pytest.raises(CheckpointError, match="not a plain file name"):
            checkpoint_file(tmp_path, bad)


# ---- pickles ---------------------------------------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("payload, message", [
    (lambda p: torch.save({"w": torch.zeros(1), "x": _Evil()}, p), "refused to unpickle"),
    (lambda p: torch.save([torch.zeros(1)], p), "holds a list"),
    (lambda p: torch.save({"w": torch.zeros(1), "step": 3}, p), "'step' is a int, not a tensor"),
    (lambda p: p.write_bytes(b"PK\x03\x04 truncated zip"), "cannot load as a plain tensor file"),
    (lambda p: p.write_bytes(b"\x80\x02}q\x00"), "cannot load as a plain tensor file"),
])
def test_pickles_load_only_as_plain_tensors(tmp_path, videomae_dir, monkeypatch, payload, message):
    ckpt = _copy(videomae_dir, tmp_path / "model")
    (ckpt / "model.safetensors").unlink()
    payload(ckpt / "pytorch_model.bin")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(ckpt, device="cpu")
    assert str(ckpt / "pytorch_model.bin") in _one_line(err)
    assert not (tmp_path / "pwned").exists()


def test_pickled_checkpoint_with_state_dict_key_loads(tmp_path, videomae_dir):
    from safetensors.torch import load_file

    ckpt = _copy(videomae_dir, tmp_path / "model")
    torch.save({"state_dict": load_file(str(ckpt / "model.safetensors"))}, ckpt / "pytorch_model.bin")
    (ckpt / "model.safetensors").unlink()
    assert load_model(ckpt, device="cpu").num_labels == 5


# ---- convert follows the same rule ---------------------------------------------------------------------
def test_convert_reads_through_the_same_rule(tmp_path, sharded, videomae_dir):
    from vivitcli.convert import sources

    ckpt = _copy(sharded, tmp_path / "model")
    first = _retarget_shard(ckpt, "../outside.safetensors")
    shutil.move(ckpt / first, tmp_path / "outside.safetensors")
    with pytest.raises(CheckpointError, match="plain file name"):
        sources.read_hf(sources.detect(ckpt))
    linked = _copy(videomae_dir, tmp_path / "linked")
    shutil.move(linked / "model.safetensors", tmp_path / "w.safetensors")
    os.symlink(tmp_path / "w.safetensors", linked / "model.safetensors")
    with pytest.raises(CheckpointError, match="outside the model folder"):
        sources.read_hf(sources.detect(linked))


def test_integer_weights_are_refused_in_one_line(tmp_path, videomae_dir):
    from safetensors.torch import load_file, save_file

    ckpt = _copy(videomae_dir, tmp_path / "model")
    state = load_file(str(ckpt / "model.safetensors"))
    state["fc_norm.weight"] = state["fc_norm.weight"].to(torch.int64)
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(CheckpointError, match="weights must be floating point; fc_norm.weight is int64") as err:
        load_model(ckpt, device="cpu")
    _one_line(err)
