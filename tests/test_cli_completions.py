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


def test_scripts_know_every_command_and_option(scripts):
    import typer

    from vivitcli.cli import app

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        for text in scripts.values():
            assert name in text
        for param in cmd.params:
            if param.param_type_name == "option":
                for opt in param.opts:
                    assert opt in scripts["vivit.bash"], (name, opt)
                    long = opt[2:] if opt.startswith("--") else None
                    if long:
                        assert f"-l {long}" in scripts["vivit.fish"] and opt in scripts["vivit.zsh"]


def _bash_complete(words: list[str]) -> list[str]:
    script = (
        f"source {COMPLETIONS / 'vivit.bash'}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_vivit; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True, check=True)
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
