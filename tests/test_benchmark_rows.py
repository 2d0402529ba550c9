"""Row arithmetic, the measurement loop's OOM handling, and the table/JSON/CSV formats of `vivit benchmark`.

Measurements here are made up or come from a stand-in model: no timing is asserted."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
import torch

from vivitcli.benchmark import report
from vivitcli.benchmark.measure import is_out_of_memory, measure
from vivitcli.benchmark.rows import FIELDS, Row, max_abs_diff, mem_saved_pct, speedup_pct
from vivitcli.benchmark.runner import plan, run_benchmark
from vivitcli.benchmark.spec import Config, Measurement
from vivitcli.benchmark.worker import interpret


def test_mem_saved_matches_the_docs_vivit_table():
    # transformers' ViViT docs, A100 fp32 inference: eager 715.807 MB, sdpa 317.079 MB -> 125.75 %.
    assert mem_saved_pct(715.807, 317.079) == pytest.approx(125.75, abs=0.01)
    assert mem_saved_pct(4358.19, 1233.24) == pytest.approx(253.393, abs=0.01)


def test_speedup_is_eager_over_sdpa_minus_one():
    assert speedup_pct(115.422, 100.0) == pytest.approx(15.422)
    assert speedup_pct(90.0, 100.0) == pytest.approx(-10.0)  # sdpa slower: negative, not hidden
    assert speedup_pct(None, 100.0) is None
    assert mem_saved_pct(100.0, None) is None


def test_max_abs_diff():
    assert max_abs_diff([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.5], [2.0, 4.0]]) == pytest.approx(1.0)
    assert max_abs_diff([[1.0]], None) is None
    assert math.isnan(max_abs_diff([[float("nan"), 1.0]], [[0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        max_abs_diff([[1.0, 2.0]], [[1.0]])


def _ok(step_ms, mem_mb, output):
    return Measurement(step_ms=step_ms, peak_mem_bytes=int(mem_mb * 2**20), output=output, mem_method="test")


def test_row_uses_median_step_per_clip():
    row = Row(model="m", mode="inference", device="cpu", dtype="bfloat16", batch_size=2, num_batches=3,
              warmup=1, eager=_ok([30.0, 24.0, 900.0], 300, [[0.5, 1.0]]),
              sdpa=_ok([20.0, 500.0, 21.0], 200, [[0.5, 1.25]]))
    d = row.to_dict()
    assert list(d) == list(FIELDS)
    assert d["eager_ms_per_clip"] == pytest.approx(15.0)   # median 30 ms / batch 2
    assert d["sdpa_ms_per_clip"] == pytest.approx(10.5)
    assert d["speedup_pct"] == pytest.approx(100 * (15.0 / 10.5 - 1))
    assert d["eager_mem_mb"] == pytest.approx(300) and d["sdpa_mem_mb"] == pytest.approx(200)
    assert d["mem_saved_pct"] == pytest.approx(50.0)
    assert d["max_abs_diff"] == pytest.approx(0.25)
    assert d["is_half"] is True and d["is_cuda"] is False
    assert d["note"] == ""


def _fake_measure(calls, oom_at=4):
    """Eager runs out of memory from batch `oom_at`; sdpa always fits."""

    def fake(config: Config) -> Measurement:
        calls.append((config.model, config.mode, config.dtype, config.batch_size, config.attn))
        if config.attn == "eager" and config.batch_size >= oom_at:
            return Measurement(status="oom", error="OutOfMemoryError: simulated")
        scale = 2.0 if config.attn == "eager" else 1.0
        return _ok([scale * config.batch_size] * config.steps, scale * 10 * config.batch_size,
                   [[0.0] * 3] * config.batch_size)

    return fake


def test_oom_row_says_so_and_the_run_goes_on():
    calls = []
    rows = run_benchmark(["m"], device="cpu", batch_sizes=[8, 1, 4, 2], dtypes=["float32"],
                         modes=["inference"], steps=2, warmup=0, measure=_fake_measure(calls))
    assert [r.batch_size for r in rows] == [1, 2, 4, 8]
    four, eight = rows[2].to_dict(), rows[3].to_dict()
    assert four["eager_status"] == "oom" and four["sdpa_status"] == "ok"
    assert four["eager_ms_per_clip"] is None and four["speedup_pct"] is None and four["mem_saved_pct"] is None
    assert four["sdpa_ms_per_clip"] == pytest.approx(1.0)
    assert "simulated" in four["note"]
    # A larger batch of the same attention is skipped, not run into the same wall; sdpa still runs.
    assert eight["eager_status"] == "skipped" and "batch size 4 ran out of memory" in eight["note"]
    assert eight["sdpa_status"] == "ok"
    assert ("m", "inference", "float32", 8, "eager") not in calls
    assert ("m", "inference", "float32", 8, "sdpa") in calls
    # Rows that fit carry the docs' arithmetic.
    assert rows[0].to_dict()["speedup_pct"] == pytest.approx(100.0)
    assert rows[0].to_dict()["mem_saved_pct"] == pytest.approx(100.0)


def test_plan_orders_models_modes_dtypes_then_ascending_batches():
    assert plan(["a", "b"], ["inference", "training"], ["float32"], [2, 1, 2]) == [
        ("a", "inference", "float32", 1), ("a", "inference", "float32", 2),
        ("a", "training", "float32", 1), ("a", "training", "float32", 2),
        ("b", "inference", "float32", 1), ("b", "inference", "float32", 2),
        ("b", "training", "float32", 1), ("b", "training", "float32", 2),
    ]


def _rows():
    return run_benchmark(["tiny"], device="cpu", batch_sizes=[1, 4], dtypes=["float32", "bfloat16"],
                         modes=["inference"], steps=3, warmup=1, measure=_fake_measure([]))


ENV = {"device": "cpu", "device_name": "test cpu", "torch_version": "x", "memory_method": "test method"}


def test_json_schema():
    data = json.loads(report.to_json(_rows(), ENV))
    assert data["schema"] == "vivitcli.benchmark/1"
    assert data["environment"] == ENV
    assert len(data["rows"]) == 4
    for row in data["rows"]:
        assert list(row) == list(FIELDS)
        assert isinstance(row["batch_size"], int) and isinstance(row["is_cuda"], bool)
    oom = data["rows"][1]
    assert (oom["batch_size"], oom["eager_status"], oom["eager_ms_per_clip"]) == (4, "oom", None)
    ok = data["rows"][0]
    assert ok["speedup_pct"] == pytest.approx(100.0) and ok["max_abs_diff"] == 0.0


def test_json_writes_nan_diff_as_string():
    row = Row(model="m", mode="inference", device="cpu", dtype="float16", batch_size=1, num_batches=1,
              warmup=0, eager=_ok([1.0], 1, [[float("nan")]]), sdpa=_ok([1.0], 1, [[0.0]]))
    assert json.loads(report.to_json([row], ENV))["rows"][0]["max_abs_diff"] == "nan"


def test_csv_schema():
    lines = list(csv.reader(io.StringIO(report.to_csv(_rows()))))
    assert tuple(lines[0]) == FIELDS
    records = [dict(zip(lines[0], line)) for line in lines[1:]]
    assert [(r["dtype"], r["batch_size"]) for r in records] == [
        ("float32", "1"), ("float32", "4"), ("bfloat16", "1"), ("bfloat16", "4")]
    assert records[1]["eager_status"] == "oom" and records[1]["eager_ms_per_clip"] == ""
    assert float(records[0]["mem_saved_pct"]) == pytest.approx(100.0)
    assert records[2]["is_half"] == "True"


def test_table_has_the_docs_columns_and_marks_oom():
    text = report.to_table(_rows(), ENV)
    header = next(line for line in text.splitlines() if line.startswith("| num_batches"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells == ["num_batches", "batch_size", "dtype", "is cuda", "is half", "eager (ms/clip)",
                     "sdpa (ms/clip)", "Speedup (%)", "spread (ms)", "Mem eager (MB)", "Mem sdpa (MB)",
                     "Mem saved (%)", "max abs diff"]
    oom_line = next(line for line in text.splitlines() if line.startswith("|") and "OOM" in line)
    assert [c.strip() for c in oom_line.strip("|").split("|")][:6] == ["3", "4", "float32", "False", "False", "OOM"]
    assert "test method" in text


def test_worker_exit_status_interpretation():
    assert interpret(-9, "", "").status == "oom"
    failed = interpret(1, "", "Traceback ...\nValueError: bad config\n")
    assert failed.status == "error" and "bad config" in failed.error
    ok = interpret(0, json.dumps(Measurement(step_ms=[1.0]).to_dict()), "")
    assert ok.status == "ok" and ok.step_ms == [1.0]


def test_out_of_memory_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                                         "can't allocate memory: you tried to allocate 1 bytes."))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


class _StandIn(torch.nn.Module):
    """A model that, like a real one on a full GPU, runs out of memory above a batch size."""

    num_frames, image_size, config, labels = 2, 4, {"num_channels": 3}, ["a", "b"]

    def __init__(self, limit):
        super().__init__()
        self.limit = limit
        self.head = torch.nn.Linear(2 * 3 * 4 * 4, 2)

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
        return self.head(x.flatten(1))


@pytest.mark.parametrize("mode", ["inference", "training"])
def test_measure_turns_an_oom_into_a_row(mode):
    ran = measure(Config(model="standin", batch_size=2, mode=mode, steps=2, warmup=1),
                  builder=lambda c: _StandIn(limit=2))
    assert ran.status == "ok" and len(ran.step_ms) == 2 and len(ran.output) == 2
    assert ran.peak_mem_bytes is None  # CPU memory is only read in an isolated worker process
    oom = measure(Config(model="standin", batch_size=3, mode=mode, steps=2, warmup=1),
                  builder=lambda c: _StandIn(limit=2))
    assert oom.status == "oom" and "simulated" in oom.error and oom.output is None


def test_measure_reports_other_failures_as_errors():
    def broken(config):
        raise ValueError("unsupported dtype for this op")

    failed = measure(Config(model="x"), builder=broken)
    assert failed.status == "error" and failed.error == "ValueError: unsupported dtype for this op"


def test_random_names_build_random_weights_and_everything_else_loads(tmp_path, monkeypatch):
    from vivitcli.benchmark.source import DEFAULT_MODEL, random_names, resolve

    vivit, videomae = resolve("random-vivit-b"), resolve("random-videomae-b")
    assert (vivit["model_type"], vivit["num_frames"], vivit["image_size"]) == ("vivit", 32, 224)
    assert (videomae["model_type"], videomae["num_frames"]) == ("videomae", 16)
    assert DEFAULT_MODEL in random_names() and all(n.startswith("random-") for n in random_names())
    # Hub ids and aliases mean the real checkpoint (videomae-base is MCG-NJU's pre-training checkpoint, never
    # a random model); the old preset names are no longer random models; a directory is a checkpoint.
    for name in ("google/vivit-b-16x2-kinetics400", "vivit", "videomae-base", "vivit-base", "preset:vivit"):
        assert resolve(name) is None, name
    (tmp_path / "random-vivit-b").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve("random-vivit-b") is None


def test_noisy_rows_are_flagged():
    # eager 15.0 vs sdpa 10.5 ms/clip (difference 4.5); eager's steps spread 12 ms/clip: within the noise.
    noisy = Row(model="m", mode="inference", device="cpu", dtype="float32", batch_size=2, num_batches=3,
                warmup=1, eager=_ok([30.0, 24.0, 48.0], 300, None), sdpa=_ok([20.0, 22.0, 21.0], 200, None))
    assert noisy.spread_ms(noisy.eager) == pytest.approx(12.0) and noisy.spread_ms(noisy.sdpa) == pytest.approx(1.0)
    assert noisy.noisy is True and noisy.to_dict()["noisy"] is True
    clear = Row(model="m", mode="inference", device="cpu", dtype="float32", batch_size=2, num_batches=3,
                warmup=1, eager=_ok([30.0, 31.0, 30.5], 300, None), sdpa=_ok([20.0, 22.0, 21.0], 200, None))
    assert clear.noisy is False
    one_step = Row(model="m", mode="inference", device="cpu", dtype="float32", batch_size=1, num_batches=1,
                   warmup=1, eager=_ok([30.0], 300, None), sdpa=_ok([20.0], 200, None))
    assert one_step.noisy is None and one_step.to_dict()["eager_spread_ms"] is None
    table = report.to_table([noisy, clear], ENV)
    lines = [line for line in table.splitlines() if line.startswith("|") and "float32" in line]
    assert "*" in lines[0].split("|")[8] and "*" not in lines[1].split("|")[8]
    assert "noisy" in table


def test_progress_counts_what_remains():
    seen = []
    run_benchmark(["a", "b"], device="cpu", batch_sizes=[1, 2], dtypes=["float32"], modes=["inference"],
                  steps=1, warmup=0, measure=lambda c: _ok([1.0], 1, [[0.0]]),
                  on_progress=lambda config, done, total: seen.append((config.model, config.attn, done, total)))
    assert [s[2] for s in seen] == list(range(8)) and {s[3] for s in seen} == {8}
    assert seen[0][:2] == ("a", "eager") and seen[-1][:2] == ("b", "sdpa")
