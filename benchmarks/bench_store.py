"""What durable acknowledgements cost: JobService.submit (validation + one store transaction) per
second with SQLite ``synchronous=NORMAL`` (before) and ``FULL`` (now), sequential and from 8
threads, on the file system of ``--dir``; and the time of one online backup of the result.

    python benchmarks/bench_store.py [--jobs 400] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jobsched.server.runtime import Runtime
from jobsched.store.backup import make_backup


def manifest(name: str) -> dict:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"template": {"command": [sys.executable, "-c", "pass"],
                                  "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}}}}


def run(sync: str, n: int, threads: int, base: Path) -> tuple[float, float, float, Runtime]:
    home = Path(tempfile.mkdtemp(dir=base)) / "home"
    rt = Runtime(home, backup_interval=0)  # not started: only the submit path is measured
    rt.store._conn.execute(f"PRAGMA synchronous={sync}")
    lat: list[float] = []

    def one(i: int) -> None:
        t = time.perf_counter()
        rt.service.submit(manifest(f"{sync.lower()}-{threads}-{i}"))
        lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, range(n)))
    wall = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100)
    return n / wall, q[49] * 1e3, q[98] * 1e3, rt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=400)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    a = ap.parse_args()
    print(f"{a.jobs} submits per row, store on {a.dir}")
    print(f"{'synchronous':12s} {'threads':>7s} {'submits/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for threads in (1, 8):
        for sync in ("NORMAL", "FULL"):
            rate, p50, p99, rt = run(sync, a.jobs, threads, a.dir)
            print(f"{sync:12s} {threads:7d} {rate:10.0f} {p50:8.2f} {p99:8.2f}")
            if sync == "FULL" and threads == 8:
                t = time.perf_counter()
                path = make_backup(rt.store_path, rt.home)
                print(f"online backup of {a.jobs} jobs ({path.stat().st_size >> 10} KiB): "
                      f"{(time.perf_counter() - t) * 1e3:.1f} ms")
            rt.stop()


if __name__ == "__main__":
    main()
