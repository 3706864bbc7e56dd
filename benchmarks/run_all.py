"""The whole simulator/scheduler benchmark suite in a few minutes; one JSON file plus plots.

    python benchmarks/run_all.py [--seeds 2] [--full]

Writes benchmarks/out/results.json, benchmarks/out/allocation.png (packing mode, every policy on every
shared pod list) and benchmarks/out/replay.png, and copies the allocation figure to
docs/img/allocation.png (with ``--full``). ``--full`` uses the issue's sizes: seeds 42-51 and 50,000 pending pods per
throughput run (tens of minutes on a 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
OUT = ROOT / "benchmarks" / "out"


def replay(out: Path) -> dict:
    """Replay the default pod list (creation/deletion times) with jobsched and FGD."""
    from bench_sim import OPENB

    from jobsched.sim.replay import run_replay
    from jobsched.sim.trace import load_nodes, load_pods

    nodes = load_nodes(OPENB / "openb_node_list_gpu_node.csv")
    pods = load_pods(OPENB / "openb_pod_list_default.csv")
    runs = {p: run_replay(nodes, pods, p, seed=42, cycle_interval=60.0) for p in ("jobsched", "fgd", "bestfit")}
    _plot_replay(runs, out / "replay.png")
    return runs


def _plot_replay(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    for name, r in runs.items():
        days = [t / 86400 for t in r["series"]["t"]]
        a.plot(days, r["series"]["gpu_alloc_pct"], label=name, lw=1)
        b.plot(days, r["series"]["pending"], label=name, lw=1)
    a.set_ylabel("GPU allocated (%)")
    b.set_ylabel("pending pods")
    for ax in (a, b):
        ax.set_xlabel("trace time (days)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--skip-replay", action="store_true")
    a = ap.parse_args()
    seeds = 10 if a.full else a.seeds
    OUT.mkdir(parents=True, exist_ok=True)
    import bench_sim

    t0 = time.perf_counter()
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform()}}
    results["packing"] = bench_sim.run(seeds, list(bench_sim.TRACES), OUT)
    if a.full:  # the committed headline figure is the 10-seed one
        shutil.copyfile(OUT / "allocation.png", ROOT / "docs" / "img" / "allocation.png")
    if not a.skip_replay:
        results["replay"] = replay(OUT)
    pods = "50000" if a.full else "10000"
    scale = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "--pods", pods,
                            "--out", str(OUT / "scale.json")], check=True, capture_output=True, text=True)
    sys.stderr.write(scale.stderr)
    results["scale"] = json.loads(scale.stdout)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nwrote {OUT / 'results.json'} and plots in {OUT} ({results['seconds']} s)")


if __name__ == "__main__":
    main()
