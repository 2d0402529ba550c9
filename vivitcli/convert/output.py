"""Atomic checkpoint output: everything is written into a temporary sibling folder, checked, then renamed.

A failed or interrupted convert leaves neither the temporary folder nor a half-written DST behind, and an
existing DST is only replaced (with --force) once its successor is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from vivitcli.errors import ConvertError


def check_destination(dst: Path, src: Path, force: bool) -> None:
    """Fail early, before any work, when DST cannot or must not be written."""
    if dst.exists() or dst.is_symlink():
        if not force:
            raise ConvertError(f"{dst}: already exists", hint="pass --force to replace it")
        if dst.resolve() == src.resolve():
            raise ConvertError(f"{dst}: is the source itself; write to a new directory")
    try:
        src_resolved, dst_resolved = src.resolve(), dst.resolve()
    except OSError:
        return
    if src.is_dir() and src_resolved in dst_resolved.parents:
        raise ConvertError(f"{dst}: is inside the source directory {src}; write it somewhere else")


@contextmanager
def staging(dst: Path):
    """Yield a fresh temporary directory next to DST; remove it (and any parents we made) unless committed."""
    created = []
    parent = dst.parent
    missing = []
    p = parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=parent))
    except OSError as err:
        for d in reversed(created):
            _rmdir_quietly(d)
        raise ConvertError(f"{dst}: cannot create the output folder: {err.strerror or err}") from None
    box = {"committed": False}
    try:
        yield tmp, box
    finally:
        if not box["committed"]:
            shutil.rmtree(tmp, ignore_errors=True)
            for d in reversed(created):
                _rmdir_quietly(d)


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def commit(tmp: Path, dst: Path, box: dict) -> None:
    """Move the finished temporary folder to DST, replacing an existing DST only after the new one is ready."""
    backup = None
    if dst.exists() or dst.is_symlink():
        backup = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
        backup.rmdir()
        os.replace(dst, backup)
    try:
        os.replace(tmp, dst)
    except OSError as err:
        if backup is not None:
            os.replace(backup, dst)
        raise ConvertError(f"{dst}: cannot move the converted checkpoint into place: {err.strerror or err}") from None
    box["committed"] = True
    if backup is not None:
        if backup.is_dir() and not backup.is_symlink():
            shutil.rmtree(backup, ignore_errors=True)
        else:
            backup.unlink(missing_ok=True)


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_safetensors(path: Path, state: dict) -> None:
    """Contiguous, unshared copies (fused-qkv splits are views of one tensor), keys sorted, format=pt."""
    from safetensors.torch import save_file

    tensors = {k: state[k].detach().contiguous().clone() for k in sorted(state)}
    save_file(tensors, str(path), metadata={"format": "pt"})
