"""The server killed with SIGKILL mid-run and restarted loses no job: live replicas are re-adopted,
vanished ones are recorded Lost and requeued within maxRetries."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from jobsched import Client

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "jobsched.cli.main", "server", "--home", str(home),
                             "--port", str(port)], stdout=open(home / "srv.out", "ab"), stderr=subprocess.STDOUT)
    c = Client(url=f"http://127.0.0.1:{port}", home=home, autostart=False)
    deadline = time.monotonic() + 30
    while not c._ping():
        assert proc.poll() is None and time.monotonic() < deadline, (home / "srv.out").read_text()
        time.sleep(0.1)
    return proc


def job(name: str, code: str, retries: int = 2) -> dict:
    return {"metadata": {"name": name}, "spec": {"maxRetries": retries, "replicas": 2, "template": {
        "command": [sys.executable, "-c", code], "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}}}


def running_pids(c: Client, name: str) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = c.get(name)
        if st.attempts and len([r for r in st.attempts[-1].replicas if r.pid]) == 2:
            return [r.pid for r in st.attempts[-1].replicas]
        time.sleep(0.1)
    raise AssertionError(f"{name} never ran: {c.get(name)}")


def test_sigkill_restart_readopts_live_and_requeues_lost(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    srv = start_server(home, port)
    c = Client(url=f"http://127.0.0.1:{port}", home=home, autostart=False)
    c.submit(job("survivor", "import time, os; time.sleep(4); print('done', os.environ['RANK'])"))
    c.submit(job("victim", "import time; time.sleep(30)"))
    survivor_pids = running_pids(c, "survivor")
    victim_pids = running_pids(c, "victim")

    srv.send_signal(signal.SIGKILL)
    srv.wait()
    for pid in victim_pids:  # these replicas and their shims vanish while no server watches
        shim = psutil.Process(pid).parent()
        shim.kill()
        os.killpg(pid, signal.SIGKILL)
    for pid in survivor_pids:
        os.kill(pid, 0)  # still alive without the server

    srv = start_server(home, port)
    try:
        st = c.wait("survivor", timeout=60)
        assert st.phase.value == "Succeeded"
        assert len(st.attempts) == 1  # re-adopted, not restarted
        assert any(e.reason == "Readopted" for e in st.events)
        assert "done 0" in c.logs("survivor") and "done 1" in c.logs("survivor")

        deadline = time.monotonic() + 30
        while len(c.get("victim").attempts) < 2:
            assert time.monotonic() < deadline, c.get("victim")
            time.sleep(0.2)
        v = c.get("victim")
        assert v.attempts[0].reason == "Lost"
        assert v.phase.value in ("Admitted", "Running", "Pending")
        c.cancel("victim")
        assert c.wait("victim", timeout=30).phase.value == "Cancelled"
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=20)
