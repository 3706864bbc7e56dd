"""The command tree: modules registered if present (import errors inside them not hidden), and a
start-up path free of heavy imports so that `jobsched --help` stays fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from jobsched.cli import main as cli_main
from jobsched.cli.jobs import default_job_name

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("fastapi", "uvicorn", "httpx", "pydantic", "torch", "numpy", "kubernetes", "ray", "yaml")


def test_help_imports_nothing_heavy() -> None:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "jobsched.cli.main", "--help"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and "submit" in r.stdout and "server" in r.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines()
                if line.startswith("import time:")}
    assert "typer" in imported
    assert not imported & set(HEAVY), imported & set(HEAVY)


def test_missing_module_skipped_broken_module_not_hidden(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_cli_mod.py").write_text("import no_such_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["jobsched.cli.jobs", "no_such_cli_module_xyz"])
    names = set(typer.main.get_command(cli_main.build_app()).commands)  # type: ignore[attr-defined]
    assert {"submit", "run", "list", "status"} <= names
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["jobsched.cli.jobs", "broken_cli_mod"])
    with pytest.raises(ModuleNotFoundError, match="no_such_package_xyz"):
        cli_main.build_app()


@pytest.mark.parametrize(("argv", "prefix"), [
    (["python", "train.py", "--lr", "1"], "train-"),
    (["python3", "-u", "/x/My_Model.py"], "my-model-"),
    (["torchrun", "--nproc-per-node", "2", "fit.py"], "fit-"),
    (["python", "-m", "pkg.trainer", "--x"], "trainer-"),
    (["/usr/bin/nvidia-smi"], "nvidia-smi-"),
    (["./run.sh"], "run-"),
    (["python"], "job-"),
])
def test_default_job_name(argv: list[str], prefix: str) -> None:
    name = default_job_name(argv)
    assert name.startswith(prefix) and len(name) == len(prefix) + 5
    assert default_job_name(argv) != name  # random suffix
