"""Launch real ``python -m workers.train`` replicas with jobsched's rendezvous environment."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEP_LINE = re.compile(r"^step=(\d+) loss=([\d.]+) samples/s=([\d.]+) rank=(\d+)$", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], *, rank: int = 0, world: int = 1, port: int | None = None,
           ckpt: Path | None = None, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port or free_port()), "WORLD_SIZE": str(world), "RANK": str(rank),
           "LOCAL_RANK": str(rank), "JOBSCHED_JOB": "default/test", "JOBSCHED_ATTEMPT": "1"}
    env.pop("JOBSCHED_CHECKPOINT_DIR", None)
    if ckpt is not None:
        env["JOBSCHED_CHECKPOINT_DIR"] = str(ckpt)
    out = open(log, "w")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "workers.train", *args], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT)


def steps(text: str) -> list[tuple[int, float]]:
    return [(int(m.group(1)), float(m.group(2))) for m in STEP_LINE.finditer(text)]


def wait_for_file(directory: Path, pattern: str, proc: subprocess.Popen, timeout: float = 90) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(directory.glob(pattern))
        if found:
            return found[-1]
        if proc.poll() is not None:
            raise AssertionError(f"replica exited early with {proc.returncode}")
        time.sleep(0.1)
    raise AssertionError(f"no {pattern} in {directory} after {timeout}s")
