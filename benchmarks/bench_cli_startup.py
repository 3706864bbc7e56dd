"""Client start-up: the median wall time of ``jobsched list`` (a fresh interpreter each run, the
table rendered to a pipe) against a running server holding N jobs. Not a test: it prints figures.

    python benchmarks/bench_cli_startup.py [--runs 20] [--jobs 50] [--tree DIR] [--command "list"]

``--tree`` runs the client of another checkout (e.g. the code before a change) against the same
server, so two trees can be compared on one machine in one go: ``--tree /path/a --tree /path/b``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}")
        try:
            httpx.get(url + "/healthz", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("server did not come up")


def populate(env: dict[str, str], n: int) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.update(env)
    from jobsched.sdk.client import Client

    c = Client()
    for i in range(n):
        c.submit({"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
                  "metadata": {"name": f"bench-{i:04d}"},
                  "spec": {"template": {"command": ["true"], "resources": {"requests": {"memory": "16Mi"}}}}})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and any(not j.phase.is_terminal() for j in c.list()):
        time.sleep(0.5)


def median_ms(tree: Path, argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """Median wall time, its minimum, and the median CPU time (user + system) of the child: on a
    shared machine the CPU figure is the steadier one."""
    env = {**env, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "jobsched.cli.main", *argv]
    subprocess.run(cmd, env=env, cwd=tree, capture_output=True, check=True)  # warm the page cache and .pyc files
    wall, cpu = [], []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=tree, stdout=subprocess.DEVNULL, check=True)
        wall.append((time.perf_counter() - t0) * 1000)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--tree", type=Path, action="append", help="checkout whose client to time (repeatable)")
    ap.add_argument("--command", default="list", help="the jobsched arguments to time")
    args = ap.parse_args()
    trees = args.tree or [ROOT]
    with tempfile.TemporaryDirectory(prefix="jobsched-bench-") as home:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "JOBSCHED_HOME": home, "JOBSCHED_URL": url, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen([sys.executable, "-m", "jobsched.cli.main", "server", "--home", home,
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            wait_up(url, server)
            populate(env, args.jobs)
            py = subprocess.run([sys.executable, "-c", "import sys; print(sys.version.split()[0])"],
                                capture_output=True, text=True).stdout.strip()
            print(f"jobsched {args.command} against a local server with {args.jobs} jobs, {args.runs} runs "
                  f"each, Python {py}, {os.cpu_count()} CPUs")
            for tree in trees:
                med, lo, cpu = median_ms(tree, shlex.split(args.command), env, args.runs)
                print(f"  {str(tree):<32} wall median {med:6.0f} ms (min {lo:4.0f})   CPU median {cpu:5.0f} ms")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
