"""Every failure ends with one concrete hint (real server, real processes)."""

from __future__ import annotations

import math
import sys
from typing import Any

from typer.testing import CliRunner

from jobsched.cli.main import build_app
from jobsched.sdk.client import Client


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def test_oom_hint_names_a_size_and_auto(live: Any) -> None:
    r = cli("run", "--name", "grow", "--memory", "64Mi", "--max-retries", "0", "--wait", "--",
            sys.executable, "-c", "b = bytearray(300 << 20); print('allocated')")
    assert r.exit_code == 1
    st = Client().get("grow")
    a = st.attempts[-1]
    assert a.reason in ("OOMKilled", "InProgramOOM")
    limit = a.resources.limits["memory"]
    # the size the server's OOM recovery would ask for next: above the limit, never the same size
    assert st.sizing.suggested_memory and st.sizing.suggested_memory > limit
    size = f"{math.ceil(st.sizing.suggested_memory / 2**20)}Mi"
    hint = r.stderr.strip().splitlines()[-1]
    assert hint.startswith("hint: attempt 0 was OOM-killed at") and f"--memory {size}" in hint, hint
    assert "--memory-policy Auto" in hint and "spec.memoryPolicy: Auto" in hint
    s = cli("status", "grow")  # the status of a failed job ends with the same hint
    assert s.stderr.strip().splitlines()[-1] == hint


def test_error_hint_shows_last_five_lines(live: Any) -> None:
    code = "import sys\nfor i in range(8): print('line', i, flush=True)\nsys.exit(3)"
    r = cli("run", "--name", "bad", "--memory", "64Mi", "--max-retries", "0", "--wait", "--follow", "--",
            sys.executable, "-c", code)
    assert r.exit_code == 1
    assert "line 0" in r.stdout and "line 7" in r.stdout  # --follow streamed the logs
    tail = r.stderr[r.stderr.index("hint: the last lines of attempt 0:"):].splitlines()
    assert tail[1:6] == [f"  | line {i}" for i in range(3, 8)]
    assert tail[6] == "  all of it: jobsched logs bad"


def test_wait_prints_every_event_and_phase(live: Any) -> None:
    r = cli("run", "--name", "quick", "--memory", "64Mi", "--wait", "--", sys.executable, "-c", "pass")
    assert r.exit_code == 0
    for reason in ("Submitted", "Admitted", "Succeeded"):
        assert any(ln.split()[1:2] == [reason] for ln in r.stderr.splitlines()), (reason, r.stderr)
    assert "default/quick  Succeeded" in r.stderr and "attempt 0  memory 64Mi" in r.stderr
    reasons = [e.reason for e in Client().events("quick")]
    assert not [x for x in reasons if "Estimate" in x], reasons  # no estimate noise under Fixed


def test_not_found_and_unreachable_hints(live: Any, monkeypatch: Any) -> None:
    r = cli("status", "nosuch")
    assert r.exit_code == 2 and r.stderr.splitlines() == [
        "error: job default/nosuch not found",
        "hint: `jobsched list` shows the jobs of every namespace (`-n NS` selects one)"]
    monkeypatch.setenv("JOBSCHED_URL", "http://127.0.0.1:1")
    r = cli("list", "-o", "json")
    assert r.exit_code == 3 and r.stderr.splitlines()[-1] == (
        "hint: start one with `jobsched server` (or `jobsched server --port PORT`), or point JOBSCHED_URL "
        "at a running server")
