"""Workflow fan-out against a real server on loopback (real processes, real SQLite): loops expand
lazily within a per-server cap, server memory stays flat at 10^5 items, status and cancel answer
mid-expansion, a cancel is final (no step job after it is answered), an over-cap loop is refused
at submit naming the field, SIGTERM stops a busy server, and a restarted server resumes the loop
from its cursor instead of expanding it again."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.test_cli_sdk import clean_env, free_port, jobsched, wait_up

pytestmark = pytest.mark.slow

FANOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: fan}}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: s
        template: t
        withSequence: {{count: "{count}"}}
  - name: t
    container: {{image: alpine, command: [{command}]}}
"""
MB = 1 << 20


class Server:
    def __init__(self, tmp: Path, *flags: str) -> None:
        self.tmp, self.flags, self.home = tmp, flags, tmp / "home"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    def start(self) -> Server:
        port = free_port()
        self.log = open(self.tmp / "server.out", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobsched.cli.main", "server", "--home", str(self.home), "--port",
             str(port), *self.flags], env=clean_env(), cwd=self.tmp, stdout=self.log, stderr=self.log)
        url = f"http://127.0.0.1:{port}"
        wait_up(url, self.proc)
        self.env = clean_env(JOBSCHED_URL=url, JOBSCHED_HOME=str(self.home))
        return self

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return jobsched(*args, env=self.env, cwd=self.tmp)

    def status(self, name: str = "fan") -> dict[str, Any]:
        r = self.cli("workflow", "status", name, "-o", "json")
        assert r.returncode == 0, r.stderr
        return dict(json.loads(r.stdout))

    def step_jobs(self) -> int:
        with sqlite3.connect(f"file:{self.home / 'state.db'}?mode=ro", uri=True, timeout=60) as c:
            return int(c.execute("SELECT count(*) FROM jobs WHERE name LIKE 'fan-%'").fetchone()[0])

    def rss(self) -> int:
        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.log.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    made: list[Server] = []

    def make(*flags: str) -> Server:
        s = Server(tmp_path, *flags).start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def until(cond: Callable[[], Any], what: str, timeout: float = 300) -> Any:
    """Wait for a condition (the bound only turns a hang into a failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def loop_node(st: dict[str, Any]) -> dict[str, Any]:
    return next(n for n in st["nodes"] if n["type"] == "TaskGroup")


def test_fanout_of_100000_stays_bounded_and_cancels(server: Callable[..., Server], tmp_path: Path) -> None:
    s = server("--max-loop-items", "100000", "--max-live-steps", "8")
    (tmp_path / "fan.yaml").write_text(FANOUT.format(count=100000, command="true"))
    rss0 = s.rss()
    r = s.cli("workflow", "submit", "fan.yaml")
    assert r.returncode == 0, r.stderr
    # status answers while the loop expands, and shows it expanding in steps of the cap
    until(lambda: loop_node(s.status())["loop"]["next"] >= 40, "40 items expanded")
    st = s.status()
    loop = loop_node(st)["loop"]
    assert loop["total"] == 100000 and st["phase"] == "Running"
    live = [n for n in st["nodes"] if n["type"] == "Pod" and n["phase"] in ("Pending", "Running")]
    assert len(live) <= 8
    assert s.step_jobs() < 100000 // 10  # nothing like the whole fan-out was materialised
    assert s.rss() - rss0 < 200 * MB
    assert s.cli("workflow", "list").returncode == 0
    # cancel answers mid-expansion; after its answer no step job is created
    r = s.cli("workflow", "cancel", "fan")
    assert r.returncode == 0, r.stderr
    at_ack = s.step_jobs()
    st = until(lambda: (x := s.status())["phase"] == "Failed" and x, "the workflow to end")
    assert st["message"] == "Workflow terminated by user"
    # the engine is done with it: every step job it created is finished, none was added
    r = s.cli("list", "-o", "json")
    jobs = [j for j in json.loads(r.stdout) if j["name"].startswith("fan-")]
    until(lambda: all(j["phase"] in ("Succeeded", "Failed", "Cancelled")
                      for j in json.loads(s.cli("list", "-o", "json").stdout) if j["name"].startswith("fan-")),
          "the step jobs to finish")
    assert s.step_jobs() == at_ack == len(jobs)
    assert s.rss() - rss0 < 200 * MB


def test_over_cap_loop_refused_naming_the_field(server: Callable[..., Server], tmp_path: Path) -> None:
    s = server()  # default limit: 10,000 items per loop
    (tmp_path / "big.yaml").write_text(FANOUT.format(count=1000000000, command="true"))
    field = "spec.templates[0].steps[0][0].withSequence.count"
    r = s.cli("workflow", "lint", "big.yaml")
    assert r.returncode == 2 and field in r.stderr and "10000" in r.stderr, r.stderr
    r = s.cli("workflow", "submit", "big.yaml")
    assert r.returncode == 2 and field in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert s.cli("workflow", "list", "-o", "json").stdout.strip() == "[]"  # nothing stored
    assert s.step_jobs() == 0


def test_sigterm_stops_a_busy_server_and_restart_resumes_then_cancels(
        server: Callable[..., Server], tmp_path: Path) -> None:
    s = server("--max-loop-items", "100000", "--max-live-steps", "4")
    (tmp_path / "fan.yaml").write_text(FANOUT.format(count=100000, command="true"))
    assert s.cli("workflow", "submit", "fan.yaml").returncode == 0
    until(lambda: loop_node(s.status())["loop"]["next"] >= 12, "12 items expanded")
    assert s.proc is not None
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(30) == 0  # within its grace (uvicorn 5 s + the engine's 10 s)
    jobs_before = s.step_jobs()
    cursor = json.loads(sqlite3.connect(s.home / "state.db").execute(
        "SELECT node FROM workflow_nodes WHERE name = 'fan[0].s'").fetchone()[0])["loop"]["next"]
    assert cursor <= jobs_before + 1  # the cursor counts materialised items, not the fan-out

    s.start()  # same home: the workflow resumes from its cursor instead of expanding again
    until(lambda: loop_node(s.status())["loop"]["next"] > cursor, "the loop to move on")
    assert s.step_jobs() < jobs_before + 100
    r = s.cli("workflow", "cancel", "fan")
    assert r.returncode == 0, r.stderr
    st = until(lambda: (x := s.status())["phase"] == "Failed" and x, "the workflow to end")
    assert st["message"] == "Workflow terminated by user"
