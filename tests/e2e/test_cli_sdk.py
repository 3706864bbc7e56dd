"""End to end: `jobsched server` as a real process, jobs submitted with the CLI and the SDK run to
Succeeded; the autostart path (no JOBSCHED_URL) starts a detached server that `server stop` stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from jobsched import Client

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

JOB = """\
apiVersion: jobsched.io/v1alpha1
kind: TrainingJob
metadata: {{name: {name}}}
spec:
  maxRetries: 0
  template:
    command: [{python}, -c, "print('trained')"]
    resources: {{requests: {{memory: 256Mi}}}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def jobsched(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobsched.cli.main", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=180)


def wait_up(url: str, proc: subprocess.Popen[Any] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc is None or proc.poll() is None, "server exited"
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"no server at {url}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    home, port = tmp_path / "home", free_port()
    log = open(tmp_path / "server.out", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "jobsched.cli.main", "server", "--home", str(home),
                             "--port", str(port)], env=clean_env(), cwd=tmp_path, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc)
        yield url, home, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def test_server_cli_and_sdk(server: tuple[str, Path, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    url, home, proc = server
    token_file = home / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    env = clean_env(JOBSCHED_URL=url, JOBSCHED_HOME=str(home))  # the token from the home's file
    assert httpx.get(f"{url}/v1/info").status_code == 401

    # CLI: submit a manifest and wait
    (tmp_path / "job.yaml").write_text(JOB.format(name="cli-job", python=sys.executable))
    r = jobsched("submit", "job.yaml", "--wait", "-o", "json", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["phase"] == "Succeeded"
    assert "Succeeded" in r.stderr  # the progress lines

    r = jobsched("status", "cli-job", "-o", "json", env=env, cwd=tmp_path)
    st = json.loads(r.stdout)
    assert {"name", "namespace", "queue", "phase", "reason", "attempts", "events"} <= set(st)
    a = st["attempts"][0]
    assert a["index"] == 0 and a["resources"]["requests"]["memory"] == 256 << 20
    assert a["exitCode"] == 0 and a["reason"] == "Completed" and a["node"]  # camelCase, as the manifests
    assert a["peakMemoryBytes"] is None or a["peakMemoryBytes"] > 0
    assert a["peak_memory_bytes"] == a["peakMemoryBytes"]  # the deprecated name, kept for one release
    assert "createdAt" in st and "created_at" not in st
    assert jobsched("logs", "cli-job", env=env, cwd=tmp_path).stdout == "trained\n"
    assert "cli-job" in jobsched("list", env=env, cwd=tmp_path).stdout

    # CLI run: a failing command under --wait exits 1; the working directory is the caller's
    (tmp_path / "fail.py").write_text("import sys; sys.exit(3)\n")
    r = jobsched("run", "--name", "bad", "--max-retries", "0", "--wait", "--", sys.executable, "fail.py",
                 env=env, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "Failed" in r.stdout

    # SDK
    with Client(url=url, token=token) as c:
        (tmp_path / "sdk.yaml").write_text(JOB.format(name="sdk-job", python=sys.executable))
        assert c.submit(tmp_path / "sdk.yaml").phase.value == "Pending"
        assert c.wait("sdk-job", timeout=120).phase.value == "Succeeded"
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}).text
        assert "jobsched_attempts_total" in metrics
        if (ROOT / "jobsched/server/workflow_routes.py").exists():  # mounted when present
            assert c.workflows.list() == []

    # Ctrl-C under --wait stops waiting, not the job. The waiter starts with SIGINT ignored, as a
    # background job of a non-interactive shell (a CI runner) inherits it; SIGINT is sent once the
    # waiter reports the job Running, i.e. once it is waiting (a condition, not a delay).
    waiter = subprocess.Popen([sys.executable, "-m", "jobsched.cli.main", "run", "--name", "long", "--wait",
                               "--", sys.executable, "-c", "import time; time.sleep(120)"],
                              env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert waiter.stderr is not None
    seen = []
    for line in waiter.stderr:  # blocks until the next progress line; EOF if the waiter died
        seen.append(line)
        if " Running " in line:
            break
    assert seen and " Running " in seen[-1], seen
    waiter.send_signal(signal.SIGINT)
    err = waiter.stderr.read()  # until the waiter exits
    assert waiter.wait(30) == 130 and "keeps running" in err and "Traceback" not in err
    with Client(url=url, token=token) as c:
        assert c.get("long").phase.value == "Running"
        assert jobsched("cancel", "long", env=env, cwd=tmp_path).returncode == 0
        assert c.wait("long", timeout=60).phase.value == "Cancelled"

    # a second server for the same home is refused
    r = jobsched("server", "--home", str(home), "--port", str(free_port()), env=clean_env(), cwd=tmp_path)
    assert r.returncode == 2 and "already runs" in r.stderr

    # clean shutdown on SIGTERM
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not (home / "server.pid").exists()


def test_autostart_and_stop(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    env = clean_env(JOBSCHED_HOME=str(home), JOBSCHED_PORT=str(port))
    try:
        # two clients at once: one starts the server, the other waits for it (no second server)
        argv = [sys.executable, "-m", "jobsched.cli.main", "queues", "-o", "json"]
        procs = [subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert sum("started one in the background" in err for _, err in outs) == 1
        assert "already runs" not in (home / "server.log").read_text()

        r = jobsched("run", "--wait", "--", sys.executable, "-c", "print('hi')", env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr + (home / "server.log").read_text()
        assert "started one" not in r.stderr
        pid = int((home / "server.pid").read_text())
        server = psutil.Process(pid)
        assert server.is_running() and os.getsid(pid) == pid  # detached: its own session

        r = jobsched("list", "-o", "json", env=env, cwd=tmp_path)
        assert r.returncode == 0 and "started one" not in r.stderr
        assert [j["phase"] for j in json.loads(r.stdout)] == ["Succeeded"]
        assert "version" in jobsched("server", "status", env=env, cwd=tmp_path).stdout

        r = jobsched("server", "stop", env=env, cwd=tmp_path)
        assert r.returncode == 0 and f"pid {pid}" in r.stdout
        assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE
        assert not (home / "server.pid").exists()
        assert "jobsched server stopped" in (home / "server.log").read_text()  # clean shutdown
    finally:
        if (home / "server.pid").exists():
            os.kill(int((home / "server.pid").read_text()), signal.SIGKILL)
