"""A workflow fan-out against a real server on loopback: server RSS and API latency while it runs.

    python benchmarks/bench_fanout.py [--items 10000] [--max-live-steps 500] [--duration 60]
                                      [--root PATH]   # the source tree to run (default: this one)

Starts ``jobsched server`` in a fresh home, submits one Argo Workflow whose single step loops
``withSequence: {count: ITEMS}`` over a ``true`` container, then for DURATION seconds samples the
server's RSS (psutil) and the latency of ``GET /v1/workflows/{ns}/{name}`` (workflow status),
``GET /v1/workflows`` (list) and ``GET /v1/jobs/{ns}/{name}`` (a job's status, an unrelated job).
Then it cancels the workflow (latency; step jobs created after the cancel was answered) and sends
SIGTERM (seconds until the server exits; SIGKILL after 60 s). Step jobs are counted in the state
database (read-only SQLite). Prints a table. ``--root`` runs another checkout (e.g. the code before a
change) with the same settings; limits are passed as environment variables, which older code ignores.
A guard kills a server that grows past --rss-guard-mb.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]


def workflow(items: int) -> dict[str, object]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "fanout"},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "steps": [[{"name": "s", "template": "t",
                                             "withSequence": {"count": str(items)}}]]},
                {"name": "t", "container": {"image": "alpine", "command": ["true"]}}]}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def step_jobs(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
            return int(c.execute("SELECT count(*) FROM jobs WHERE name LIKE 'fanout-%'").fetchone()[0])
    except sqlite3.Error:
        return -1


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Prober(threading.Thread):
    """Times one GET in a loop; a request that fails or times out counts at its timeout."""

    def __init__(self, http: httpx.Client, path: str, stop: threading.Event, timeout: float) -> None:
        super().__init__(daemon=True)
        self.http, self.path, self.stop, self.timeout = http, path, stop, timeout
        self.times: list[float] = []
        self.failures = 0
        self.in_flight: float | None = None  # start of a request not answered yet

    def run(self) -> None:
        while not self.stop.is_set():
            t = self.in_flight = time.monotonic()
            try:
                self.http.get(self.path, timeout=self.timeout).raise_for_status()
            except httpx.HTTPError:
                self.failures += 1
            self.in_flight = None
            self.times.append(time.monotonic() - t)
            self.stop.wait(0.2)

    def finish(self) -> None:
        """Count a request still unanswered at the end at its age, as a failure."""
        t = self.in_flight
        if t is not None:
            self.times.append(time.monotonic() - t)
            self.failures += 1


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # `finally` stops the server


def main() -> None:
    signal.signal(signal.SIGTERM, _exit)
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--max-live-steps", type=int, default=500)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--rss-guard-mb", type=float, default=4000.0)
    ap.add_argument("--timeout", type=float, default=30.0, help="per request")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-fanout-")) / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    env.update(PYTHONPATH=str(args.root), JOBSCHED_MAX_LOOP_ITEMS=str(max(args.items, 1)),
               JOBSCHED_MAX_LIVE_STEPS=str(args.max_live_steps))
    log = open(home.parent / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "jobsched.cli.main", "server", "--home", str(home),
                             "--port", str(port)], env=env, stdout=log, stderr=log, cwd=home.parent)
    url = f"http://127.0.0.1:{port}"
    server = psutil.Process(proc.pid)
    rows: list[tuple[str, str]] = []
    try:
        for _ in range(600):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        token = (home / "token").read_text().strip()
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
        http.post("/v1/jobs", json={
            "apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "probe"},
            "spec": {"template": {"command": ["sleep", "600"],
                                  "resources": {"requests": {"memory": "64Mi"}}}}},
                  timeout=60).raise_for_status()
        time.sleep(1.0)
        rss0 = server.memory_info().rss
        t0 = time.monotonic()
        r = http.post("/v1/workflows", json={"manifest": workflow(args.items)}, timeout=600)
        submit_s = time.monotonic() - t0
        rows.append(("submit (HTTP status, s)", f"{r.status_code}, {submit_s:.2f}"))
        stop = threading.Event()
        probes = {name: Prober(http, path, stop, args.timeout) for name, path in (
            ("workflow status", "/v1/workflows/default/fanout"), ("workflow list", "/v1/workflows"),
            ("job status", "/v1/jobs/default/probe"))}
        for pr in probes.values():
            pr.start()
        rss: list[int] = []
        end = time.monotonic() + args.duration
        while time.monotonic() < end and proc.poll() is None:
            rss.append(server.memory_info().rss)
            if rss[-1] > args.rss_guard_mb * 2**20:
                rows.append(("RSS guard", f"killed at {rss[-1] / 2**20:.0f} MB"))
                proc.kill()
                break
            time.sleep(0.5)
        stop.set()
        for pr in probes.values():
            pr.join(1.0)
            pr.finish()
        db = home / "state.db"
        rows.append(("server RSS before / peak (MB)",
                     f"{rss0 / 2**20:.0f} / {max(rss, default=rss0) / 2**20:.0f}"))
        rows.append((f"step jobs created in {args.duration:.0f} s", str(step_jobs(db))))
        for name, pr in probes.items():
            rows.append((f"{name} p50 / p99 / max (s), failures",
                         f"{statistics.median(pr.times) if pr.times else float('nan'):.3f} / "
                         f"{p(pr.times, 0.99):.3f} / {max(pr.times, default=float('nan')):.3f}, "
                         f"{pr.failures} of {len(pr.times)}"))
        if proc.poll() is None:
            t = time.monotonic()
            try:
                r = http.post("/v1/workflows/default/fanout/cancel", timeout=args.timeout)
                ack = f"{time.monotonic() - t:.3f} (HTTP {r.status_code})"
            except httpx.HTTPError as e:
                ack = f"no answer in {args.timeout:.0f} s ({type(e).__name__})"
            at_ack = step_jobs(db)
            phase, until = "?", time.monotonic() + 20
            while time.monotonic() < until:  # up to ~20 s for the workflow to end
                try:
                    phase = http.get("/v1/workflows/default/fanout", timeout=5).json()["phase"]
                except (httpx.HTTPError, ValueError, KeyError):
                    phase = "?"
                if phase in ("Failed", "Succeeded", "Error"):
                    break
                time.sleep(0.1)
            time.sleep(3.0)  # then watch for jobs created after the cancel was answered
            rows.append(("cancel answered in (s)", ack))
            rows.append(("workflow phase after cancel", phase))
            rows.append(("step jobs created after the cancel answer (3 s later)", str(step_jobs(db) - at_ack)))
            try:
                http.post("/v1/jobs/default/probe/cancel", timeout=args.timeout)
            except httpx.HTTPError:
                pass
            t = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
                rows.append(("SIGTERM to exit (s)", f"{time.monotonic() - t:.1f}"))
            except subprocess.TimeoutExpired:
                rows.append(("SIGTERM to exit (s)", "still running after 60 s (SIGKILL)"))
                rows.append(("step jobs created after SIGTERM", str(step_jobs(db) - at_ack)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for c in psutil.process_iter(["cmdline"]):  # the probe job's shim (this run's home) outlives
            if f"{home}/runs/default__probe" in " ".join(c.info["cmdline"] or []):  # a killed server
                c.terminate()
        log.close()
    width = max(len(k) for k, _ in rows)
    print(f"fan-out of {args.items} `true` steps, max-live-steps {args.max_live_steps}, "
          f"root {args.root}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    main()
