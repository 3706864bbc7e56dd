"""Cost of taints/tolerations and node affinity in the scheduling core (core/constraints.py).

    python benchmarks/bench_constraints.py [--nodes 1000,5000] [--pods 5000] [--repeat 3]

bench_scale.py's synthetic cluster and pending pods, one ``Scheduler.cycle`` each, side by side in
one process: (plain) no taints and no constraints; (tolerated) every GPU node tainted and every pod
tolerating everything: the same placements as plain, so the difference is the filter's own cost;
(tainted) every GPU node tainted ``nvidia.com/gpu=present:NoSchedule`` and labelled with one of 4
zones, every GPU pod tolerating the taint and half of them asking for 2 of the zones by required
node affinity, CPU pods neither (which narrows their candidates: it may well be faster than plain).
Prints one JSON object: placements/s of each, best of --repeat, and the ratios to plain.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("OMP_NUM_THREADS", "1")


def tainted(table):  # type: ignore[no-untyped-def]
    from jobsched.core.nodes import NodeTable

    gpu = [int(g) > 0 for g in table.gpu_count]
    labels = [{**lb, "zone": f"z{i % 4}"} if g else dict(lb) for i, (lb, g) in enumerate(zip(table.labels, gpu, strict=True))]
    return NodeTable.from_arrays(table.names, table.cpu_cap, table.mem_cap, table.gpu_count, table.gpu_models_of(),
                                 labels, table.price, taints=[(("nvidia.com/gpu", "present", "NoSchedule"),) if g
                                                              else () for g in gpu])


def tolerate_all(pods):  # type: ignore[no-untyped-def]
    from jobsched.core.constraints import from_template

    c = from_template([{"operator": "Exists"}], None)
    return [dataclasses.replace(p, constraints=c) for p in pods]


def constrained(pods):  # type: ignore[no-untyped-def]
    from jobsched.core.constraints import from_template

    tol = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z0", "z1"]}]}]}}}
    out = []
    for i, p in enumerate(pods):
        if p.request.gpus:
            p = dataclasses.replace(p, constraints=from_template(tol, aff if i % 2 else None))
        out.append(p)
    return out


def run(table, pods, repeat: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from jobsched.core.cycle import Admit, Scheduler
    from jobsched.core.snapshot import Snapshot

    best, placed = float("inf"), 0
    for _ in range(repeat):
        snap = Snapshot.build(table.copy())
        t0 = time.perf_counter()
        res = Scheduler("jobsched", seed=0, preemption=False).cycle(snap, pods, now=0.0)
        best = min(best, time.perf_counter() - t0)
        placed = len(res.of(Admit))
    return {"placed": placed, "seconds": round(best, 3), "placements_per_s": round(placed / best, 1)}


def main() -> None:
    from bench_scale import synthetic_nodes, synthetic_pods

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", default="1000,5000")
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    load0 = [round(x, 1) for x in os.getloadavg()]
    rows = []
    for n in (int(x) for x in a.nodes.split(",")):
        plain_t, pods = synthetic_nodes(n), synthetic_pods(a.pods)
        plain = run(plain_t, pods, a.repeat)
        tolerated = run(tainted(plain_t), tolerate_all(pods), a.repeat)
        taint = run(tainted(plain_t), constrained(pods), a.repeat)
        rows.append({"nodes": n, "pods": a.pods, "plain": plain, "tolerated": tolerated, "tainted": taint,
                     "tolerated_over_plain": round(tolerated["placements_per_s"] / plain["placements_per_s"], 2),
                     "tainted_over_plain": round(taint["placements_per_s"] / plain["placements_per_s"], 2)})
        print(f"{n:>6} nodes: plain {plain['placements_per_s']:>8.1f}/s, tolerated {tolerated['placements_per_s']:>8.1f}/s, "
              f"tainted+tolerations+affinity {taint['placements_per_s']:>8.1f}/s", file=sys.stderr, flush=True)
    print(json.dumps({"machine": f"{os.cpu_count()} CPUs", "load_average_at_start": load0,
                      "load_average_1_5_15": [round(x, 1) for x in os.getloadavg()], "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
