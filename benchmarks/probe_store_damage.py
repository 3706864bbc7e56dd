"""Probe a jobsched tree the way issue #13 did: a damaged store (deleted, empty, truncated, random
bytes, WAL deleted after kill -9), a full disk (submit, a replica flooding its log) and log writes
per byte of output. Prints one line per probe; run it on an old tree and this one to compare.

    python benchmarks/probe_store_damage.py [--root TREE]      (root: mounts a 16 MiB tmpfs)
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.server_proc import damage, fill  # noqa: E402

JOB = {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": ""},
       "spec": {"maxRetries": 0, "template": {"command": [], "resources": {"requests": {"memory": "256Mi"}}}}}


def job(name: str, code: str) -> dict:
    m = {**JOB, "metadata": {"name": name}}
    m["spec"] = {**JOB["spec"], "template": {**JOB["spec"]["template"], "command": [sys.executable, "-c", code]}}
    return m


class Srv:
    def __init__(self, root: Path, home: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
        env["PYTHONPATH"] = str(root)
        self.home, self.url = home, f"http://127.0.0.1:{self.port}"
        self.out = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "jobsched.cli.main", "server", "--home", str(home),
                                      "--port", str(self.port)], env=env, stdout=self.out, stderr=self.out)
        self.up = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                httpx.get(self.url + "/healthz", timeout=1)
                self.up = True
                break
            except httpx.TransportError:
                time.sleep(0.1)
        self.h = {"Authorization": f"Bearer {(home / 'token').read_text().strip()}"} if self.up else {}

    def text(self) -> str:
        self.out.seek(0)
        return self.out.read().decode(errors="replace")

    def refusal(self) -> str:
        rc = self.proc.wait(timeout=30)
        err = [ln for ln in self.text().splitlines() if ln.startswith(("error:", "Traceback", "sqlite3."))]
        return f"refused: exit {rc}, {'TRACEBACK' if 'Traceback' in self.text() else (err or ['?'])[0][:90]}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.h, timeout=30)

    def submit(self, m: dict) -> int:
        return httpx.post(self.url + "/v1/jobs", json=m, headers=self.h, timeout=30).status_code

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)


def state(srv: Srv) -> str:
    if not srv.up:
        return srv.refusal()
    jobs = srv.get("/v1/jobs")
    n = len(jobs.json()["items"]) if jobs.status_code == 200 else "?"
    out = f"STARTED: /healthz {srv.get('/healthz').status_code}, /v1/jobs {jobs.status_code}, {n} jobs"
    srv.stop()
    return out


def damaged(root: Path, how: str) -> str:
    home = Path(tempfile.mkdtemp()) / "home"
    srv = Srv(root, home)
    for i in range(3):
        srv.submit(job(f"j{i}", "pass"))
    srv.stop()
    damage(home / "state.db", how)
    return state(Srv(root, home))


def wal_deleted(root: Path) -> str:
    home = Path(tempfile.mkdtemp()) / "home"
    srv = Srv(root, home)
    code = srv.submit(job("acked", "pass"))
    srv.stop(signal.SIGKILL)
    os.unlink(home / "state.db-wal")
    srv = Srv(root, home)
    if not srv.up:
        return f"acked ({code}) then {srv.refusal()}"
    names = [j["metadata"]["name"] for j in srv.get("/v1/jobs").json()["items"]]
    srv.stop()
    return f"STARTED: acked job {'present' if 'acked' in names else 'LOST'} ({len(names)} jobs)"


def mount(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)]).returncode == 0


def disk_full_submit(root: Path) -> str:
    disk = Path(tempfile.mkdtemp()) / "disk"
    if not mount(disk):
        return "skipped: cannot mount a tmpfs"
    try:
        srv = Srv(root, disk / "home")
        fill(disk)
        codes = [srv.submit(job(f"j{i}", "pass  # " + "x" * 8000)) for i in range(60)]
        bad = next((c for c in codes if c != 201), None)
        body = ""
        if bad:
            i = codes.index(bad)
            (disk / "filler").unlink()
            listed = {j["metadata"]["name"] for j in srv.get("/v1/jobs").json()["items"]}
            body = f", refused job stored anyway: {'YES' if f'j{i}' in listed else 'no'}"
        srv.stop()
        return f"{codes.count(201)} acked then HTTP {bad}{body}"
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def flood(root: Path, wait: float = 60.0) -> str:
    disk = Path(tempfile.mkdtemp()) / "disk"
    if not mount(disk):
        return "skipped: cannot mount a tmpfs"
    try:
        srv = Srv(root, disk / "home")
        (disk / "ballast").write_bytes(b"\0" * (1 << 20))
        code = "import sys\nl=b'x'*1023+b'\\n'\nfor _ in range(48*1024): sys.stdout.buffer.write(l)\n"
        srv.submit(job("flood", code))
        t0 = time.monotonic()
        result = disk / "home" / "runs" / "default__flood" / "attempt-0" / "rank-0.result.json"
        while time.monotonic() - t0 < wait and not result.exists():
            time.sleep(0.2)
        exited = result.exists()
        (disk / "ballast").unlink()
        phase = "?"
        while time.monotonic() - t0 < wait + 30:
            phase = srv.get("/v1/jobs/default/flood").json()["phase"]
            if phase in ("Succeeded", "Failed", "Cancelled"):
                break
            time.sleep(0.2)
        srv.stop()
        if not exited:
            return f"replica still blocked after {wait:.0f} s (job {phase})"
        return f"replica exited, job {phase} {time.monotonic() - t0:.1f} s after submit"
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def log_bytes(root: Path) -> str:
    home = Path(tempfile.mkdtemp()) / "home"
    srv = Srv(root, home)
    srv.submit(job("out", "import sys\nfor _ in range(1024): sys.stdout.write('y'*1023+'\\n')"))
    while srv.get("/v1/jobs/default/out").json()["phase"] not in ("Succeeded", "Failed"):
        time.sleep(0.2)
    srv.stop()
    adir = home / "runs" / "default__out" / "attempt-0"
    files = [p for p in adir.iterdir() if p.suffix in (".log", ".stdout", ".stderr") and ".shim" not in p.name]
    total = sum(p.stat().st_size for p in files)
    return f"{total / (1 << 20):.2f} bytes on disk per byte of output ({', '.join(sorted(p.name for p in files))})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    root = ap.parse_args().root.resolve()
    print(f"tree: {root}")
    for how in ("deleted", "empty", "truncated", "random bytes"):
        print(f"state.db {how:14s} {damaged(root, how)}")
    print(f"WAL deleted after kill -9 {wal_deleted(root)}")
    print(f"disk full: submit         {disk_full_submit(root)}")
    print(f"disk full: flooding job   {flood(root)}")
    print(f"logs                      {log_bytes(root)}")


if __name__ == "__main__":
    main()
