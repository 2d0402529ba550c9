"""completions/vivit.{bash,zsh,fish} match the current CLI, parse in their shells, and complete in bash."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

COMPLETIONS = Path(__file__).resolve().parent.parent / "completions"


def _generator():
    spec = importlib.util.spec_from_file_location("vivit_completions_generate", COMPLETIONS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scripts():
    return _generator().render()


def test_committed_scripts_match_the_cli(scripts):
    assert set(scripts) == {"vivit.bash", "vivit.zsh", "vivit.fish"}
    for name, text in scripts.items():
        assert (COMPLETIONS / name).read_text() == text, \
            f"completions/{name} is out of date: run `python completions/generate.py`"


def _click_commands(group, path=()):
    """(path, click command) for every command of the CLI, sub-app commands (probe train) included."""
    for name, cmd in group.commands.items():
        yield path + (name,), cmd
        if hasattr(cmd, "commands"):
            yield from _click_commands(cmd, path + (name,))


def test_scripts_know_every_command_and_option(scripts):
    import typer

    from vivitcli.cli import app

    seen = []
    for path, cmd in _click_commands(typer.main.get_command(app)):
        seen.append(" ".join(path))
        for text in scripts.values():
            assert path[-1] in text
        for param in cmd.params:
            if param.param_type_name == "option":
                for opt in param.opts:
                    assert opt in scripts["vivit.bash"], (path, opt)
                    long = opt[2:] if opt.startswith("--") else None
                    if long:
                        assert f"-l {long}" in scripts["vivit.fish"] and opt in scripts["vivit.zsh"]
    assert {"probe train", "probe eval"} <= set(seen)


def _model_commands():
    """Command paths of every command with a --model/-m option, from the generator's view of the CLI."""
    _, cmds = _generator().describe()
    return [c.path for top in cmds for c in top.walk() if any("--model" in o.names for o in c.options)]


def test_every_model_option_is_a_model_name_completion():
    paths = _model_commands()
    assert {("classify",), ("embed",), ("timeline",), ("benchmark",), ("reconstruct",), ("probe", "train"),
            ("probe", "eval")} <= set(paths)
    _, cmds = _generator().describe()
    from vivitcli.models.names import alias_names

    for c in (c for top in cmds for c in top.walk() if c.path in paths):
        opt = next(o for o in c.options if "--model" in o.names)
        assert opt.kind == "model" and opt.words == alias_names() and "-m" in opt.names, c.path


def _bash_complete(words: list[str], cwd=None) -> list[str]:
    script = (
        f"source {COMPLETIONS / 'vivit.bash'}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_vivit; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True, check=True,
                         cwd=cwd)
    return [w for w in out.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completes_commands_options_and_choices():
    assert _bash_complete(["vivit", "cl"]) == ["classify"]
    assert _bash_complete(["vivit", "classify", "x.mp4", "--form"]) == ["--format"]
    assert _bash_complete(["vivit", "classify", "--format", ""]) == ["table", "jsonl", "json", "csv"]
    assert _bash_complete(["vivit", "embed", "--pool", "c"]) == ["cls"]
    assert "vivit" in _bash_complete(["vivit", "embed", "-m", "viv"])
    assert _bash_complete(["vivit", "embed", "--out", "f"]) == []  # empty: bash falls back to file names


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completes_nested_commands_and_their_options():
    assert _bash_complete(["vivit", "probe", ""]) == ["train", "eval", "--help", "-h"]
    assert _bash_complete(["vivit", "probe", "t"]) == ["train"]
    assert _bash_complete(["vivit", "probe", "train", "--ba"]) == ["--balanced", "--batch-size"]
    assert _bash_complete(["vivit", "probe", "train", "data/", "--pool", ""]) == ["default", "mean", "cls"]
    assert _bash_complete(["vivit", "probe", "eval", "--format", ""]) == ["table", "json"]
    # An option value that spells a command name is no step: `-m probe` stays inside classify.
    assert _bash_complete(["vivit", "classify", "-m", "probe", "--form"]) == ["--format"]
    assert "--balanced" not in _bash_complete(["vivit", "probe", "eval", "--"])


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_offers_only_the_values_each_command_accepts():
    from vivitcli.commands.benchmark import FORMATS, MODES
    from vivitcli.convert.options import DTYPES

    assert _bash_complete(["vivit", "convert", "src", "dst", "--dtype", ""]) == list(DTYPES)  # no "auto" there
    assert _bash_complete(["vivit", "classify", "--dtype", ""]) == ["auto", "float32", "float16", "bfloat16"]
    assert _bash_complete(["vivit", "benchmark", "--dtype", ""]) == ["float32", "float16", "bfloat16"]
    assert _bash_complete(["vivit", "benchmark", "--mode", ""]) == list(MODES)
    assert _bash_complete(["vivit", "benchmark", "--mode", "pre"]) == ["pretraining", "pretraining-training"]
    assert _bash_complete(["vivit", "benchmark", "-f", ""]) == list(FORMATS)
    assert _bash_complete(["vivit", "benchmark", "--device", ""]) == ["auto", "cpu", "cuda", "mps"]
    assert _bash_complete(["vivit", "convert", "--device", ""]) == ["cpu", "cuda", "auto"]
    assert _bash_complete(["vivit", "reconstruct", "--device", "c"]) == ["cpu", "cuda"]
    assert _bash_complete(["vivit", "timeline", "--subtitles", ""]) == ["segments", "windows"]
    assert _bash_complete(["vivit", "sample-clip", "--codec", ""]) == ["h264", "mpeg4", "vp9"]
    assert _bash_complete(["vivit", "benchmark", "--steps", ""]) == []  # a number: nothing to offer


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completes_every_model_name_and_directories_after_m(tmp_path):
    from vivitcli.models.names import alias_names

    (tmp_path / "my-ckpt").mkdir()
    (tmp_path / "clip.mp4").write_bytes(b"")
    for path in _model_commands():
        got = _bash_complete(["vivit", *path, "-m", ""], cwd=tmp_path)
        assert sorted(got) == sorted(alias_names() + ["my-ckpt"]), path
        assert _bash_complete(["vivit", *path, "--model", "my"], cwd=tmp_path) == ["my-ckpt"], path


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completion_never_starts_python(tmp_path):
    """TAB must be instant: the static script answers without running vivit or any Python (so no torch)."""
    marker = tmp_path / "started"
    for name in ("vivit", "python", "python3", sys.executable.rsplit("/", 1)[-1]):
        stub = tmp_path / name
        stub.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        stub.chmod(0o755)
    script = (f"PATH={tmp_path}; source {COMPLETIONS / 'vivit.bash'}; COMP_WORDS=(vivit classify --form); "
              "COMP_CWORD=2; _vivit; printf '%s\\n' \"${COMPREPLY[@]}\"")
    out = subprocess.run(["/bin/bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True)
    assert out.stdout.split() == ["--format"], out.stderr
    assert not marker.exists(), marker.read_text()


@pytest.mark.parametrize("shell,args", [("bash", ["-n"]), ("zsh", ["-n"]), ("fish", ["--no-execute"])])
def test_scripts_parse(shell, args):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    path = COMPLETIONS / f"vivit.{shell}"
    proc = subprocess.run([shell, *args, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")
def test_fish_completes_choices():
    script = f"source {COMPLETIONS / 'vivit.fish'}; complete -C 'vivit classify --format '"
    out = subprocess.run(["fish", "--no-config", "-c", script], capture_output=True, text=True, check=True)
    assert sorted(line.split("\t")[0] for line in out.stdout.splitlines()) == ["csv", "json", "jsonl", "table"]


def _fish_complete(line: str, cwd=None) -> list[str]:
    script = f"source {COMPLETIONS / 'vivit.fish'}; complete -C {line!r}"
    out = subprocess.run(["fish", "--no-config", "-c", script], capture_output=True, text=True, check=True, cwd=cwd)
    return [row.split("\t")[0] for row in out.stdout.splitlines()]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")
def test_fish_completes_nested_commands_values_and_model_names(tmp_path):
    from vivitcli.models.names import alias_names

    assert sorted(_fish_complete("vivit probe ")) == ["eval", "train"]
    assert sorted(_fish_complete("vivit probe train --ba")) == ["--balanced", "--batch-size"]
    assert "--balanced" not in _fish_complete("vivit probe eval --")
    assert sorted(_fish_complete("vivit benchmark --mode ")) == sorted(
        ["inference", "training", "pretraining", "pretraining-training"])
    (tmp_path / "my-ckpt").mkdir()
    assert sorted(_fish_complete("vivit probe eval data -m ", cwd=tmp_path)) == sorted(alias_names() + ["my-ckpt/"])


ZSH_DRIVER = r"""
# Drives an interactive zsh in a pseudo-terminal: TAB after $2 with completions/ on $fpath prints each match
# that the completion functions add (compadd wrapped), then <<END>>.
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT=; unset zle_bracketed_paste; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z 'compprefuncs=( _t_nolist ); _t_nolist() { compstate[list]=; compstate[insert]= }'
zpty -w z 'comppostfuncs=( _t_end ); _t_end() { print -r -- "<<END>>"; exit }'
zpty -w z 'compadd() { if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi;
  local -a _h; builtin compadd -A _h "$@"; (( $#_h )) && print -rl -- "<<"${^_h}">>"; builtin compadd "$@" }'
zpty -w z "bindkey '^I' complete-word"
zpty -w z 'print "<<SET""UP>>"'
zpty -r z junk '*<<SETUP>>*'
zpty -n -w z "$2"$'	'
zpty -r z all '*<<END>>*' || exit 1
for line in ${(f)all}; do
  [[ $line == *'<<'*'>>'* && $line != *'<<END>>'* ]] && print -r -- "${${line##*<<}%%>>*}"
done
zpty -d z
"""


def _zsh_complete(line: str, tmp_path) -> set[str]:
    fdir = tmp_path / "fpath"
    fdir.mkdir(exist_ok=True)
    (fdir / "_vivit").write_text((COMPLETIONS / "vivit.zsh").read_text())
    driver = tmp_path / "drive.zsh"
    driver.write_text(ZSH_DRIVER)
    out = subprocess.run(["zsh", "-f", str(driver), str(fdir), line], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
@pytest.mark.parametrize("line,expected", [
    ("vivit probe ", {"train", "eval"}),
    ("vivit probe train --ba", {"--balanced", "--batch-size"}),
    ("vivit convert a b --dtype ", {"float32", "float16", "bfloat16"}),
    ("vivit benchmark --mode ", {"inference", "training", "pretraining", "pretraining-training"}),
])
def test_zsh_completes_commands_options_and_values(line, expected, tmp_path):
    assert _zsh_complete(line, tmp_path) == expected


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_completes_model_names_and_directories(tmp_path):
    from vivitcli.models.names import alias_names

    (tmp_path / "my-ckpt").mkdir()
    assert _zsh_complete("vivit probe eval data -m ", tmp_path) == set(alias_names()) | {"my-ckpt", "fpath"}
