"""`jobsched run`: the TrainingJob it builds from options and the command (real runtime)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jobsched.cli.main import build_app


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def test_run_builds_the_job(live: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("import os, sys; print(os.environ['LR'], sys.argv[1:])\n")
    # no '--': everything from the first positional on is the command, its options included
    r = cli("run", "--memory", "300Mi", "--cpu", "500m", "--priority", "5", "-e", "LR=0.1", "-n", "team",
            "--wait", "-o", "json", sys.executable, "train.py", "--epochs", "2")
    assert r.exit_code == 0, r.output
    st = json.loads(r.stdout)
    assert st["name"].startswith("train-") and st["namespace"] == "team" and st["priority"] == 5
    assert st["phase"] == "Succeeded"
    tpl = live.service.get("team", st["name"]).manifest["spec"]["template"]
    assert tpl["command"] == [sys.executable, "train.py", "--epochs", "2"]
    assert tpl["workingDir"] == str(tmp_path)
    assert tpl["resources"] == {"requests": {"cpu": "500m", "memory": "300Mi"}, "limits": {"memory": "300Mi"}}
    logs = cli("logs", st["name"], "-n", "team")
    assert logs.stdout == "0.1 ['--epochs', '2']\n"


def test_run_with_separator_and_status_table(live: Any) -> None:
    r = cli("run", "--name", "sep", "--", sys.executable, "-c", "print('x')")
    assert r.exit_code == 0 and "default/sep submitted to queue default" in r.stdout
    r = cli("status", "sep")
    assert r.exit_code == 0 and "default/sep" in r.stdout
    assert cli("cancel", "sep").exit_code == 0
    r = cli("list", "-o", "yaml")
    assert r.exit_code == 0 and "name: sep" in r.stdout


def test_list_table_never_cuts_names(live: Any) -> None:
    name = "a-rather-long-job-name-that-users-copy-and-paste-0123456789"
    assert cli("run", "--name", name, "--", sys.executable, "-c", "pass").exit_code == 0
    r = cli("list")
    assert r.exit_code == 0 and name in r.stdout.split()
    assert "NAME" in r.stdout and "PHASE" in r.stdout
