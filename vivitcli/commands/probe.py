"""`vivit probe train|eval`: fit a linear classifier on a backbone's embeddings of labelled clip folders.

A Typer sub-app; cli.py registers it with `app.add_typer(probe.make_app(guarded, _reflow), name="probe")`.
"""

from __future__ import annotations

import functools
import inspect
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from vivitcli.commands import options as o
from vivitcli.errors import UsageError


class ReportFormat(str, Enum):
    table = "table"
    json = "json"


Data = Annotated[Path, typer.Argument(help="Folder with one subfolder of clips per class (the folder name is the "
                                      "label); DATA/labels.txt may fix the class order.", show_default=False)]
Format = Annotated[Optional[ReportFormat], typer.Option(
    "--format", "-f", help="Report format. (default: table on a terminal, json when piped)", show_default=False,
    rich_help_panel=o.OUTPUT_PANEL)]
Cache = Annotated[Optional[Path], typer.Option(
    "--cache", help="Embeddings cache folder. (env: VIVIT_CACHE; default: ~/.cache/vivitcli)", show_default=False,
    rich_help_panel=o.INPUT_PANEL)]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Embed every clip again and store nothing.",
                                       rich_help_panel=o.INPUT_PANEL)]
# The embedding run's options, last in both commands: (parameter, type, default).
_RUN_OPTIONS = (("ext", o.Ext, None), ("workers", o.Workers, None), ("device", o.Device, "auto"),
                ("dtype", o.Dtype, "auto"), ("attn", o.Attn, "sdpa"), ("batch_size", o.BatchSize, 4),
                ("quiet", o.Quiet, False), ("debug", o.Debug, False))


def _with_run_options(command):
    """`command(..., run)` → a command that also takes _RUN_OPTIONS (last, as Typer reads the signature) and
    hands them over as the dict `run`."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for name, p in signature.parameters.items() if name != "run"]
    extra = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=kind)
             for name, kind, default in _RUN_OPTIONS]

    @functools.wraps(command)
    def with_options(*args, **kwargs):
        return command(*args, run={name: kwargs.pop(name) for name, _, _ in _RUN_OPTIONS}, **kwargs)

    with_options.__signature__ = signature.replace(parameters=own + extra)
    return with_options


@_with_run_options
def train(
    data: Data,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the probe model to (new, empty, or a "
                                      "previous probe model).", show_default=False, rich_help_panel=o.OUTPUT_PANEL)],
    model: o.Model = None,
    pool: Annotated[o.Pool, typer.Option(
        "--pool", help="Which embedding the probe reads (as `vivit embed --pool`).",
        rich_help_panel=o.MODEL_PANEL)] = o.Pool.default,
    balanced: Annotated[bool, typer.Option("--balanced", help="Weight classes inversely to their clip counts.")
                        ] = False,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", min=0.01, max=0.99, help="Share of each class held out to pick the L2 strength "
        "(when DATA has no train/ and val/ folders).")] = 0.2,
    split_seed: Annotated[int, typer.Option("--split-seed", help="Seed of the train/validation split.")] = 0,
    standalone: Annotated[bool, typer.Option(
        "--standalone", help="Copy the backbone's weights into the probe folder (for shipping).",
        rich_help_panel=o.OUTPUT_PANEL)] = False,
    fmt: Format = None,
    cache: Cache = None,
    no_cache: NoCache = False,
    sampling: o.SamplingOpt = None,
    frames: o.Frames = None,
    frame_step: o.FrameStep = 4,
    clips: o.Clips = None,
    start: o.Start = None,
    end: o.End = None,
    seed: o.Seed = None,
    run: dict = None,
) -> None:
    """Teach a model your own labels: embed DATA/<label>/ clips with the backbone, fit a linear classifier.

    The head is multinomial logistic regression with an L2 penalty whose strength is picked on a validation
    split (DATA/val/<label>/ when DATA has train/ and val/ folders, else a stratified seeded share of each
    class), then refit on train + validation (CLIP's linear-probe recipe). Embeddings are cached on disk by
    clip content, model and options, so a second run does not decode again and an interrupted run resumes.
    Prints per-class precision/recall, accuracy and the confusion matrix on the validation split. Unreadable
    clips are reported and skipped. The --out folder loads anywhere a model does: `vivit classify -m OUT`.
    Exit code 0, 1 when some clips were skipped (the probe is still written), 2 on usage errors.

    \b
    Examples:
      vivit probe train clips/ --model demo --out my-probe/
      vivit classify new.mp4 -m my-probe/
    """
    from vivitcli.linear_probe.run import train as train_probe

    _report(lambda **common: train_probe(
        str(data), model or o.default_model(), out=str(out), pool=pool.value,
        sampling=_sampling(sampling, frames, frame_step, clips, start, end, seed), balanced=balanced,
        val_fraction=val_fraction, split_seed=split_seed, standalone=standalone, **common),
        fmt, cache, no_cache, run, train_table)


@_with_run_options
def evaluate(
    data: Data,
    model: Annotated[str, typer.Option("--model", "-m", help="The probe model folder (or any classifier whose "
                                       "labels name DATA's class folders).", show_default=False,
                                       rich_help_panel=o.MODEL_PANEL)],
    clips: Annotated[Optional[int], typer.Option(
        "--clips", min=1, help="Average the logits over K uniform windows per clip (as `vivit classify --clips`). "
        "(default: as the probe was trained)", show_default=False, rich_help_panel=o.SAMPLING_PANEL)] = None,
    fmt: Format = None,
    cache: Cache = None,
    no_cache: NoCache = False,
    run: dict = None,
) -> None:
    """Score a probe model on a labelled test folder: accuracy, per-class precision/recall, confusion matrix.

    DATA holds one subfolder per class, named as the probe's labels (a subset is fine). Clips are sampled and
    embedded as the probe was trained (cached like `probe train`); unreadable clips are reported and skipped.
    Exit code 0, 1 when some clips were skipped, 2 on usage errors.

    \b
    Examples:
      vivit probe eval test-clips/ -m my-probe/
      vivit probe eval test-clips/ -m my-probe/ --clips 3 --format json
    """
    from vivitcli.linear_probe.run import evaluate as evaluate_probe

    _report(lambda **common: evaluate_probe(str(data), model, clips=clips, **common),
            fmt, cache, no_cache, run, eval_table)


def make_app(wrap, reflow) -> typer.Typer:
    """The `probe` sub-app, each command wrapped by the CLI's error boundary `wrap`."""
    sub = typer.Typer(name="probe", no_args_is_help=True, pretty_exceptions_enable=False,
                      help="Teach a model your own labels from folders of example clips (linear probe).")
    sub.command("train", help=reflow(train.__doc__))(wrap(train))
    sub.command("eval", help=reflow(evaluate.__doc__))(wrap(evaluate))
    return sub


# ---- helpers ---------------------------------------------------------------------------------------------------


def _report(fit, fmt, cache, no_cache, run: dict, table) -> None:
    """Both commands' run: checks the options, calls fit(cache=..., progress=..., <embedding options>), prints
    the notes on stderr and the report as `table(result)` or JSON, exits 1 when clips were skipped."""
    if cache is not None and no_cache:
        raise UsageError("give --cache DIR or --no-cache, not both")
    fmt_value = _format(fmt)
    with _Progress(run["quiet"]) as progress:
        result = fit(cache=None if no_cache else (str(cache) if cache else True), progress=progress,
                     batch_size=run["batch_size"], workers=run["workers"], device=run["device"],
                     dtype=run["dtype"], attn=run["attn"], ext=run["ext"])
    _summary(result, run["quiet"])
    if fmt_value == "json":
        _print_json(result.to_dict())
    else:
        print(table(result))
    raise typer.Exit(1 if result.errors else 0)


def _sampling(sampling, frames, frame_step, clips, start, end, seed):
    from vivitcli.tasks import Sampling

    return Sampling(sampling=sampling.value if sampling else None, frames=frames, frame_step=frame_step,
                    clips=clips, start=start, end=end, seed=seed)


def _summary(result, quiet: bool) -> None:
    """Notes (class imbalance) and the count of skipped clips on stderr, unless --quiet."""
    if quiet:
        return
    for note in result.notes:
        print(f"vivit: {note}", file=sys.stderr)
    if result.errors:
        print(f"vivit: {len(result.errors)} of {result.stats['clips']} clips could not be read and were left out",
              file=sys.stderr)


def _format(fmt) -> str:
    if fmt is not None:
        return fmt.value
    return "table" if sys.stdout.isatty() else "json"


def _print_json(doc) -> None:
    import json

    print(json.dumps(doc, indent=2, allow_nan=False))


class _Progress:
    """Per-clip error lines on stderr always; the shared progress bar on a terminal without --quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.reporter = None

    def __enter__(self):
        return self

    def start(self, total: int) -> None:
        from vivitcli.commands.batch import Reporter

        self.reporter = Reporter(total, quiet=self.quiet)

    def clip(self, path, error, cached) -> None:
        if error is not None:
            self.reporter.log(f"error: {path}: {error}")
        self.reporter.advance(1)

    def __exit__(self, *exc):
        if self.reporter is not None:
            self.reporter.close()
        return False


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def metrics_table(report: dict) -> str:
    """Per-class precision/recall/F1/support, accuracy, and the confusion matrix (rows: true class)."""
    names = [c["label"] for c in report["classes"]]
    width = max([len(n) for n in names] + [len("class")])
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for c in report["classes"]:
        lines.append(f"{c['label']:<{width}}  {_num(c['precision']):>9}  {_num(c['recall']):>6}  "
                     f"{_num(c['f1']):>5}  {c['support']:>7}")
    lines.append(f"accuracy {_num(report['accuracy'])} on {report['num_clips']} clips "
                 f"(balanced accuracy {_num(report['balanced_accuracy'])})")
    matrix = report["confusion"]["matrix"]
    cell = max([len(n) for n in names] + [len(str(v)) for row in matrix for v in row])
    lines.append("")
    lines.append("confusion (rows: true class, columns: predicted)")
    lines.append(" " * width + "  " + "  ".join(f"{n:>{cell}}" for n in names))
    for n, row in zip(names, matrix):
        lines.append(f"{n:<{width}}  " + "  ".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def train_table(result) -> str:
    train_n = sum(result.counts["train"]["counts"].values())
    val_n = sum(result.counts["val"]["counts"].values())
    head = [f"probe: {len(result.classes)} classes, {result.stats['used']} clips ({train_n} train, {val_n} "
            f"validation), L2 strength {result.head.l2:.3g}"
            + (f", {result.stats['failed']} skipped" if result.stats["failed"] else ""),
            f"embeddings: {result.stats['embedded']} computed, {result.stats['from_cache']} from the cache",
            f"saved to {result.model_dir}" if result.model_dir is not None else "not saved",
            "", "validation split (head fit on the training split; the saved head is refit on both):"]
    return "\n".join(head + [metrics_table(result.metrics)])


def eval_table(result) -> str:
    head = [f"{result.stats['used']} clips" + (f", {result.stats['failed']} skipped" if result.stats["failed"]
                                               else ""), ""]
    return "\n".join(head + [metrics_table(result.metrics)])
