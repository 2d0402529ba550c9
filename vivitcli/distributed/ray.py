"""Batch jobs on a Ray cluster: decode in CPU tasks, run the model in actors (which may hold GPUs).

    import ray, vivitcli
    from vivitcli.distributed.ray import ClipPredictor, decode_batch

    job = vivitcli.ClassifyJob(paths, "demo")                     # the same job a local run builds
    ds = (ray.data.from_items([{"index": i, "path": p} for i, p in enumerate(job.paths)])
          .map_batches(decode_batch, fn_kwargs={"reader": job.reader()}, batch_size=8)
          .map_batches(ClipPredictor, fn_constructor_args=(job.spec(),), batch_size=8,
                       compute=ray.data.ActorPoolStrategy(size=1), num_gpus=0))
    ds.write_parquet("labels/")                                   # one row per file, vivitcli's schema

Decoding, sampling and preprocessing are `job.reader()` (the local run's ClipReader); the actor computes with
`job.run_decoded` (the local run's batching, averaging and records). Rows are `{index, path}` or
`{index, path, bytes}` (the video's bytes, e.g. from ray.data.read_binary_files); a file that fails is a row with
`error` set, so one bad file never fails the job. `run_on_ray` is what `vivit classify|embed --ray` runs: it
yields records in input order, so a Ray run writes the same outputs as a local one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterator

from vivitcli.errors import UsageError

DECODE_MEMORY = 256 * 2**20  # bytes a decode task reserves: a batch of decoded clips plus decoder state
EMPTY_SHAPE = (0, 0, 0, 0, 0)  # the clip of a row that failed to decode (ragged tensor columns need ndim 5)


def require_ray():
    """The ray module, or the one-line error saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - the part vivitcli uses
    except ImportError:
        raise UsageError("--ray needs Ray", "pip install 'vivitcli[ray]'") from None
    return ray


@dataclass
class JobSpec:
    """What an actor needs to rebuild a job without its inputs: the task, the model name and the options."""

    task: str
    model: str
    options: dict = field(default_factory=dict)

    def build(self):
        from vivitcli.tasks import ClassifyJob, EmbedJob

        cls = {"classify": ClassifyJob, "embed": EmbedJob}.get(self.task)
        if cls is None:
            raise UsageError(f"--ray runs classify and embed jobs, not {self.task!r}")
        return cls(None, self.model, **self.options)


def _open_local(row: dict, scratch: str) -> str:
    """A local path holding the row's video: the path itself, or its bytes written to a scratch file."""
    data = row.get("bytes")
    if data is None:
        path = str(row.get("source") or row["path"])
        if "://" in path and not path.startswith("file://"):
            from pyarrow import fs

            filesystem, inner = fs.FileSystem.from_uri(path)
            with filesystem.open_input_stream(inner) as f:
                data = f.read()
        else:
            return path[len("file://"):] if path.startswith("file://") else path
    suffix = os.path.splitext(str(row["path"]))[1][:16]
    handle, local = tempfile.mkstemp(suffix=suffix, dir=scratch)
    with os.fdopen(handle, "wb") as f:
        f.write(bytes(data))
    return local


def decode_batch(batch: dict, reader) -> dict:
    """A Ray Data batch function (CPU tasks): rows {index, path[, source][, bytes]} ->
    {index, path, clip, info, error}, decoded by `reader` (a job's ClipReader); `info` is JSON, `error` is ""
    when the file decoded."""
    import shutil

    scratch = tempfile.mkdtemp(prefix="vivit-ray-")
    try:
        return _decode_rows(batch, reader, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _decode_rows(batch: dict, reader, scratch: str) -> dict:
    import numpy as np

    from vivitcli.pipeline import describe_error

    rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
    clips, infos, errors = [], [], []
    for row in rows:
        local = None
        try:
            local = _open_local(row, scratch)
            clip, info = reader(local)
            clip = np.ascontiguousarray(clip.numpy() if hasattr(clip, "numpy") else clip)
            clips.append(clip[None] if clip.ndim == 4 else clip)  # one view: (1, T, C, H, W), like K views
            infos.append(json.dumps({"indices": np.asarray(info.indices).tolist(),
                                     "timestamps": np.asarray(info.timestamps).tolist(),
                                     "approximate": bool(info.approximate)}))
            errors.append("")  # strings only: Ray turns an all-None object column into NaN floats
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # noqa: BLE001 - a bad file is that row's error, never the job's
            clips.append(np.zeros(EMPTY_SHAPE, dtype=np.float32))
            infos.append("")
            errors.append(describe_error(err))
        finally:
            if local is not None and local.startswith(scratch):
                os.unlink(local)
    return {"index": np.asarray(batch["index"], dtype=np.int64),
            "path": np.asarray([str(p) for p in batch["path"]], dtype=object),
            "clip": _ragged(clips), "info": np.asarray(infos, dtype=object),
            "error": np.asarray(errors, dtype=object)}


def _ragged(arrays: list):
    """A column of clips that may differ in shape (an object array of arrays: Ray stores it as a tensor)."""
    import numpy as np

    column = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        column[i] = a
    return column


@dataclass
class _Info:
    indices: Any
    timestamps: Any
    approximate: bool


class ClipPredictor:
    """A Ray Data actor class: decoded rows -> one result row per file, in vivitcli's record schema.

    The model loads once per actor (on the GPU when Ray gave the actor one). Clips of several files share a
    batch exactly as in a local run.
    """

    def __init__(self, spec: JobSpec, threads: int | None = None):
        import torch

        # Ray pins a worker to OMP_NUM_THREADS = its num_cpus (1): a CPU actor would run the model on one
        # core while the local pipeline uses them all. `threads` gives it back the cores it is meant to use.
        if threads:
            torch.set_num_threads(threads)
        self.spec = spec
        self.job = spec.build()
        self.job.load()

    def __call__(self, batch: dict):
        import numpy as np
        import torch

        from vivitcli.errors import VideoError
        from vivitcli.output.parquet import records_table

        keys = [int(i) for i in batch["index"]]
        decoded = {}
        for key, path, clip, info, error in zip(keys, batch["path"], batch["clip"], batch["info"], batch["error"]):
            decoded[key] = (str(path), clip, info, error)

        def read(key):
            path, clip, info, error = decoded[key]
            if error:
                raise VideoError(path, str(error))
            meta = json.loads(info)
            views = torch.from_numpy(np.asarray(clip, dtype=np.float32))
            return views, _Info(np.asarray(meta["indices"]), np.asarray(meta["timestamps"]), meta["approximate"])

        records = []
        for key, rec in zip(keys, self.job.run_decoded(keys, read)):
            rec.path = decoded[key][0]
            if rec.error is not None and rec.error.startswith(f"{rec.path}: "):
                rec.error = rec.error[len(rec.path) + 2:]
            records.append(rec.to_dict())
        table = records_table(records, kind=self.job.task, dim=getattr(self.job, "dim", None))
        import pyarrow as pa

        return table.add_column(0, "index", pa.array(keys, type=pa.int64()))


def record_from_row(row: dict) -> dict:
    """A result row (as Ray hands it back) -> the record dict the output sinks write."""
    import numpy as np

    row = dict(row)
    row.pop("index", None)
    if row.get("heads") is not None:
        row["heads"] = dict(row["heads"])
    if row.get("embedding") is not None:
        row["embedding"] = np.asarray(row["embedding"], dtype=np.float32)
    return row


def quiet_ray_logs() -> None:
    """Keep Ray Data's progress bars and INFO lines off stderr: the CLI shows its own progress there."""
    import logging

    ray = require_ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def connect(address: str | None, *, num_cpus: int | None = None) -> bool:
    """ray.init for `--ray local|auto|ADDRESS`: "local" starts a private instance, "auto" joins the running
    cluster (or starts one), anything else is a cluster address (ray://host:10001 or host:6379). Returns
    whether this call started Ray (then the caller shuts it down); an initialised Ray is used as it is."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address in (None, "", "local"):
            ray.init(num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        text = " ".join(str(err).split())[:160]
        raise UsageError(f"--ray {address}: cannot connect ({text})",
                         "start the cluster (ray start --head), or use --ray local") from None
    return True


@contextlib.contextmanager
def session(address: str | None):
    """Ray for the duration of a block (see connect); stopped at the end only if this block started it."""
    quiet_ray_logs()
    started = connect(address)
    try:
        yield require_ray()
    finally:
        if started:
            require_ray().shutdown()


def build_dataset(job, paths: list[str], *, concurrency: int = 1, decoders: int | None = None,
                  gpus_per_worker: float = 0.0, batch_size: int | None = None):
    """The Ray Data pipeline for `paths`: from_items -> ClipDecoder (CPU tasks) -> ClipPredictor (actors)."""
    ray = require_ray()
    batch = batch_size or job.batch_size
    # Workers may run elsewhere (another cwd, another node sharing the filesystem): open absolute paths,
    # report the paths as given.
    items = [{"index": i, "path": p, "source": p if "://" in p else os.path.abspath(p)} for i, p in enumerate(paths)]
    # Small blocks so decoding spreads over the workers instead of one task taking every file.
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 64)))
    # Decoding: stateless CPU tasks. The model: a pool of actors, each loading it once. The decoders' memory
    # reservation also keeps Ray from fusing the two stages into the actors, which would serialise decoding
    # with the model again.
    ds = ds.map_batches(decode_batch, fn_kwargs={"reader": job.reader()}, batch_size=batch, batch_format="numpy",
                        compute=ray.data.TaskPoolStrategy(size=decoders or max(1, (os.cpu_count() or 2) // 2)),
                        num_cpus=1, memory=DECODE_MEMORY)
    # CPU actors share the machine's cores between them (decode tasks mostly wait on I/O and FFmpeg threads).
    threads = None if gpus_per_worker else max(1, (os.cpu_count() or 1) // concurrency)
    return ds.map_batches(ClipPredictor, fn_constructor_args=(job.spec(), threads), batch_size=batch,
                          batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=concurrency),
                          num_gpus=gpus_per_worker or None, num_cpus=0 if gpus_per_worker else 1)


def run_on_ray(job, paths: list[str], **kwargs) -> Iterator[dict]:
    """Record dicts for `paths` computed on Ray, yielded in input order as they become available."""
    ds = build_dataset(job, paths, **kwargs)
    pending: dict[int, dict] = {}
    next_index = 0
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for row in batch.to_pylist():
            pending[int(row["index"])] = record_from_row(row)
        while next_index in pending:
            yield pending.pop(next_index)
            next_index += 1
    if pending or next_index != len(paths):  # pragma: no cover - Ray lost rows: never write a partial output
        raise RuntimeError(f"Ray returned {next_index + len(pending)} of {len(paths)} results")


def write_dataset(job, paths: list[str], folder: str, **kwargs) -> list[tuple[str, str]]:
    """Write the results for `paths` as a Parquet dataset (part files in `folder`, rows sorted by input
    index, vivitcli's record schema plus `index`), without collecting them on the driver. Returns the
    (path, error) pairs of the inputs that failed."""
    import pyarrow.parquet as pq

    if os.path.isdir(folder) and os.listdir(folder):
        raise UsageError(f"{folder}: the folder is not empty",
                         "a Parquet dataset goes into a new or empty folder (part files of two runs would mix)")
    build_dataset(job, paths, **kwargs).sort("index").write_parquet(folder)
    table = pq.read_table(folder, columns=["index", "path", "error"]).sort_by("index")
    return [(row["path"], row["error"]) for row in table.to_pylist() if row["error"] is not None]
