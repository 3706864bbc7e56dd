"""Ctrl-C while the CLI starts: exit 130 with one line, never a traceback, and never ignored.

The SIGINT is raised deterministically inside the CLI's start-up imports (the command modules), the
window where it used to print a ``KeyboardInterrupt`` traceback. A process started with SIGINT
ignored (a background job of a non-interactive shell, as CI runners start tests) must still stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

INTERRUPT_DURING_IMPORTS = """
import importlib, os, signal, sys
real = importlib.import_module
def hooked(name, *a, **k):
    if name == "jobsched.cli.jobs":
        os.kill(os.getpid(), signal.SIGINT)
    return real(name, *a, **k)
importlib.import_module = hooked
sys.argv = ["jobsched", "list"]
from jobsched.cli.main import main
main()
"""


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_sigint_during_startup_exits_130_without_traceback(inherited: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    env.update(PYTHONPATH=str(ROOT), JOBSCHED_URL="http://127.0.0.1:9", JOBSCHED_TOKEN="t")
    r = subprocess.run([sys.executable, "-c", INTERRUPT_DURING_IMPORTS], env=env, capture_output=True,
                       text=True, timeout=120,
                       preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
                       if inherited == "ignored" else None)
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "KeyboardInterrupt" not in r.stderr
    assert r.stderr.strip() == "interrupted"
