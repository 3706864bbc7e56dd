"""Load on a real server over loopback: submits from many clients, listing, cancelling, and a start
that hangs (head-of-line blocking).

    python benchmarks/bench_load.py [--jobs 2000] [--clients 32] [--slow-start 10]
                                    [--server-path /path/to/another/checkout] [--label after]

Runs ``jobsched.server.main.serve`` in a child process (imported from ``--server-path``, default this
checkout, so the same script measures an older checkout), on a fresh home under /tmp, and drives it
with plain httpx clients (threads):

1. **load**: a queue ``hold`` whose quota one running ``sleep`` fills, so submitted jobs stay Pending
   and nothing else runs; ``--jobs`` tiny jobs from ``--clients`` clients: submits/s, p50/p99 submit
   latency; meanwhile a sampler times ``status``, ``list`` (first page) and ``cancel``. Then lost
   (acknowledged, not listed), duplicated (listed twice) and stuck (not Cancelled after every job
   is cancelled) counts; ``list`` first-page and all-pages latency and bytes, ``jobsched list``
   (the CLI process) with that many jobs, and the server's CPU while they wait (no requests).
2. **head-of-line**: a fresh server whose backend's start of ``slow-*`` jobs sleeps ``--slow-start``
   seconds first (the only double: that slowness; the rest is the real local backend). The time
   from submit to Succeeded of an unrelated ``true`` job, without and with a slow start in flight,
   and status/list/cancel latencies while the slow start is pending.

Prints one JSON object and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def serve_child(home: str, port: int, slow: float) -> None:
    """The server process: the real server, the local backend with slow starts for ``slow-*``."""
    from jobsched.backends.local.backend import LocalBackend
    from jobsched.server import main, runtime

    class SlowStart(LocalBackend):
        def start(self, gang: Any) -> Any:
            if slow and gang.job_key.split("/", 1)[1].startswith("slow-"):
                time.sleep(slow)
            return super().start(gang)

    runtime.make_backend = lambda name, **o: SlowStart(**o)  # type: ignore[assignment,misc]
    main.configure_logging()
    main.serve(Path(home), "127.0.0.1", port)


# -- client side --------------------------------------------------------------------------------
def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def job(name: str, argv: list[str], queue: str = "default", cpu: str = "100m") -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"queue": queue, "maxRetries": 0, "template": {
                "command": argv, "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}}}


class Server:
    def __init__(self, server_path: Path, slow: float) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="jobsched-bench-load-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(server_path), "JOBSCHED_HOME": str(self.home)}
        self.log = open(self.home / "bench-server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(self.home), str(self.port),
                                      str(slow)], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code in (200, 401):
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {(self.home / 'bench-server.log').read_text()[-2000:]}")
            time.sleep(0.1)
        self.token = (self.home / "token").read_text().strip()
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def client(self) -> Any:
        import httpx

        return httpx.Client(base_url=self.url, headers=self.headers, timeout=120)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


def timed(fn: Any, *a: Any, **kw: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = fn(*a, **kw)
    return time.perf_counter() - t0, r


def wait_phase(c: Any, name: str, phases: set[str], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        st = c.get(f"/v1/jobs/default/{name}").json()
        if st.get("phase") in phases:
            return dict(st)
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} still {st.get('phase')} after {timeout} s: {st.get('message')}")
        time.sleep(0.02)


def all_names(c: Any) -> list[str]:
    names: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"continue": token} if token else {})}
        body = c.get("/v1/jobs", params=params).json()
        names += [j["name"] for j in body["items"]]
        token = body.get("continue")
        if not token:  # an older server has no pages: everything at once
            return names


def count(c: Any, phase: str) -> int:
    body = c.get("/v1/jobs", params={"phase": phase, "limit": 1}).json()
    if "remaining" not in body:  # an older server: no pages, every job at once
        return len(c.get("/v1/jobs", params={"phase": phase}).json()["items"])
    return len(body["items"]) + int(body["remaining"])


class Sampler(threading.Thread):
    """Times status, list (first page) and cancel round-robin until stopped."""

    def __init__(self, srv: Server, status_of: str, cancel_targets: list[str]) -> None:
        super().__init__(daemon=True)
        self.srv, self.status_of, self.targets = srv, status_of, list(cancel_targets)
        self.lat: dict[str, list[float]] = {"status": [], "list": [], "cancel": []}
        self.halt = threading.Event()

    def run(self) -> None:
        with self.srv.client() as c:
            while not self.halt.is_set():
                self.lat["status"].append(timed(c.get, f"/v1/jobs/default/{self.status_of}")[0])
                self.lat["list"].append(timed(c.get, "/v1/jobs")[0])
                if self.targets:
                    self.lat["cancel"].append(timed(c.post, f"/v1/jobs/default/{self.targets.pop()}/cancel")[0])
                self.halt.wait(0.05)

    def summary(self) -> dict[str, Any]:
        self.halt.set()
        self.join()
        return {k: {"n": len(v), "p50_s": round(pct(v, 50), 3), "p99_s": round(pct(v, 99), 3)}
                for k, v in self.lat.items()}


def hold_queue(c: Any) -> None:
    q = {"apiVersion": "jobsched.io/v1alpha1", "kind": "Queue", "metadata": {"name": "hold"},
         "spec": {"quota": {"cpu": "100m"}}}
    assert c.put("/v1/queues", json=q).status_code == 200
    assert c.post("/v1/jobs", json=job("blocker", ["sleep", "3600"], queue="hold")).status_code == 201
    wait_phase(c, "blocker", {"Running"})


def load(server_path: Path, n_jobs: int, n_clients: int) -> dict[str, Any]:
    srv = Server(server_path, 0)
    try:
        with srv.client() as c:
            hold_queue(c)
            for i in range(20):  # targets for the sampler's cancels
                c.post("/v1/jobs", json=job(f"victim-{i}", ["true"], queue="hold"))
        sampler = Sampler(srv, "blocker", [f"victim-{i}" for i in range(20)])
        names = [f"load-{i:05d}" for i in range(n_jobs)]
        acked: list[str] = []
        lat: list[float] = []
        errors: dict[int, int] = {}
        lock = threading.Lock()

        def worker(k: int) -> None:
            with srv.client() as c:
                for name in names[k::n_clients]:
                    dt, r = timed(c.post, "/v1/jobs", json=job(name, ["true"], queue="hold"))
                    with lock:
                        lat.append(dt)
                        if r.status_code == 201:
                            acked.append(name)
                        else:
                            errors[r.status_code] = errors.get(r.status_code, 0) + 1

        sampler.start()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(n_clients) as pool:
            list(pool.map(worker, range(n_clients)))
        wall = time.perf_counter() - t0
        during = sampler.summary()
        out: dict[str, Any] = {"jobs": n_jobs, "clients": n_clients, "submits_per_s": round(len(acked) / wall, 1),
                               "submit_p50_s": round(pct(lat, 50), 4), "submit_p99_s": round(pct(lat, 99), 4),
                               "submit_errors": errors, "during_submits": during}
        with srv.client() as c:
            listed = all_names(c)
            out["lost"] = len(set(acked) - set(listed))
            out["duplicated"] = len(listed) - len(set(listed))
            first = [timed(c.get, "/v1/jobs") for _ in range(5)]
            out["list_first_page_s"] = round(statistics.median(t for t, _ in first), 3)
            out["list_first_page_bytes"] = len(first[0][1].content)
            out["list_first_page_items"] = len(first[0][1].json()["items"])
            out["list_all_pages_s"] = round(timed(all_names, c)[0], 3)
        import psutil

        proc = psutil.Process(srv.proc.pid)  # the server's CPU with every job held Pending, no requests
        t0, cpu0 = time.perf_counter(), sum(proc.cpu_times()[:2])
        time.sleep(5)
        out["server_cpu_idle_pct"] = round(100 * (sum(proc.cpu_times()[:2]) - cpu0) / (time.perf_counter() - t0))
        env = {**os.environ, "PYTHONPATH": str(server_path), "JOBSCHED_URL": srv.url,
               "JOBSCHED_TOKEN": srv.token, "COLUMNS": "200"}
        exe = str(Path(sys.executable).parent / "jobsched")
        cli = [timed(subprocess.run, [exe, "list"], env=env, capture_output=True)[0] for _ in range(3)]
        out["cli_list_s"] = round(statistics.median(cli), 3)

        targets = [n for n in listed if n != "blocker"]  # the blocker last: it holds the others back

        def cancel_all(k: int) -> list[float]:
            with srv.client() as c:
                return [timed(c.post, f"/v1/jobs/default/{n}/cancel")[0] for n in targets[k::n_clients]]

        with ThreadPoolExecutor(n_clients) as pool:
            clat = [x for xs in pool.map(cancel_all, range(n_clients)) for x in xs]
        out["cancel_p50_s"], out["cancel_p99_s"] = round(pct(clat, 50), 4), round(pct(clat, 99), 4)
        deadline = time.monotonic() + 300
        with srv.client() as c:
            while True:
                live = sum(count(c, phase) for phase in ("Pending", "Admitted", "Running")) - 1  # the blocker
                if live <= 0 or time.monotonic() > deadline:
                    break
                time.sleep(1)
            out["stuck"] = live
            c.post("/v1/jobs/default/blocker/cancel")
            wait_phase(c, "blocker", {"Cancelled"})
        return out
    finally:
        srv.stop()


def head_of_line(server_path: Path, slow: float) -> dict[str, Any]:
    srv = Server(server_path, slow)
    try:
        with srv.client() as c:
            hold_queue(c)
            for i in range(20):
                c.post("/v1/jobs", json=job(f"victim-{i}", ["true"], queue="hold"))

            def true_job(name: str) -> float:
                t0 = time.perf_counter()
                assert c.post("/v1/jobs", json=job(name, ["true"])).status_code == 201
                st = wait_phase(c, name, {"Succeeded", "Failed"})
                assert st["phase"] == "Succeeded", st
                return time.perf_counter() - t0

            base = [true_job(f"base-{i}") for i in range(3)]
            assert c.post("/v1/jobs", json=job("slow-x", ["sleep", "600"])).status_code == 201
            wait_phase(c, "slow-x", {"Admitted", "Running"})
            sampler = Sampler(srv, "slow-x", [f"victim-{i}" for i in range(20)])
            sampler.start()
            with_slow = true_job("during")
            slow_phase = c.get("/v1/jobs/default/slow-x").json()["phase"]
            wait_phase(c, "slow-x", {"Running"}, timeout=slow + 60)
            during = sampler.summary()
            c.post("/v1/jobs/default/slow-x/cancel")
            c.post("/v1/jobs/default/blocker/cancel")
            wait_phase(c, "slow-x", {"Cancelled"})
            wait_phase(c, "blocker", {"Cancelled"})
        return {"slow_start_s": slow, "true_job_alone_s": round(statistics.median(base), 3),
                "true_job_with_slow_start_s": round(with_slow, 3),
                "slow_job_phase_when_true_job_done": slow_phase, "during_slow_start": during}
    finally:
        srv.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--slow-start", type=float, default=10.0)
    ap.add_argument("--server-path", type=Path, default=ROOT)
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--skip-load", action="store_true")
    a = ap.parse_args()
    res: dict[str, Any] = {"label": a.label, "server_path": str(a.server_path)}
    res["head_of_line"] = head_of_line(a.server_path.resolve(), a.slow_start)
    if not a.skip_load:
        res["load"] = load(a.server_path.resolve(), a.jobs, a.clients)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
