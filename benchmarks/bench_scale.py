"""Scale of the scheduling core: placements per second of ``Scheduler.cycle`` and resident memory.

    python benchmarks/bench_scale.py [--nodes 1000,5000,30000] [--pods 50000] [--memory-jobs 100000]

Synthetic cluster: 8-GPU nodes (96 cores, 768 GiB) and, one in five, CPU-only nodes (64 cores). Pending
pods: 60 % CPU-only, 25 % GPU shares (0.1-0.5 GPU), 15 % whole GPUs (1, 2, 4 or 8); sized so that every
pod fits at 5,000 nodes, as in kube-scheduler's SchedulingBasic benchmark (5,000 nodes, 50,000 pods;
its threshold is about 810 pods/s). One cycle places the whole pending list in one process.
Prints one JSON object (placements/s per size and policy, RSS at --memory-jobs pending jobs).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")
KUBE_SCHEDULER_REFERENCE = {"nodes": 5000, "pods": 50000, "pods_per_s": 810}
GI = 1 << 30


def synthetic_nodes(n: int):  # type: ignore[no-untyped-def]
    from jobsched.core.nodes import NodeTable

    gpu = [0 if i % 5 == 4 else 8 for i in range(n)]
    return NodeTable.from_arrays(
        [f"node-{i:05d}" for i in range(n)],
        [64000 if g == 0 else 96000 for g in gpu],
        [256 * GI if g == 0 else 768 * GI for g in gpu],
        gpu,
        ["A100" if g else "" for g in gpu],
        price=[3.0 if g == 0 else 30.0 for g in gpu],
    )


def synthetic_pods(n: int, seed: int = 0) -> list:  # type: ignore[type-arg]
    import numpy as np

    from jobsched.core.gang import PodGroup
    from jobsched.spec.resources import Resources

    rng = np.random.default_rng(seed)
    kind = rng.random(n)
    out = []
    for i in range(n):
        if kind[i] < 0.60:
            r = Resources(int(rng.choice([250, 500, 1000])), int(rng.choice([1, 2])) * GI)
        elif kind[i] < 0.85:
            r = Resources(1000, 2 * GI, 1, int(rng.choice([100, 200, 250, 500])))
        else:
            g = int(rng.choice([1, 1, 1, 2, 4, 8]))
            r = Resources(1000 * g, 4 * GI * g, g, 1000)
        out.append(PodGroup(f"default/pod-{i}", r, created=float(i)))
    return out


def placements_per_s(n_nodes: int, n_pods: int, policy: str) -> dict[str, float]:
    from jobsched.core.cycle import Admit, Scheduler
    from jobsched.core.snapshot import Snapshot

    snap = Snapshot.build(synthetic_nodes(n_nodes))
    pods = synthetic_pods(n_pods)
    sched = Scheduler(policy, seed=0, preemption=False)
    t0 = time.perf_counter()
    res = sched.cycle(snap, pods, now=0.0)
    dt = time.perf_counter() - t0
    placed = len(res.of(Admit))
    return {"nodes": n_nodes, "pods": n_pods, "policy": policy, "placed": placed, "seconds": round(dt, 2),
            "placements_per_s": round(placed / dt, 1)}


def memory_at(n_jobs: int, n_nodes: int) -> dict[str, float]:
    import psutil

    from jobsched.core.cycle import Scheduler
    from jobsched.core.snapshot import Snapshot

    proc = psutil.Process()
    gc.collect()
    base = proc.memory_info().rss
    snap = Snapshot.build(synthetic_nodes(n_nodes))
    pods = synthetic_pods(n_jobs, seed=1)
    held = proc.memory_info().rss
    t0 = time.perf_counter()
    Scheduler("jobsched", preemption=False).cycle(snap, pods, now=0.0)
    dt = time.perf_counter() - t0
    after = proc.memory_info().rss
    return {"pending_jobs": n_jobs, "nodes": n_nodes, "rss_mib_process": round(after / 2**20, 1),
            "rss_mib_jobs_and_snapshot": round((held - base) / 2**20, 1),
            "rss_mib_after_cycle_over_baseline": round((after - base) / 2**20, 1), "cycle_seconds": round(dt, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", default="1000,5000,30000")
    ap.add_argument("--pods", type=int, default=50000)
    ap.add_argument("--policies", default="jobsched,bestfit")
    ap.add_argument("--memory-jobs", type=int, default=100000)
    ap.add_argument("--memory-nodes", type=int, default=5000)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.memory_only:  # a fresh process, so that earlier runs' freed memory does not hide growth
        print(json.dumps(memory_at(a.memory_jobs, a.memory_nodes)))
        return
    load0 = [round(x, 1) for x in os.getloadavg()]  # other work on the machine slows every figure
    runs = []
    for n in (int(x) for x in a.nodes.split(",")):
        for pol in a.policies.split(","):
            r = placements_per_s(n, a.pods, pol)
            print(f"{pol:>9} {n:>6} nodes, {a.pods} pods: {r['placements_per_s']:>8.1f} placements/s "
                  f"({r['placed']} placed in {r['seconds']} s)", file=sys.stderr, flush=True)
            runs.append(r)
    mem = None
    if a.memory_jobs:
        import subprocess

        proc = subprocess.run([sys.executable, __file__, "--memory-only", "--memory-jobs", str(a.memory_jobs),
                               "--memory-nodes", str(a.memory_nodes)], check=True, capture_output=True, text=True)
        mem = json.loads(proc.stdout)
    five = [r for r in runs if r["nodes"] == 5000 and r["policy"] == "jobsched"]
    out = {"machine": f"{os.cpu_count()} CPUs", "load_average_1_5_15": [round(x, 1) for x in os.getloadavg()],
           "load_average_at_start": load0, "throughput": runs, "memory": mem,
           "kube_scheduler_reference": KUBE_SCHEDULER_REFERENCE,
           "placements_per_s_5000_nodes": five[0]["placements_per_s"] if five else None}
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
