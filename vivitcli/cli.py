"""The `vivit` command: Typer wiring, --version, and the one error boundary.

Command modules import only typer and vivitcli.errors at module level; torch and av are imported inside the
command functions so that `vivit --help` and shell completion stay fast.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback

import typer

from vivitcli import __version__
from vivitcli.commands import benchmark, classify, convert, embed, models, sample_clip
from vivitcli.errors import VivitError

app = typer.Typer(
    name="vivit",
    help="Label and embed video clips with ViViT and VideoMAE.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _debug_wanted(kwargs: dict) -> bool:
    return bool(kwargs.get("debug")) or os.environ.get("VIVIT_DEBUG", "") not in ("", "0")


def guarded(func):
    """Map library errors to one stderr line and an exit code; Ctrl-C to 130. Tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except VivitError as err:
            if _debug_wanted(kwargs):
                traceback.print_exc()
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool):
    if value:
        typer.echo(f"vivit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    """Label and embed video clips with ViViT and VideoMAE."""


for _module in (classify, embed, models, benchmark, convert, sample_clip):
    _name = _module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    app.command(_name, help=_module.command.__doc__)(guarded(_module.command))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        # Ctrl-C outside a command body (e.g. during import); same code as inside one.
        typer.echo("interrupted", err=True)
        sys.exit(130)
