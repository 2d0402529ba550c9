"""Error types the CLI turns into one-line messages and exit codes.

No third-party imports here: every layer may import this module, and `vivit --help` must stay light.
"""

from __future__ import annotations


class VivitError(Exception):
    """A user-facing error: one line that says what went wrong, plus a hint on what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(VivitError):
    """Options that contradict each other or values the CLI parser could not catch."""

    exit_code = 2


class ModelNotFoundError(VivitError):
    """A model name, alias or path that resolves to nothing loadable."""


class CheckpointError(VivitError):
    """A checkpoint that exists but does not fit: wrong files, keys or shapes, unsafe pickle."""


class VideoError(VivitError):
    """A video that cannot be opened, probed or decoded. Always names the file."""

    def __init__(self, path, message: str, hint: str | None = None):
        super().__init__(f"{printable(path)}: {message}", hint)  # a name may hold newlines or ESC
        self.path = str(path)
        self.reason = message


class ShortVideoError(VideoError):
    """A stream that ends before the frames its index lists (a download cut short): `available` frames came
    out, so a reader can sample again among those."""

    def __init__(self, path, message: str, available: int):
        super().__init__(path, message)
        self.available = available


class ConvertError(VivitError):
    """A checkpoint conversion that cannot proceed or failed verification."""


def printable(path) -> str:
    """A file name safe to put in a one-line message: newlines, escape sequences and other control
    characters are shown escaped (a name holding ESC[2J must not clear the user's terminal)."""
    text = str(path)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
