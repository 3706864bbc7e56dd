"""Right-sizing benchmark: OOM kills, crash loops, wasted replica-hours and memory slack of four
sizing strategies on one synthetic workload (side by side, one run), plus the speed of the pure
decision functions and of the provisioner/consolidator.

    python benchmarks/bench_rightsizing.py [--jobs 500] [--seeds 0 1 2] [--pods PODS.csv] [--zoo ZOO.json]

Prints a table and the JSON; writes benchmarks/out/rightsizing.json. True peaks come from
benchmarks/data/memory_zoo.json when it exists; otherwise the output says SYNTHETIC.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobsched.core import NodeTable, PodGroup, RunningGang  # noqa: E402
from jobsched.core.gang import Assignment  # noqa: E402
from jobsched.rightsizing.consolidator import consolidate  # noqa: E402
from jobsched.rightsizing.history import recommend  # noqa: E402
from jobsched.rightsizing.policy import admission_memory, next_attempt_memory  # noqa: E402
from jobsched.rightsizing.pools import InstanceType  # noqa: E402
from jobsched.rightsizing.provisioner import plan  # noqa: E402
from jobsched.sim.memory import format_table, run_memory_mode  # noqa: E402
from jobsched.spec.resources import Resources  # noqa: E402

GiB = 2**30


def per_call_us(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def timings() -> dict[str, Any]:
    peaks = [int(x) for x in np.random.default_rng(0).uniform(1, 8, 20) * GiB]
    out: dict[str, Any] = {
        "admission_memory_us": per_call_us(lambda: admission_memory(
            declared=4 * GiB, estimate=6 * GiB, recommended=5 * GiB, margin=0.15, pinned_limit=None,
            auto=True, cap=64 * GiB), 20_000),
        "next_attempt_memory_us": per_call_us(lambda: next_attempt_memory(
            reason="OOMKilled", previous=4 * GiB, observed_peak=4 * GiB, margin=0.15, growth=1.5,
            cap=64 * GiB, max_memory=None), 20_000),
        "recommend_20_peaks_us": per_call_us(lambda: recommend(peaks), 5_000),
    }
    types = [InstanceType(name=n, cpu=c, memory=f"{m}Gi", gpus=g, gpu_model=mod, price_per_hour=p,
                          max_count=40)
             for n, c, m, g, mod, p in [("m6i.2xl", 8, 32, 0, "", 0.384), ("r6i.8xl", 32, 256, 0, "", 2.016),
                                        ("g5.12xl", 48, 192, 4, "A10G", 5.672),
                                        ("p4d.24xl", 96, 1152, 8, "A100", 32.77)]]
    rng = np.random.default_rng(1)
    for n_gangs in (5, 30, 100):
        gangs = []
        for i in range(n_gangs):
            g = int(rng.choice([0, 0, 1, 2, 4]))
            gangs.append(PodGroup(f"j{i}", Resources(int(rng.choice([1000, 4000, 8000])),
                                                     int(rng.choice([4, 16, 30, 60])) * GiB, g, 1000 if g else 0),
                                  replicas=int(rng.choice([1, 2, 4]))))
        t0 = time.perf_counter()
        p = plan(gangs, types, {})
        out[f"plan_{n_gangs}_gangs"] = {"seconds": time.perf_counter() - t0, "nodes": p.nodes,
                                        "cost_per_hour": round(p.cost_per_hour, 3), "optimal": p.optimal}
    n = 200
    table = NodeTable.from_arrays([f"n{i}" for i in range(n)], [32000] * n, [128 * GiB] * n, [0] * n,
                                  price=[1.0] * n)
    running = [RunningGang(f"g{i}", Resources(4000, 8 * GiB), (Assignment(0, f"n{i % n}", -1),
                                                                Assignment(1, f"n{(i + 1) % n}", -1)))
               for i in range(0, 300)]
    t0 = time.perf_counter()
    c = consolidate(table, running, {}, now=0.0, ttl=300.0)
    out["consolidate_200_nodes_300_gangs"] = {"seconds": time.perf_counter() - t0, "deleted": len(c.delete),
                                              "moves": len(c.moves)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pods", default=None, help="openb pods CSV: GPU counts and durations from the trace")
    ap.add_argument("--zoo", default=None, help="measured zoo JSON (default benchmarks/data/memory_zoo.json)")
    ap.add_argument("--no-timings", action="store_true")
    a = ap.parse_args()
    result = run_memory_mode(a.pods, a.seeds, jobs=a.jobs, zoo=a.zoo)
    print(f"workload: {a.jobs} jobs x seeds {a.seeds}; peaks: {result['workload']['peaks']}")
    print("means over seeds (2-core CPU machine; the simulation is deterministic per seed)\n")
    print(format_table(result))
    st = result["strategies"]
    base = st["static"]
    print("\njobsched vs static: OOM kills x{:.3f}, wasted replica-h x{:.3f}, slack GiB-h x{:.3f}".format(
        st["jobsched"]["oom_kills"] / max(base["oom_kills"], 1),
        st["jobsched"]["wasted_replica_hours"] / max(base["wasted_replica_hours"], 1e-9),
        st["jobsched"]["slack_gib_hours"] / max(base["slack_gib_hours"], 1e-9)))
    out = {k: v for k, v in result.items() if k != "per_seed"}
    if not a.no_timings:
        out["timings"] = timings()
    text = json.dumps(out, indent=2, default=str)
    print(text)
    dest = ROOT / "benchmarks" / "out"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "rightsizing.json").write_text(text)


if __name__ == "__main__":
    main()
