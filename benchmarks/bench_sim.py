"""Packing-mode comparison of every placement policy on the shared openb pod lists (FGD, ATC'23).

    python benchmarks/bench_sim.py [--seeds 10] [--traces default,gpushare40,multigpu20,cpu050]

Writes benchmarks/out/sim_packing.json (per pod list: mean and spread over seeds of the GPU capacity
allocated at 90..130 % arrivals) and benchmarks/out/allocation.png, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OPENB = Path(os.environ.get("JOBSCHED_OPENB_DIR", ROOT.parent / "shared" / "data" / "openb"))
TRACES = ("default", "gpushare40", "multigpu20", "cpu050")
PUBLISHED_100 = {"fgd": 95.2, "bestfit": 92.9, "packing": 91.8, "dotprod": 90.6, "random": 86.3}


def run(seeds: int, traces: list[str], out: Path, jobs: int = 1, policies: list[str] | None = None) -> dict:
    from jobsched.sim.plot import plot_allocation
    from jobsched.sim.suite import DEFAULT_POLICIES, packing_report

    nodes = OPENB / "openb_node_list_gpu_node.csv"
    reports: dict[str, dict] = {}
    for tr in traces:
        t0 = time.perf_counter()
        rep = packing_report(nodes, OPENB / f"openb_pod_list_{tr}.csv", policies or DEFAULT_POLICIES,
                             list(range(42, 42 + seeds)), 1.3, jobs)
        rep["seconds"] = round(time.perf_counter() - t0, 1)
        reports[tr] = rep
        print_table(tr, rep)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sim_packing.json").write_text(json.dumps(reports, indent=1))
    plot_allocation(reports, out / "allocation.png")
    return reports


def print_table(trace: str, rep: dict) -> None:
    pts = ("90", "100", "110", "120", "130")
    print(f"\n{trace}: GPU allocated % of capacity vs arrived % ({len(rep['seeds'])} seeds, mean±std, "
          f"{rep.get('seconds', 0)} s)")
    print(f"{'policy':<11}" + "".join(f"{p + '%':>14}" for p in pts) + "   published@100")
    for name, pol in rep["policies"].items():
        cells = "".join(f"{pol['allocated_pct'][p]:>8.2f}±{pol['spread'][p]:<5.2f}" for p in pts)
        pub = PUBLISHED_100.get(name) if trace == "default" else None
        print(f"{name:<11}{cells}   {pub if pub else ''}")
    rt = rep.get("runtime", {})
    if rt:
        print(f"runtime: {rt['seconds']} s wall with --jobs {rt['jobs']}, {rt['cpu_seconds_runs']} s CPU in the runs, "
              f"worker RSS max {rt['max_rss_mib_worker']} MiB, load average {rt['load_average_1']}")
    pol = rep["policies"]
    if "jobsched" in pol and "fgd" in pol:
        diff = {p: round(pol["jobsched"]["allocated_pct"][p] - pol["fgd"]["allocated_pct"][p], 2) for p in pts}
        print(f"jobsched - fgd (points): {diff}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--traces", default=",".join(TRACES))
    ap.add_argument("--policies", default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    a = ap.parse_args()
    if not OPENB.is_dir():
        sys.exit(f"openb trace directory {OPENB} not found (set JOBSCHED_OPENB_DIR)")
    run(a.seeds, a.traces.split(","), Path(a.out), a.jobs, a.policies.split(",") if a.policies else None)


if __name__ == "__main__":
    main()
