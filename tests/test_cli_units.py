"""Unit tests for the CLI's building blocks without a model: inputs, the pipeline (fake read/compute).

The writers' tests moved to tests/test_output_*.py (vivitcli/output)."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest
import torch

from vivitcli.errors import UsageError, VideoError
from vivitcli.inputs import DEFAULT_EXTENSIONS, collect_paths, parse_extensions, walk_folder
from vivitcli.pipeline import Pipeline

# ------------------------------------------------------------------------------------------------- inputs


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return str(path)


def test_folder_walk_is_recursive_sorted_and_filtered(tmp_path):
    for rel in ["b.mp4", "a-c.mkv", "a/z.webm", "a/b/y.MOV", "notes.txt", ".hidden.mp4", ".git/x.mp4", "c.gif"]:
        _touch(tmp_path / rel)
    got = [os.path.relpath(p, tmp_path) for p in walk_folder(str(tmp_path), DEFAULT_EXTENSIONS)]
    # Path components sort: the folder "a" and its files come before "a-c.mkv"; case-insensitive extensions.
    assert got == ["a/b/y.MOV", "a/z.webm", "a-c.mkv", "b.mp4"]


def test_ext_flag_replaces_the_set(tmp_path):
    for rel in ["x.mp4", "y.gif", "z.webm"]:
        _touch(tmp_path / rel)
    assert parse_extensions(["gif,.WEBM"]) == ("gif", "webm")
    got = collect_paths([str(tmp_path)], parse_extensions(["gif", "webm"]))
    assert [os.path.basename(p) for p in got] == ["y.gif", "z.webm"]
    with pytest.raises(UsageError):
        parse_extensions([" , "])


def test_collect_keeps_argument_order_stdin_and_dedupes(tmp_path):
    f1 = _touch(tmp_path / "one.mp4")
    f2 = _touch(tmp_path / "dir" / "two.mp4")
    f3 = _touch(tmp_path / "dir" / "three.mp4")
    named = _touch(tmp_path / "named.anything")  # named explicitly: kept whatever its extension
    stdin = io.StringIO(f"{f2}\n\n{tmp_path / 'with space.mp4'}\r\n{f1}\n")
    same_as_f1 = os.path.join(str(tmp_path), ".", "one.mp4")
    got = collect_paths([named, "-", str(tmp_path / "dir"), same_as_f1], stdin=stdin)
    assert got == [named, f2, str(tmp_path / "with space.mp4"), f1, f3]


def test_missing_file_is_kept_for_the_run_to_report(tmp_path):
    assert collect_paths([str(tmp_path / "nope.mp4")]) == [str(tmp_path / "nope.mp4")]


def test_empty_folder_and_no_inputs_are_usage_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no video files"):
        collect_paths([str(tmp_path / "empty")])
    with pytest.raises(UsageError, match="no input"):
        collect_paths(["-"], stdin=io.StringIO("\n\n"))


# ----------------------------------------------------------------------------------------------- pipeline


class FakeModel:
    """compute(batch) -> (B, 2): [mean of the clip, batch size]; records every batch size it saw."""

    def __init__(self):
        self.batches = []

    def __call__(self, batch):
        self.batches.append(batch.shape[0])
        return torch.stack([batch.flatten(1).mean(1), torch.full((batch.shape[0],), float(batch.shape[0]))], 1)


def _reader(views_of: dict, fail: set = frozenset(), delay: dict | None = None):
    def read(path):
        if delay:
            time.sleep(delay.get(path, 0))
        if path in fail:
            raise VideoError(path, "cannot decode video")
        k, value = views_of[path]
        clip = torch.stack([torch.full((2, 3, 4, 4), value + v) for v in range(k)]) if k > 1 \
            else torch.full((2, 3, 4, 4), value)
        return clip, {"indices": [0, 1], "timestamps": [0.0, 0.04], "approximate": False}
    return read


def _files(tmp_path, n):
    return [_touch(tmp_path / f"v{i}.mp4") for i in range(n)]


def test_pipeline_batches_across_files_and_keeps_input_order(tmp_path):
    paths = _files(tmp_path, 7)
    # Later files decode faster than earlier ones: results must still come out in input order.
    delay = {p: 0.02 * (7 - i) for i, p in enumerate(paths)}
    views = {p: (1, float(i)) for i, p in enumerate(paths)}
    model = FakeModel()
    results = list(Pipeline(_reader(views, delay=delay), model, batch_size=3, workers=3).run(paths))
    assert [r.path for r in results] == paths
    assert model.batches == [3, 3, 1]  # clips from different files share a batch
    assert [float(r.output[0]) for r in results] == [float(i) for i in range(7)]
    assert all(r.error is None and r.views == 1 for r in results)


def test_pipeline_averages_views_and_splits_them_across_batches(tmp_path):
    paths = _files(tmp_path, 3)
    views = {paths[0]: (3, 10.0), paths[1]: (1, 5.0), paths[2]: (2, 0.0)}
    model = FakeModel()
    results = list(Pipeline(_reader(views), model, batch_size=2, workers=1).run(paths))
    assert model.batches == [2, 2, 2]
    assert [float(r.output[0]) for r in results] == [11.0, 5.0, 0.5]  # mean of 10,11,12 / 5 / mean of 0,1
    assert [r.views for r in results] == [3, 1, 2]


def test_pipeline_reports_failed_files_and_goes_on(tmp_path):
    paths = _files(tmp_path, 4)
    views = {p: (1, 1.0) for p in paths}
    results = list(Pipeline(_reader(views, fail={paths[0]}), FakeModel(), batch_size=2).run(paths))
    assert [r.path for r in results] == paths
    assert results[0].error == "cannot decode video" and isinstance(results[0].exception, VideoError)
    assert [r.error for r in results[1:]] == [None, None, None]


def test_the_job_reader_names_missing_files_and_folders(tmp_path):
    from vivitcli.tasks import ClipReader

    reader = ClipReader(preprocessor=None, num_frames=4, read_kw={})
    with pytest.raises(VideoError, match="no such file"):
        reader(str(tmp_path / "missing.mp4"))
    with pytest.raises(VideoError, match="is a folder"):
        reader(str(tmp_path))


def test_a_model_error_fails_only_that_batchs_files(tmp_path):
    paths = _files(tmp_path, 5)
    views = {p: (1, float(i)) for i, p in enumerate(paths)}
    calls = []

    def compute(batch):
        calls.append(batch.shape[0])
        if len(calls) == 2:  # the second batch (files 2 and 3) blows up inside the model
            raise MemoryError("out of memory in attention")
        return batch.reshape(batch.shape[0], -1)[:, :2].float()

    results = list(Pipeline(_reader(views), compute, batch_size=2, workers=1).run(paths))
    assert [r.path for r in results] == paths
    assert [r.error for r in results] == [None, None, "MemoryError: out of memory in attention",
                                          "MemoryError: out of memory in attention", None]
    assert float(results[4].output[0]) == 4.0


def test_clips_of_different_shapes_never_share_a_batch(tmp_path):
    paths = _files(tmp_path, 4)
    shapes = {paths[0]: (2, 8, 8), paths[1]: (2, 8, 12), paths[2]: (2, 8, 8), paths[3]: (2, 8, 12)}
    seen = []

    def read(path):
        return torch.zeros(shapes[path]).unsqueeze(1).expand(-1, 3, -1, -1), None

    def compute(batch):
        seen.append(tuple(batch.shape))
        return torch.zeros(batch.shape[0], 1)

    results = list(Pipeline(read, compute, batch_size=2, workers=1).run(paths))
    assert [r.error for r in results] == [None] * 4
    assert sorted(seen) == [(2, 2, 3, 8, 8), (2, 2, 3, 8, 12)]


def test_pipeline_decodes_next_files_while_the_model_computes(tmp_path):
    paths = _files(tmp_path, 4)
    started = {p: threading.Event() for p in paths}
    seen_during_compute = []

    def read(path):
        started[path].set()
        return torch.zeros(2, 3, 4, 4), None

    def compute(batch):
        # The first batch holds file 0 only; the reader of file 1 must already be running (or done).
        if not seen_during_compute:
            seen_during_compute.append(started[paths[1]].wait(timeout=5))
        return torch.zeros(batch.shape[0], 1)

    list(Pipeline(read, compute, batch_size=1, workers=2).run(paths))
    assert seen_during_compute == [True]


# ----------------------------------------------------------------------------------------------- progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_and_never_when_quiet():
    from vivitcli.commands.batch import Reporter

    term = _Terminal()
    rep = Reporter(2, quiet=False, stream=term)
    assert rep.progress is not None
    rep.advance(3)
    rep.log("error: a.mp4: empty file")
    rep.advance(1)
    rep.close()
    out = term.getvalue()
    assert "error: a.mp4: empty file" in out and "files" in out and "clips/s" in out
    for stream, quiet in ((_Terminal(), True), (io.StringIO(), False)):
        rep = Reporter(2, quiet=quiet, stream=stream)
        assert rep.progress is None
        rep.advance(1)
        rep.log("error: b.mp4: empty file")
        rep.close()
        assert stream.getvalue() == "error: b.mp4: empty file\n"


def test_eta_is_the_mean_time_per_file_times_the_files_left(monkeypatch):
    from vivitcli.commands import batch

    clock = iter([100.0, 110.0])  # start, then 10 s later
    monkeypatch.setattr(batch.time, "perf_counter", lambda: next(clock))
    rep = batch.Reporter(10, quiet=True)
    assert rep.eta_seconds() is None
    rep.done = 4  # four files finished together at the end of a batch
    assert rep.eta_seconds() == pytest.approx(10.0 / 4 * 6)


def test_summary_lines():
    from vivitcli.commands.batch import summary

    assert summary(8, 30, 0, interrupted=True, out="o.jsonl") == "vivit: 8/30 done; rerun with --resume to finish"
    assert summary(8, 30, 0, interrupted=True, out=None) == "vivit: 8/30 done"
    assert summary(30, 30, 2, interrupted=False, out=None) == "vivit: 28/30 done, 2 failed"
    assert summary(30, 30, 0, interrupted=False, out="o.jsonl") is None
