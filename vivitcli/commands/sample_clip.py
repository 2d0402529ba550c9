"""Placeholder: replaced by the helper that owns this command."""

from __future__ import annotations

from vivitcli.errors import VivitError


def command() -> None:
    """Not built yet."""
    raise VivitError("'sample_clip' is not built yet")
