"""Classify and embed on a real local Ray instance: the same records as a local run, bad files as error rows,
Parquet outputs, byte rows, and the one-line error without Ray."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import vivitcli
from vivitcli import synthetic
from vivitcli.cli import app

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

from vivitcli.distributed import ray as on_ray  # noqa: E402 - only with ray installed


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance for this module (2 CPUs, as CI has), stopped at the end."""
    on_ray.quiet_ray_logs()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Six small demo-class clips (two sizes, so batches must group by shape) plus a broken and an empty file."""
    root = tmp_path_factory.mktemp("rayclips")
    good = []
    for i, label in enumerate(synthetic.CLASSES):
        spec = synthetic.sample_spec(100 + i, label=label, width=96 if i % 2 else 128, height=72, fps=12,
                                     duration=1.5, codec="h264")
        good.append(synthetic.write_clip(spec, root / f"{i}_{label.replace(' ', '_')}.mp4"))
    (root / "3b_broken.mp4").write_bytes(b"not a video at all")
    (root / "9_empty.mp4").write_bytes(b"")
    return root


def _compare(ray_records: list[dict], local_records: list[dict]) -> None:
    assert [r["path"] for r in ray_records] == [r["path"] for r in local_records]
    for a, b in zip(ray_records, local_records):
        assert a["error"] == b["error"]
        assert a["frame_indices"] == b["frame_indices"] and a["timestamps"] == b["timestamps"]
        if "labels" in b:
            assert [x["label"] for x in a["labels"]] == [x["label"] for x in b["labels"]]
            assert np.allclose([x["score"] for x in a["labels"]], [x["score"] for x in b["labels"]], atol=1e-5)
        if b.get("embedding") is not None:
            assert np.abs(np.asarray(a["embedding"]) - np.asarray(b["embedding"])).max() < 1e-5


@pytest.mark.parametrize("task", ["classify", "embed"])
def test_ray_records_equal_a_local_run(cluster, folder, task):
    job = (vivitcli.ClassifyJob(folder, "demo", top_k=3) if task == "classify"
           else vivitcli.EmbedJob(folder, "demo", pool="mean"))
    local = [r.to_dict() for r in job.run()]
    remote = list(on_ray.run_on_ray(job, job.paths, concurrency=1, decoders=2, batch_size=2))
    _compare(remote, local)
    errors = {r["path"].rsplit("/", 1)[-1]: r["error"] for r in remote if r["error"]}
    assert set(errors) == {"3b_broken.mp4", "9_empty.mp4"}  # error rows; the job itself succeeded
    assert sum(r["error"] is None for r in remote) == 6


def test_cli_ray_writes_the_same_files_as_a_local_run(cluster, folder, tmp_path):
    runner = CliRunner()
    for suffix in (".jsonl", ".npy"):
        command = "classify" if suffix == ".jsonl" else "embed"
        local, remote = tmp_path / f"local{suffix}", tmp_path / f"ray{suffix}"
        a = runner.invoke(app, [command, str(folder), "-m", "demo", "-o", str(local), "-q"])
        b = runner.invoke(app, [command, str(folder), "-m", "demo", "-o", str(remote), "-q", "--ray", "auto"])
        assert a.exit_code == b.exit_code == 1, (a.stderr, b.stderr)  # two bad files in the folder
        assert "3b_broken.mp4" in b.stderr
        if suffix == ".jsonl":
            _compare([json.loads(x) for x in remote.read_text().splitlines()],
                     [json.loads(x) for x in local.read_text().splitlines()])
        else:
            assert np.abs(np.load(remote) - np.load(local)).max() < 1e-5
            rows = [r["path"] for r in json.loads((tmp_path / "ray.npy.json").read_text())["rows"]]
            assert rows == [r["path"] for r in json.loads((tmp_path / "local.npy.json").read_text())["rows"]]
    assert ray.is_initialized()  # the CLI used the running instance and left it running


def test_parquet_dataset_folder_reads_as_one_table(cluster, folder, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "labels"
    r = CliRunner().invoke(app, ["classify", str(folder), "-m", "demo", "-k", "2", "-o", f"{out}/", "-q",
                                 "--ray", "auto"])
    assert r.exit_code == 1, r.stderr
    parts = sorted(p.name for p in out.iterdir())
    assert parts and all(p.endswith(".parquet") for p in parts)
    table = pq.read_table(out)
    rows = sorted(table.to_pylist(), key=lambda row: row["index"])
    assert [row["path"] for row in rows] == [str(p) for p in vivitcli.ClassifyJob(folder, "demo").paths]
    good = [row for row in rows if row["error"] is None]
    assert len(good) == 6 and all(len(row["labels"]) == 2 for row in good)
    # A second run into the same folder would mix part files of two runs: refused.
    again = CliRunner().invoke(app, ["classify", str(folder), "-m", "demo", "-o", f"{out}/", "--ray", "auto"])
    assert again.exit_code == 2 and "not empty" in again.stderr


def test_rows_with_bytes_and_file_uris_decode_like_paths(folder):
    job = vivitcli.EmbedJob(folder, "demo")
    first = job.paths[0]
    with open(first, "rb") as f:
        data = f.read()
    batch = {"index": np.array([0, 1, 2]), "path": np.array([first, "s.mp4", f"file://{first}"], dtype=object),
             "bytes": np.array([None, data, None], dtype=object)}
    decoded = on_ray.decode_batch(batch, reader=job.reader())
    assert decoded["error"].tolist() == ["", "", ""]
    assert np.array_equal(decoded["clip"][0], decoded["clip"][1])
    assert np.array_equal(decoded["clip"][0], decoded["clip"][2])
    assert decoded["clip"][0].shape[0] == 1  # one view


def test_without_ray_the_error_is_one_line(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    r = CliRunner().invoke(app, ["classify", str(folder), "-m", "demo", "--ray", "local"])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == ["error: --ray needs Ray (pip install 'vivitcli[ray]')"]
