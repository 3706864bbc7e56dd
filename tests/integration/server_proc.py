"""A real ``jobsched server`` process on loopback for store-damage and disk-full tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from jobsched import Client

ROOT = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), e.get("PYTHONPATH")) if p)
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def argv(home: Path, port: int, *flags: str) -> list[str]:
    return [sys.executable, "-m", "jobsched.cli.main", "server", "--home", str(home), "--host", "127.0.0.1",
            "--port", str(port), *flags]


def refused(home: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """Run ``jobsched server`` expecting it to exit by itself (a refusal)."""
    return subprocess.run(argv(home, free_port(), *flags), env=env(), capture_output=True, text=True,
                          timeout=120)


class Server:
    def __init__(self, home: Path, *flags: str) -> None:
        self.home, self.port = home, free_port()
        self.out = home.parent / f"server-{self.port}.out"
        self.proc = subprocess.Popen(argv(home, self.port, *flags), env=env(), stdout=open(self.out, "wb"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.output()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no server at {self.url}: {self.output()}") from None
                time.sleep(0.1)
        self.client = Client(url=self.url, token=(home / "token").read_text().strip(), autostart=False)

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def healthz(self) -> httpx.Response:
        token = (self.home / "token").read_text().strip()
        return httpx.get(f"{self.url}/healthz", headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.client.close()


def wait_until(cond: Callable[[], object], what: str, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def damage(db: Path, how: str) -> None:
    """Damage a store file: ``deleted``, ``empty``, ``truncated`` (half), ``random bytes`` or
    ``garbage inside`` (a valid header, the pages after it random)."""
    size = db.stat().st_size
    if how == "deleted":
        db.unlink()
    elif how == "empty":
        db.write_bytes(b"")
    elif how == "truncated":
        os.truncate(db, size // 2)
    elif how == "random bytes":
        db.write_bytes(os.urandom(size))
    elif how == "garbage inside":  # a valid header, the pages after it overwritten
        with open(db, "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(size - 4096))
    else:
        raise ValueError(f"damage: unknown kind {how!r}")


def fill(path: Path) -> Path:
    """Fill the file system holding ``path`` to the last block; returns the filler file."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    return filler
