"""Managing a background server process for a home: spawn it detached, find it, stop it.

The server writes ``home/server.pid``; ``stop`` sends SIGTERM, waits, then SIGKILL. A pid is only
trusted if that process still runs ``jobsched`` (pids are reused).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

import jobsched
from jobsched.server.auth import ensure_home

PID_FILE = "server.pid"
LOG_FILE = "server.log"


def _package_root() -> str:
    return str(Path(jobsched.__file__).resolve().parent.parent)


def server_pid(home: Path) -> int | None:
    """The pid of the server running for ``home``, or None."""
    try:
        pid = int((home / PID_FILE).read_text().strip())
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = " ".join(proc.cmdline())
    except (FileNotFoundError, ValueError, psutil.Error):
        return None
    return pid if "jobsched" in cmdline and "server" in cmdline else None


@contextmanager
def autostart_lock(home: Path) -> Iterator[None]:
    """Serialises clients that autostart a server for the same home at the same moment."""
    ensure_home(home)
    fd = os.open(home / "autostart.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def spawn(home: Path, port: int, host: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    """Start ``jobsched server`` for ``home`` detached from this process (own session), with its
    output appended to ``home/server.log``. The caller waits for it to answer."""
    ensure_home(home)
    env = dict(os.environ)
    # The child imports the same jobsched as this process, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "jobsched.cli.main", "server", "--home", str(home),
            "--host", host, "--port", str(port)]
    with open(home / LOG_FILE, "ab") as logf:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, cwd=str(home), env=env, close_fds=True)


def log_tail(home: Path, lines: int = 20) -> str:
    try:
        return "\n".join((home / LOG_FILE).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def stop(home: Path, timeout: float = 15.0) -> int | None:
    """Stop the server for ``home``: SIGTERM, wait up to ``timeout`` s, then SIGKILL.
    Returns the pid stopped, or None if none was running."""
    pid = server_pid(home)
    if pid is None:
        return None
    proc = psutil.Process(pid)
    try:
        proc.terminate()
        proc.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    except psutil.NoSuchProcess:
        pass
    return pid
