"""Atomic checkpoint output: everything is written into a temporary sibling folder, checked, then renamed.

A failed convert leaves neither the temporary folder nor a half-written DST behind, and an existing DST is
only replaced (with --force) once its successor is complete. A convert killed outright (SIGKILL, power loss)
cannot clean up: its staging folder `.DST.<pid>.<random>.partial` is removed by the next convert to the same
DST once that pid is gone. What is written gets the user's umask, like any file they create (mkdtemp would
leave the folder 0700).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
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
        clean_stale_staging(dst)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.{os.getpid()}.", suffix=".partial", dir=parent))
        os.chmod(tmp, 0o777 & ~umask())
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


# Staging folders of earlier versions carry no pid: stale once nothing has touched them for this long.
_UNOWNED_STALE_S = 600


def clean_stale_staging(dst: Path) -> list[Path]:
    """Remove `.DST.<pid>.*.partial` folders next to DST whose process is gone (and pid-less ones untouched for
    10 minutes); returns what was removed. Folders of a convert still running are left alone."""
    removed = []
    # mkdtemp's random part is 8 characters of [a-z0-9_]; earlier versions wrote no pid.
    pattern = re.compile(re.escape(f".{dst.name}.") + r"(?:(\d+)\.)?[a-z0-9_]{8}\.partial")
    try:
        entries = list(dst.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None or entry.is_symlink() or not entry.is_dir():
            continue
        pid = int(m.group(1)) if m.group(1) else None
        if pid is not None and (pid == os.getpid() or _alive(pid)):
            continue
        if pid is None:
            try:
                if time.time() - entry.stat().st_mtime < _UNOWNED_STALE_S:
                    continue
            except OSError:
                continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:      # EPERM: someone else's live process
        return True
    return True


def umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    os.chmod(path, 0o666 & ~umask())


def write_safetensors(path: Path, state: dict) -> None:
    """Contiguous, unshared copies (fused-qkv splits are views of one tensor), keys sorted, format=pt."""
    from safetensors.torch import save_file

    tensors = {k: state[k].detach().contiguous().clone() for k in sorted(state)}
    save_file(tensors, str(path), metadata={"format": "pt"})
    os.chmod(path, 0o666 & ~umask())
