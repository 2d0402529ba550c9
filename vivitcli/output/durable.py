"""Writing output files so that no run destroys what it was not asked to write.

- `atomic_write`: temp file next to the target + fsync + rename. A symlink is written through (its target is
  replaced, the link stays); a replaced file keeps its permission bits; a new one gets the umask's.
- `signals_deferred`: Ctrl-C / SIGTERM wait until a record or a final file is written whole.
- `OutputLock`: an exclusive `fcntl.flock` on `OUT.lock` (next to the written file) for the run's duration; a
  second run on the same output fails at once. The lock file is removed at the end (while still locked, and a
  locker re-checks the inode it locked, so removal cannot let two runs in).
- `check_output`: every refusal that must come before any work (see its docstring).
- OS errors become one-line `OutputError`s (`os_error`).

Stdlib only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import stat
import threading

from vivitcli.errors import UsageError, VivitError


class OutputError(VivitError):
    """An output file that cannot be written or resumed (exit 1)."""


# ------------------------------------------------------------------------------------------------ signals


@contextlib.contextmanager
def signals_deferred():
    """Delay SIGINT and SIGTERM until the block is done, then deliver them to the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
        except (ValueError, OSError):  # pragma: no cover - embedded interpreters without signal support
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


# ------------------------------------------------------------------------------------------------ errors

_REASONS = {errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device",
            errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large",
            errno.ENAMETOOLONG: "file name too long", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted", errno.ELOOP: "symlink loop", errno.EISDIR: "is a folder"}


def os_error(path: str, err: OSError, doing: str = "write") -> OutputError:
    """One line for an OSError on an output file, with what to do next."""
    reason = _REASONS.get(err.errno, err.strerror or str(err))
    hint = None
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = "free some space; files already written are intact, rerun with --resume to finish"
    elif err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "choose an --out in a folder you can write"
    return OutputError(f"{path}: cannot {doing} ({reason})", hint)


# ------------------------------------------------------------------------------------------------ atomic files


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def resolve(path: str) -> str:
    """The file a write to `path` should replace: a symlink's final target (written through), else `path`."""
    if os.path.islink(path):
        try:
            return os.path.realpath(path, strict=False)
        except OSError as err:  # pragma: no cover - realpath(strict=False) raises only on odd platforms
            raise os_error(path, err, "resolve") from None
    return path


def tmp_name(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.{os.getpid()}.tmp")


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str, write, *, mode: int | None = None) -> None:
    """Call `write(binary_file)` on a temporary file next to `path`, fsync it, then rename it over `path`.

    Permissions: those of the file being replaced; else `mode` when given (e.g. the output's mode for its
    sidecar); else 0666 minus the umask. OSErrors become one-line OutputErrors; the old file stays as it was.
    """
    real = resolve(path)
    try:
        keep = stat.S_IMODE(os.stat(real).st_mode)
    except FileNotFoundError:
        keep = mode
    except OSError as err:
        raise os_error(path, err) from None
    tmp = tmp_name(real)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        with open(fd, "wb") as f:
            if keep is not None:
                os.fchmod(f.fileno(), keep)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise os_error(path, err) from None
        raise
    _fsync_dir(os.path.dirname(real))


def file_mode(path: str) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


# ------------------------------------------------------------------------------------------------ lock


class OutputLock:
    """Exclusive flock on `path` (a lock file next to the output) held until `release()`."""

    def __init__(self, path: str, out: str):
        self.path = path
        self.fd: int | None = None
        for _ in range(20):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
            except OSError as err:
                raise os_error(path, err, "create its lock file") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                who = f" (pid {pid})" if pid else ""
                raise OutputError(f"{out}: another vivit run is writing it{who}",
                                  "wait for it to finish, or choose another --out") from None
            # The holder before us may have removed the file after we opened it: lock the file that is there.
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                with contextlib.suppress(OSError):  # the pid only names the holder; a full disk may refuse it
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                return
            os.close(fd)
        raise OutputError(f"{out}: could not lock {path}", "another process keeps replacing it")

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # removed while still locked; see the class docstring
            os.close(self.fd)
            self.fd = None

    def __del__(self):  # a lock must not outlive an abandoned run object
        with contextlib.suppress(Exception):
            self.release()


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        return str(int(os.pread(fd, 32, 0).decode().strip()))
    return ""


# ------------------------------------------------------------------------------------------------ path checks

# Names written next to OUT: its sidecar, journal and lock, and the temp files of atomic writes.
SIDECAR_SUFFIX, JOURNAL_SUFFIX, LOCK_SUFFIX = ".json", ".partial", ".lock"
_LONGEST_EXTRA = len(".") + len(JOURNAL_SUFFIX) + len(".") + 7 + len(".tmp")  # .OUT.partial.<pid>.tmp


def sidecar_path(path: str) -> str:
    """`feats.npy` -> `feats.npy.json`: the sidecar written next to every output file."""
    return path + SIDECAR_SUFFIX


def journal_path(path: str) -> str:
    """`feats.npy` -> `feats.npy.partial`: records of a run in progress (final-file formats)."""
    return path + JOURNAL_SUFFIX


def lock_path(path: str) -> str:
    return path + LOCK_SUFFIX


def _describe(mode: int) -> str | None:
    """What a non-regular file is, for the refusal; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                       (stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _stat(path: str, out: str):
    """os.stat or None when missing; other errors are one line."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise os_error(out, err, "use it as --out") from None


def check_path(out: str, inputs=()) -> tuple[str, list[str]]:
    """Refusals for an --out path, before any work. Returns (file to write, which of its files exist).

    Refused: a name too long for the folder (with the names written next to it), a missing folder, a symlink
    loop, anything but a regular file or a missing one (folder, device, FIFO, socket, `>(cat)`), an output
    file or companion that is one of `inputs` (same file, also through links), a folder that cannot be written
    (read-only file system, permissions), an existing read-only output.
    """
    if os.path.islink(out):
        try:
            os.stat(out)
        except FileNotFoundError:
            pass  # a dangling link: written through, it creates its target
        except OSError as err:
            raise os_error(out, err, "use it as --out") from None
    st = _stat(out, out)  # through the link, as a write would go: `>(cat)` names a pipe, not a file
    if st is not None and _describe(st.st_mode) is not None:
        raise UsageError(f"--out {out}: it is {_describe(st.st_mode)}, not a regular file",
                         "give the name of a file to write")
    path = resolve(out)
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    if not name:
        raise UsageError(f"--out {out}: names a folder", "give a file name")
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(name)) + _LONGEST_EXTRA > name_max:
        raise UsageError(f"--out {out}: file name too long ({len(os.fsencode(name))} bytes; at most "
                         f"{name_max - _LONGEST_EXTRA} here, since {name}{JOURNAL_SUFFIX} and temp files go "
                         "next to it)", "choose a shorter name")
    if not os.path.isdir(folder):
        raise UsageError(f"--out {out}: folder {folder} does not exist", "create it first")
    companions = [path, sidecar_path(path), journal_path(path), lock_path(path)]
    existing = []
    stats = {}
    for p in companions:
        st = _stat(p, out)
        if st is None:
            continue
        what = _describe(st.st_mode)
        if what is not None:
            raise UsageError(f"--out {out}: {p if p != path else 'it'} is {what}, not a regular file",
                             "give the name of a file to write")
        stats[(st.st_dev, st.st_ino)] = p
        if p != lock_path(path):
            existing.append(p)
    names = {os.path.abspath(p) for p in companions}
    for item in inputs:
        item = os.fspath(item)
        hit = os.path.abspath(item) in names
        if not hit and stats:
            with contextlib.suppress(OSError, ValueError):
                st = os.stat(item)
                hit = (st.st_dev, st.st_ino) in stats
        if hit:
            raise UsageError(f"--out {out} would overwrite the input {item}", "choose another --out")
    if not os.access(folder, os.W_OK):
        ro = False
        with contextlib.suppress(OSError):
            ro = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        err = OSError(errno.EROFS if ro else errno.EACCES, os.strerror(errno.EROFS if ro else errno.EACCES))
        raise os_error(out, err) from None
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OutputError(f"{out}: the file is read-only", "make it writable, or choose another --out")
    return path, existing
