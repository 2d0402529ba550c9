"""`vivit benchmark` on tiny models: eager/sdpa agreement, the CPU memory measure, the CLI and --video stages.

Worker processes cost a torch import each, so only the memory test and one CLI run spawn them."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.checkpoints import VIDEOMAE_TINY, VIVIT_TINY, make_tiny_videomae, make_tiny_vivit
from vivitcli.benchmark.measure import make_inputs, measure
from vivitcli.benchmark.memory import RSS_METHOD
from vivitcli.benchmark.rows import FIELDS, max_abs_diff
from vivitcli.models.backends import openvino_available
from vivitcli.benchmark.spec import Config
from vivitcli.benchmark.worker import run_isolated
from vivitcli.cli import app

TINY_VIVIT = {**VIVIT_TINY, "model_type": "vivit", "architectures": ["VivitForVideoClassification"],
              "num_labels": 5}
TINY_VIDEOMAE = {**VIDEOMAE_TINY, "model_type": "videomae", "architectures": ["VideoMAEForVideoClassification"],
                 "num_labels": 5}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one thread each avoids OpenMP spinning against other work
    (steps 100x slower). Restored for whoever runs next in this process."""
    import torch

    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vivit_dir(tmp_path_factory):
    return make_tiny_vivit(tmp_path_factory.mktemp("ckpt") / "vivit")


@pytest.mark.parametrize("model_config", [TINY_VIVIT, TINY_VIDEOMAE], ids=["vivit", "videomae"])
@pytest.mark.parametrize("mode", ["inference", "training"])
def test_eager_and_sdpa_agree_on_the_same_weights(model_config, mode):
    runs = {attn: measure(Config(model="tiny", attn=attn, batch_size=2, mode=mode, steps=2, warmup=1,
                                 threads=1, model_config=model_config))
            for attn in ("eager", "sdpa")}
    for attn, m in runs.items():
        assert m.status == "ok", (attn, m.error)
        assert len(m.step_ms) == 2 and all(t > 0 for t in m.step_ms)
        assert len(m.output) == 2 and len(m.output[0]) == 5
    diff = max_abs_diff(runs["eager"].output, runs["sdpa"].output)
    assert diff < 1e-4
    # Different seeds give different weights: the comparison would catch a real mismatch.
    other = measure(Config(model="tiny", attn="sdpa", batch_size=2, mode=mode, steps=1, warmup=0, seed=1,
                           threads=1, model_config=model_config))
    assert max_abs_diff(runs["eager"].output, other.output) > 100 * max(diff, 1e-7)


def test_checkpoint_directory_loads_real_weights(vivit_dir):
    import torch

    from tests.checkpoints import load_reference
    from vivitcli import load_model

    m = measure(Config(model=str(vivit_dir), attn="eager", batch_size=1, steps=1, warmup=0, threads=1))
    assert m.status == "ok", m.error
    # The benchmark fed seeded noise to the checkpoint's own weights: transformers gives the same logits.
    pixels = make_inputs(load_model(str(vivit_dir), device="cpu"), 1, seed=0)
    assert tuple(pixels.shape) == (1, 4, 3, 32, 32)
    with torch.no_grad():
        expected = load_reference(vivit_dir, attn="eager")(pixel_values=pixels).logits
    assert max_abs_diff(m.output, expected.tolist()) < 1e-4


def test_cpu_peak_memory_grows_with_batch_size():
    # 8 frames of 64 px: 257 tokens, so activations and the input scale visibly with the batch.
    config = {**TINY_VIVIT, "image_size": 64, "num_frames": 8}
    runs = {b: run_isolated(Config(model="tiny", attn="eager", batch_size=b, steps=1, warmup=1,
                                   threads=1, model_config=config)) for b in (1, 8)}
    for b, m in runs.items():
        assert m.status == "ok", (b, m.error)
        assert m.mem_method == RSS_METHOD
        assert m.peak_mem_bytes > 0
    clip_bytes = 8 * 3 * 64 * 64 * 4  # one float32 input clip
    scores_bytes = 4 * 257 * 257 * 4  # one clip's float32 attention scores in one layer (4 heads)
    # Seven more clips: their inputs (counted from the tensor) and, seen only through RSS, at least their
    # attention scores, which eager holds at the peak.
    assert runs[8].peak_mem_bytes - runs[1].peak_mem_bytes > 7 * (clip_bytes + scores_bytes)


def test_cli_json_end_to_end(vivit_dir):
    result = CliRunner().invoke(app, ["benchmark", "--model", str(vivit_dir), "--batch-sizes", "2",
                                      "--steps", "1", "--warmup", "0", "--device", "cpu", "--threads", "1",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "vivitcli.benchmark/1"
    assert data["environment"]["memory_method"] == RSS_METHOD
    (row,) = data["rows"]
    assert list(row) == list(FIELDS)
    assert (row["model"], row["batch_size"], row["dtype"], row["mode"]) == (str(vivit_dir), 2, "float32", "inference")
    assert row["eager_status"] == row["sdpa_status"] == "ok"
    assert row["eager_mem_mb"] > 0 and row["sdpa_mem_mb"] > 0
    assert row["speedup_pct"] == pytest.approx(100 * (row["eager_ms_per_clip"] / row["sdpa_ms_per_clip"] - 1))
    assert row["max_abs_diff"] < 1e-4


@pytest.mark.skipif(not openvino_available(), reason="openvino is not installed (pip install 'vivitcli[openvino]')")
def test_cli_openvino_backend(vivit_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VIVIT_CACHE", str(tmp_path))           # the workers' compiled-model cache
    result = CliRunner().invoke(app, ["benchmark", "--model", str(vivit_dir), "--backend", "openvino",
                                      "--steps", "2", "--device", "cpu", "--threads", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["rows"]
    assert (row["backend"], row["batch_size"], row["dtype"]) == ("openvino", 1, "float32")
    assert row["eager_status"] == row["sdpa_status"] == "ok"
    assert row["max_abs_diff"] < 1e-4 and row["eager_spread_ms"] is not None
    assert len(list((tmp_path / "openvino").glob("*.blob"))) == 2       # eager and sdpa graphs, cached


@pytest.mark.parametrize("args, message", [
    (["--dtype", "float64"], "--dtype"),
    (["--batch-sizes", "0,2"], "--batch-sizes"),
    (["--mode", "serving"], "--mode"),
    (["--format", "xml"], "--format"),
    (["extra.mp4"], "--video"),
])
def test_cli_usage_errors(args, message):
    result = CliRunner().invoke(app, ["benchmark", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr


def test_cli_unknown_backend_is_refused():
    result = CliRunner().invoke(app, ["benchmark", "--backend", "tensorrt"])
    assert result.exit_code == 2 and "--backend" in result.stderr


def test_cli_unknown_model_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["benchmark", "--model", str(tmp_path / "nope"), "--device", "cpu"])
    assert result.exit_code != 0 and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_video_stages(vivit_dir, tmp_path):
    from tests.videos import write_not_video, write_video

    good = [write_video(tmp_path / "a.mp4", num_frames=20), write_video(tmp_path / "b.webm", num_frames=12,
                                                                         codec="libvpx-vp9")]
    bad = write_not_video(tmp_path / "c.mp4")
    result = CliRunner().invoke(app, ["benchmark", "--model", str(vivit_dir), "--device", "cpu", "--warmup", "1", "--threads", "1",
                                      "--format", "json", "--video", str(good[0]), str(good[1]), str(bad)])
    assert result.exit_code == 1  # one file failed; the others still have rows
    data = json.loads(result.stdout)
    assert data["schema"] == "vivitcli.benchmark.stages/1"
    rows = {r["file"]: r for r in data["rows"]}
    assert list(rows) == [str(good[0]), str(good[1]), str(bad)]
    for path, frames in ((good[0], 20), (good[1], 12)):
        row = rows[str(path)]
        assert row["error"] is None and row["video_frames"] == frames and row["clip_frames"] == 4
        stages = [row[f"{s}_ms"] for s in ("probe", "sample", "decode", "preprocess", "model")]
        assert all(v > 0 for v in stages)
        assert row["total_ms"] == pytest.approx(sum(stages))
    assert rows[str(bad)]["error"] and str(bad) in rows[str(bad)]["error"] and rows[str(bad)]["total_ms"] is None

    table = CliRunner().invoke(app, ["benchmark", "--model", str(vivit_dir), "--device", "cpu", "--warmup", "0",
                                     "--threads", "1", "--video", str(good[0]), str(good[1])])
    assert table.exit_code == 0, table.output
    assert "| file" in table.stdout and "mean of 2" in table.stdout and "Share of the time" in table.stdout


def test_stages_read_the_clip_read_clip_reads(vivit_dir, tmp_path):
    import torch

    from tests.videos import write_video
    from vivitcli import load_model
    from vivitcli.benchmark.stages import StageRow, _Clock, read_in_stages

    model = load_model(str(vivit_dir), device="cpu")
    path = write_video(tmp_path / "wide.mp4", num_frames=30, width=80, height=48)
    row = StageRow(file=str(path))
    clock = _Clock(lambda: None)
    staged = read_in_stages(path, model.preprocessor, model.num_frames, clock, row)
    assert torch.equal(staged, model.read_clip(path))
    assert set(clock.ms) == {"probe", "sample", "decode", "preprocess"} and row.video_frames == 30
