"""Turn command-line arguments into the ordered list of video paths a run works through.

Arguments are files, folders (walked recursively for video extensions) and `-` (paths read from stdin, one per
line). The order is deterministic: arguments in the order given, each folder's files sorted by their path
relative to that folder. A path that appears twice is kept once, at its first position.

Stdlib only: the CLI imports this before torch is loaded.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Iterable

from vivitcli.errors import UsageError

# Containers FFmpeg opens routinely; gif/image formats are left out on purpose (not what people mean by video).
DEFAULT_EXTENSIONS = (
    "3gp", "avi", "flv", "m2ts", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "mts", "ogv", "ts", "webm", "wmv",
)  # fmt: skip


def parse_extensions(values: Iterable[str] | None) -> tuple[str, ...]:
    """`["mp4,webm", ".MKV"]` -> `("mkv", "mp4", "webm")`; None or empty -> the default set."""
    exts: set[str] = set()
    for value in values or ():
        for part in value.split(","):
            part = part.strip().lower().lstrip(".")
            if part:
                exts.add(part)
    if values and not exts:
        raise UsageError("--ext got no extensions", "give a comma-separated list such as mp4,webm")
    return tuple(sorted(exts)) if exts else DEFAULT_EXTENSIONS


def _has_extension(name: str, exts: frozenset[str]) -> bool:
    _, dot, ext = name.rpartition(".")
    return bool(dot) and ext.lower() in exts


def walk_folder(folder: str, exts: Iterable[str]) -> list[str]:
    """Video files under `folder`, recursively, sorted by relative path. Hidden files and folders are skipped."""
    wanted = frozenset(exts)
    found: list[tuple[tuple[str, ...], str]] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(root, folder)
        rel_parts = () if rel == os.curdir else tuple(rel.split(os.sep))
        for name in files:
            if not name.startswith(".") and _has_extension(name, wanted):
                # Sorting on path components keeps a folder's files together ("a/b" before "a-c").
                found.append((rel_parts + (name,), os.path.join(root, name)))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def read_path_list(stream: IO[str], null_separated: bool = False) -> list[str]:
    """One path per line (or per NUL with `null_separated`, as `find -print0` writes them); blank entries
    skipped; only the line ending is stripped (names may hold spaces)."""
    if null_separated:
        return [name for name in stream.read().split("\0") if name.strip()]
    return [line.rstrip("\r\n") for line in stream if line.strip()]


def collect_paths(args: Iterable[str], exts: Iterable[str] = DEFAULT_EXTENSIONS, stdin: IO[str] | None = None,
                  null_separated: bool = False) -> list[str]:
    """Expand files, folders and `-` into an ordered, duplicate-free list of paths.

    Files named explicitly are kept whatever their extension, and kept even when missing: the run reports
    each missing one as a failed input instead of refusing to start. A folder with no video in it is a
    usage error on the command line; named on stdin it is kept as an input that fails with that reason, so
    the rest of the list still runs. An empty result is a usage error.
    """
    exts = tuple(exts)
    out: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = os.path.normpath(path)
        if key not in seen:
            seen.add(key)
            out.append(path)

    def expand(arg: str, from_stdin: bool) -> None:
        if os.path.isdir(arg):
            found = walk_folder(arg, exts)
            if not found:
                if from_stdin:
                    add(arg)  # the run reports it as a failed input
                    return
                raise UsageError(
                    f"{arg}: no video files in this folder", f"looked for .{', .'.join(exts)}; change the set with --ext"
                )
            for path in found:
                add(path)
        else:
            add(arg)

    stdin_used = False
    for arg in args:
        if arg == "-":
            if stdin_used:
                continue
            stdin_used = True
            for line in read_path_list(stdin if stdin is not None else sys.stdin, null_separated):
                expand(line, from_stdin=True)
        else:
            expand(arg, from_stdin=False)
    if not out:
        raise UsageError("no input videos", "pass files, folders, or - to read paths from stdin")
    return out
