"""Scale of the scheduling core: placements per second of ``Scheduler.cycle`` and resident memory.

    python benchmarks/bench_scale.py [--nodes 1000,5000,30000] [--pods 50000] [--memory-jobs 100000]
                                     [--repeat 5] [--baseline /work/main]

With ``--repeat K`` every figure is the median of K runs, each in a fresh process; with ``--baseline
DIR`` the same runs of the jobsched checkout in DIR are interleaved with this one's (before/after side
by side under the same load), and the ratios printed.

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
if "--code" in sys.argv:  # measure another checkout's core with this script (--baseline)
    sys.path.insert(0, sys.argv[sys.argv.index("--code") + 1])
else:
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
    t0, c0 = time.perf_counter(), time.process_time()
    res = sched.cycle(snap, pods, now=0.0)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    placed = len(res.of(Admit))
    return {"nodes": n_nodes, "pods": n_pods, "policy": policy, "placed": placed, "seconds": round(dt, 2),
            "cpu_seconds": round(cpu, 2), "placements_per_s": round(placed / dt, 1),
            "placements_per_cpu_s": round(placed / cpu, 1)}


def repeated(n_nodes: int, n_pods: int, policy: str, repeat: int, baseline: str | None) -> dict[str, object]:
    """Median of ``repeat`` runs, each in a fresh process; with a baseline checkout, its runs
    alternate with these so both see the same load."""
    import statistics
    import subprocess

    def one(code: str | None) -> dict[str, float]:
        cmd = [sys.executable, __file__, "--one", f"{n_nodes},{n_pods},{policy}"] + (["--code", code] if code else [])
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)  # type: ignore[no-any-return]

    runs: dict[str, list[dict[str, float]]] = {"this": [], "baseline": []}
    for _ in range(repeat):
        runs["this"].append(one(None))
        if baseline:
            runs["baseline"].append(one(baseline))
    out: dict[str, object] = {"nodes": n_nodes, "pods": n_pods, "policy": policy, "repeat": repeat,
                              "load_average_1": round(os.getloadavg()[0], 1)}
    for name, rs in runs.items():
        if rs:
            out[name] = {k: statistics.median(float(r[k]) for r in rs)
                         for k in ("placements_per_s", "placements_per_cpu_s", "seconds", "cpu_seconds")}
            out[name]["placed"] = rs[0]["placed"]  # type: ignore[index]
            out[name]["runs_placements_per_s"] = [r["placements_per_s"] for r in rs]  # type: ignore[index]
    if baseline:
        t, b = out["this"], out["baseline"]
        out["ratio_wall"] = round(t["placements_per_s"] / b["placements_per_s"], 2)  # type: ignore[index]
        out["ratio_cpu"] = round(t["placements_per_cpu_s"] / b["placements_per_cpu_s"], 2)  # type: ignore[index]
    return out


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
    ap.add_argument("--repeat", type=int, default=1, help="median of this many runs, each in a fresh process")
    ap.add_argument("--baseline", default=None, help="another checkout to measure side by side (before/after)")
    ap.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--code", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        n, p, pol = a.one.split(",")
        print(json.dumps(placements_per_s(int(n), int(p), pol)))
        return
    if a.repeat > 1 or a.baseline:
        load0 = [round(x, 1) for x in os.getloadavg()]
        res = []
        for n in (int(x) for x in a.nodes.split(",")):
            for pol in a.policies.split(","):
                res.append(repeated(n, a.pods, pol, a.repeat, a.baseline))
                print(json.dumps(res[-1]), file=sys.stderr, flush=True)
        text = json.dumps({"machine": f"{os.cpu_count()} CPUs", "load_average_at_start": load0,
                           "load_average_1_5_15": [round(x, 1) for x in os.getloadavg()], "medians": res}, indent=1)
        print(text)
        if a.out:
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(text)
        return
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
