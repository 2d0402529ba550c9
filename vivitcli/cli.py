"""The `vivit` command: Typer wiring, --version, and the one error boundary.

Command modules import only typer and vivitcli.errors at module level; torch and av are imported inside the
command functions so that `vivit --help` and shell completion stay fast.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import signal
import sys
import threading
import traceback

import typer

from vivitcli import __version__
from vivitcli.commands import benchmark, classify, convert, embed, models, probe, reconstruct, sample_clip, timeline
from vivitcli.errors import VivitError, printable

app = typer.Typer(
    name="vivit",
    help="Label and embed video clips with ViViT and VideoMAE.",
    no_args_is_help=True,
    add_completion=False,  # the static scripts in completions/ are the one completion system
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _debug_wanted(kwargs: dict) -> bool:
    return bool(kwargs.get("debug")) or os.environ.get("VIVIT_DEBUG", "") not in ("", "0")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same cleanup runs (outputs finalised, journals kept)."""

    signum = signal.SIGTERM


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_exception():
    """Turn SIGTERM into `Terminated` while a command runs (only where Python may set handlers)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def guarded(func):
    """Map library errors to one stderr line and an exit code; Ctrl-C to 130, SIGTERM to 143.

    Tracebacks only with --debug (or VIVIT_DEBUG=1). A closed stdout (`vivit classify dir | head`) ends the run
    quietly with 141, as a shell reports SIGPIPE.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with _sigterm_as_exception():
                return func(*args, **kwargs)
        except typer.Exit:
            raise
        except VivitError as err:
            if _debug_wanted(kwargs):
                traceback.print_exc()
            # One line whatever names it holds: a newline or ESC[2J in an --out/--labels/model name is shown escaped.
            typer.echo(f"error: {printable(err)}", err=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt as err:
            if _debug_wanted(kwargs):
                traceback.print_exc()
            typer.echo("interrupted", err=True)
            raise typer.Exit(128 + int(getattr(err, "signum", signal.SIGINT))) from None
        except BrokenPipeError:
            # Python would complain again when it flushes stdout at exit; point stdout at /dev/null first.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(141) from None

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


def _reflow(doc: str | None) -> str | None:
    """Join the lines of each docstring paragraph: typer keeps single line breaks after the first paragraph.

    A paragraph that starts with a backslash-b line keeps its line breaks (click's convention).
    """
    if not doc:
        return doc
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p[1:].lstrip("\n") if p.startswith("\b") else " ".join(p.split("\n")) for p in paragraphs)


for _module in (classify, embed, models, benchmark, convert, sample_clip, reconstruct, timeline):
    _name = _module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    app.command(_name, help=_reflow(_module.command.__doc__))(guarded(_module.command))
app.add_typer(probe.make_app(guarded, _reflow), name="probe")  # `vivit probe train|eval`


def _type_word(param) -> str | None:
    """What a value of `param` looks like in --help: TEXT, INTEGER, FLOAT or [a|b|c]; None for flags."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    desc = getattr(param, "type_descriptor", None)
    if desc is not None and desc.is_choice:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in desc.choices or ()) + "]"
    return {"int": "INTEGER", "float": "FLOAT", "bool": None}.get(param.bare_type(), "TEXT")


def _plain_help(command) -> None:
    """Help in plain words (INPUTS..., TEXT, INTEGER) instead of Typer's <list[str]> / <bool> labels."""
    from typer.core import TyperArgument

    for param in command.params:
        if isinstance(param, TyperArgument):
            word = param.name.upper() + ("..." if param.nargs != 1 else "")
            param.metavar = word
            param._usage_display_name = lambda word=word: word
            param.display_type_rich = lambda ctx: None
        else:
            param.display_type_rich = lambda ctx, word=_type_word(param): word
    original = command.get_help_option

    def get_help_option(ctx, original=original):
        option = original(ctx)
        if option is not None:  # made per context, after the walk above
            option.display_type_rich = lambda ctx: None
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def build_command():
    """The click command behind `vivit` (what main() runs), with plain help labels."""
    command = typer.main.get_command(app)
    _plain_help(command)
    return command


def main() -> None:
    try:
        # A fixed name: usage lines and the completion variable (_VIVIT_COMPLETE) read the same under
        # `python -m vivitcli` as under the `vivit` script.
        build_command()(prog_name="vivit")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            typer.echo(exc.code, err=True)
    except KeyboardInterrupt:
        # Ctrl-C outside a command body (e.g. during import); same code as inside one.
        typer.echo("interrupted", err=True)
        code = 130
    _exit(code)


def _exit(code: int) -> None:
    """Flush stdout and stderr, then leave without interpreter finalization.

    Decode threads are daemon threads so that Ctrl-C or a closed pipe never waits for a long decode; one may
    still be inside PyAV or torch when the command returns, and finalizing the interpreter under it aborts
    the process ("terminate called without an active exception", exit -6) about half the time. Every output
    file is closed by the command before this point, so nothing is lost by skipping finalization.
    """
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError, OSError):
        if code == 0:
            code = 141
    with contextlib.suppress(ValueError, OSError):
        sys.stderr.flush()
    os._exit(code)
