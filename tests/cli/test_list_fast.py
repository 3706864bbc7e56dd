"""`jobsched list` takes a fast path (no typer, rich, httpx or pydantic) that prints what the full
command prints, against a real server; anything it does not handle goes the full way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from jobsched.cli.main import build_app
from jobsched.sdk.client import Client

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"typer", "rich", "httpx", "pydantic", "yaml", "fastapi"}


def program(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "jobsched.cli.main", *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)


def imported(stderr: str) -> set[str]:
    return {ln.split("|")[-1].strip().split(".")[0] for ln in stderr.splitlines() if ln.startswith("import time:")}


def tokens(text: str) -> list[list[str]]:
    """Cells per line, AGE masked (a second may pass between the two runs; the alignment is
    compared exactly in test_tables.py)."""
    return [[re.sub(r"^\d+[smhd]$", "AGE", t) for t in ln.split()] for ln in text.splitlines()]


def test_fast_list_matches_the_full_command(live: Any) -> None:
    c = Client()
    for name in ("alpha", "beta"):
        c.submit({"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
                  "spec": {"template": {"command": [sys.executable, "-c", "pass"],
                                        "resources": {"requests": {"memory": "32Mi"}}}}})
        c.wait(name, timeout=60)
    for args in (["list"], ["list", "-o", "wide"], ["list", "--phase", "Succeeded", "-n", "default"]):
        fast = program(*args)
        assert fast.returncode == 0, fast.stderr
        assert not imported(fast.stderr) & HEAVY, imported(fast.stderr) & HEAVY
        full = CliRunner().invoke(build_app(), args)
        assert full.exit_code == 0
        assert tokens(fast.stdout) == tokens(full.stdout) and "alpha" in fast.stdout


def test_other_forms_take_the_full_path(live: Any) -> None:
    r = program("list", "-o", "json")
    assert r.returncode == 0 and r.stdout.lstrip().startswith("[") and "pydantic" in imported(r.stderr)
    r = program("list", "--phase", "Nope")  # the server says 422: the full path reports it
    assert r.returncode == 2 and "phase" in r.stderr
