"""`jobsched --version`, `jobsched completion bash|zsh|fish` (the scripts, and the completions the
shell then gets from the real program) and the examples at the end of every command's --help."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from jobsched.cli.main import build_app
from jobsched.version import __version__

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def program(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "jobsched.cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT, env=full, timeout=60)


def test_version() -> None:
    r = cli("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"jobsched {__version__}"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(shell: str) -> None:
    r = cli("completion", shell)
    assert r.exit_code == 0
    assert "jobsched" in r.stdout and "_JOBSCHED_COMPLETE=complete_" + shell in r.stdout
    assert cli("completion", "tcsh").exit_code == 2


def test_bash_completion_completes_commands_and_options() -> None:
    # what the bash script asks the program for (COMP_WORDS/COMP_CWORD) and what comes back
    r = program(env={"_JOBSCHED_COMPLETE": "complete_bash", "COMP_WORDS": "jobsched de", "COMP_CWORD": "1"})
    assert r.stdout.split() == ["delete"], r.stderr
    r = program(env={"_JOBSCHED_COMPLETE": "complete_bash", "COMP_WORDS": "jobsched list --ph",
                     "COMP_CWORD": "2"})
    assert r.stdout.split() == ["--phase"], r.stderr
    r = program(env={"_JOBSCHED_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "jobsched workflow su"})
    assert '"submit"' in r.stdout, r.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_sources_the_script(tmp_path: Path) -> None:
    script = tmp_path / "jobsched.bash"
    script.write_text(cli("completion", "bash").stdout)
    r = subprocess.run(["bash", "-c", f"source {script} && complete -p jobsched"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and "_jobsched_completion" in r.stdout, r.stderr


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = [(path, cmd)] if path else []
    if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
        for name, sub in cmd.commands.items():
            out += _commands(sub, (*path, name))
    return out


def test_every_command_help_has_examples() -> None:
    root = typer.main.get_command(build_app())
    cmds = _commands(root)
    assert len(cmds) > 20
    for path, _ in cmds:
        r = cli(*path, "--help")
        assert r.exit_code == 0, path
        assert "Examples:" in r.stdout and f"jobsched {path[0]}" in r.stdout.split("Examples:")[1], path


def test_example_queue_manifest_is_valid() -> None:
    from jobsched.sdk.manifest import load_manifest
    from jobsched.spec.queue import Queue

    q, _ = load_manifest(Queue, ROOT / "examples" / "queue.yaml")
    assert q.name == "research" and q.spec.quota and q.default_memory_bytes() == 2 * 2**30
