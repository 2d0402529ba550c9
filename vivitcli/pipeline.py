"""The whole chain for many files: decode ahead in threads, batch clips across files, compute, reassemble.

    paths ─ decode threads (read_clip: probe, sample, decode, preprocess; N files ahead) ─┐
          ┌───────────────────────────────────────────────────────────────────────────┘
          └─> clips queue ─ batches of `batch_size` clips of one shape, across file boundaries ─> compute (B, X)
              ─> per-file average over its views ─> results in input order

Decoding and preprocessing run in daemon threads (PyAV and torch release the GIL), so the next files are being
decoded while the model computes on the current batch. A file that fails to decode becomes a result with its
error and the run goes on; so does every file of a batch that the model fails on (an error in compute is
those files' error, never the run's). Only clips of the same shape share a batch: a checkpoint whose
preprocessor keeps the aspect ratio gives clips of different sizes. Results come out in input order, each as
soon as every earlier file is done.

The pipeline knows nothing about models or formats: it takes `read(path) -> (clip, info)` and
`compute(batch) -> (B, X)` callables, so it can be tested with fakes.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from vivitcli.errors import VideoError, VivitError, printable


@dataclass
class FileResult:
    """The outcome for one input: `output` (X,) averaged over its `views` clips, or `error`."""

    index: int
    path: str
    output: Any = None  # numpy float32 (X,)
    info: Any = None  # what read() returned next to the clip (frame indices, timestamps, approximate)
    views: int = 0
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)


def describe_error(err: BaseException) -> str:
    """One line for a record's `error` field: the reason without the path (the record names the file)."""
    if isinstance(err, VideoError):
        return f"{err.reason} ({err.hint})" if err.hint else err.reason
    if isinstance(err, VivitError):
        return str(err)
    if isinstance(err, FileNotFoundError):
        return "no such file"
    if isinstance(err, IsADirectoryError):
        return "is a folder"
    if isinstance(err, PermissionError):
        return "permission denied"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


class _Prefetcher:
    """Run `fn` over `items` in `workers` daemon threads, at most `ahead` items past the consumer.

    Daemon threads (not concurrent.futures) so that Ctrl-C never waits for a long decode to finish.
    """

    def __init__(self, fn: Callable, items: Sequence, workers: int, ahead: int):
        self._fn, self._items = fn, items
        self._ahead = max(1, ahead)
        self._cond = threading.Condition()
        self._results: dict[int, tuple[bool, Any]] = {}
        self._next = 0
        self._consumed = 0
        self._stop = False
        self._threads = [threading.Thread(target=self._work, name=f"vivit-decode-{i}", daemon=True)
                         for i in range(max(1, min(workers, len(items))))]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._stop and self._next < len(self._items) and self._next - self._consumed >= self._ahead:
                    self._cond.wait()
                if self._stop or self._next >= len(self._items):
                    return
                i = self._next
                self._next += 1
            try:
                value = (True, self._fn(self._items[i]))
            except BaseException as err:  # noqa: BLE001 - handed to the consumer, which decides
                value = (False, err)
            with self._cond:
                self._results[i] = value
                self._cond.notify_all()

    def get(self, i: int) -> tuple[bool, Any]:
        with self._cond:
            while i not in self._results:
                # A timeout keeps the main thread responsive to Ctrl-C while it waits.
                self._cond.wait(0.25)
            value = self._results.pop(i)
            self._consumed = i + 1
            self._cond.notify_all()
            return value

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._results.clear()
            self._cond.notify_all()


def check_input_file(path: str) -> None:
    """VideoError for a path that is missing or a folder: the reason a record reports, before decoding."""
    if not os.path.exists(path):
        if os.path.islink(path):
            return  # a broken link or a symlink loop: the reader's check_file says which
        raise VideoError(printable(path), "no such file")
    if os.path.isdir(path):
        raise VideoError(printable(path), "is a folder with no video files in it")


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


class Pipeline:
    """Batch clips across files and run `compute` on them.

    read(path) -> (clip, info): clip float (T, C, H, W) for one view or (K, T, C, H, W) for K views.
    compute(batch) -> (B, X): called with a float (B, T, C, H, W) CPU tensor under torch.inference_mode();
        moves it to the model's device/dtype itself.
    """

    def __init__(self, read: Callable, compute: Callable, *, batch_size: int = 4, workers: int | None = None,
                 prefetch: int | None = None):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.read, self.compute = read, compute
        self.batch_size = batch_size
        self.workers = workers or default_workers()
        # Enough decoded files to fill the next batch while the current one computes.
        self.prefetch = prefetch or (batch_size + self.workers)
        self.clips_done = 0

    def run(self, paths: Sequence[str]) -> Iterator[FileResult]:
        import torch

        paths = list(paths)
        prefetcher = _Prefetcher(self.read, paths, self.workers, self.prefetch)
        # Views waiting for a batch, one queue per clip shape: [(file index, view (T, C, H, W)), ...]
        pending: dict[tuple, list[tuple[int, Any]]] = {}
        partial: dict[int, FileResult] = {}  # files with views still to compute
        sums: dict[int, Any] = {}
        left: dict[int, int] = {}
        ready: dict[int, FileResult] = {}
        next_out = 0

        def fail(i: int, err: BaseException) -> None:
            """A compute error: file i gets it as its error; its other views are dropped when they come up."""
            res = partial.pop(i, None)
            if res is None:
                return
            res.output, res.error, res.exception = None, describe_error(err), err
            sums.pop(i, None)
            left.pop(i, None)
            ready[i] = res

        def run_batch(items: list[tuple[int, Any]]) -> None:
            items = [(i, v) for i, v in items if i in partial]  # files that already failed are skipped
            if not items:
                return
            try:
                batch = torch.stack([view for _, view in items])
                with torch.inference_mode():
                    out = self.compute(batch)
                out = out.detach().float().cpu()
                if out.ndim != 2 or out.shape[0] != len(items):
                    raise RuntimeError(f"compute returned shape {tuple(out.shape)} for a batch of {len(items)}")
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as err:  # noqa: BLE001 - MemoryError too: those files fail, the run goes on
                for i in dict.fromkeys(i for i, _ in items):
                    fail(i, err)
                return
            self.clips_done += len(items)
            for (i, _), row in zip(items, out):
                sums[i] = row if i not in sums else sums[i] + row
                left[i] -= 1
                if left[i] == 0:
                    res = partial.pop(i)
                    res.output = (sums.pop(i) / res.views).numpy()
                    del left[i]
                    ready[i] = res

        def flush_full(current: int) -> None:
            for shape in list(pending):
                queue = pending[shape]
                while len(queue) >= self.batch_size:
                    run_batch(queue[: self.batch_size])
                    del queue[: self.batch_size]
                # A shape that rarely occurs must not hold back output order (and memory) for long.
                if queue and current - queue[0][0] >= self.prefetch:
                    run_batch(queue)
                    queue.clear()
                if not queue:
                    del pending[shape]

        try:
            for i, path in enumerate(paths):
                ok, value = prefetcher.get(i)
                if not ok:
                    if isinstance(value, (KeyboardInterrupt, SystemExit)):
                        raise value
                    ready[i] = FileResult(i, path, error=describe_error(value), exception=value)
                else:
                    clip, info = value
                    views = clip.unsqueeze(0) if clip.ndim == 4 else clip
                    if views.ndim != 5 or views.shape[0] == 0:
                        ready[i] = FileResult(i, path, error=f"unexpected clip shape {tuple(clip.shape)}")
                    else:
                        partial[i] = FileResult(i, path, info=info, views=int(views.shape[0]))
                        left[i] = int(views.shape[0])
                        pending.setdefault(tuple(views.shape[1:]), []).extend((i, v) for v in views)
                flush_full(i)
                while next_out in ready:
                    yield ready.pop(next_out)
                    next_out += 1
            for shape in list(pending):
                run_batch(pending.pop(shape))
            while next_out in ready:
                yield ready.pop(next_out)
                next_out += 1
        finally:
            prefetcher.close()
