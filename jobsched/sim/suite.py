"""Run packing mode for several policies and seeds and collect one JSON-ready report."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from jobsched.sim.packing import PackingRun, run_packing, summarize
from jobsched.sim.trace import load_nodes, load_pods

DEFAULT_POLICIES = ("random", "bestfit", "dotprod", "packing", "clustering", "fgd", "jobsched")


def _one(args: tuple[str, str, str, int, float]) -> PackingRun:
    nodes_path, pods_path, policy, seed, inflate = args
    return run_packing(load_nodes(nodes_path), load_pods(pods_path), policy, seed, inflate)


def packing_report(nodes_path: str | Path, pods_path: str | Path, policies: Sequence[str] = DEFAULT_POLICIES,
                   seeds: Sequence[int] = tuple(range(42, 52)), inflate: float = 1.3,
                   jobs: int = 1, progress: Callable[[str], None] | None = None) -> dict[str, object]:
    """Mean and spread over ``seeds`` of every policy's allocation (see :mod:`jobsched.sim.packing`)."""
    nodes = load_nodes(nodes_path)
    pods = load_pods(pods_path)
    tasks = [(str(nodes_path), str(pods_path), p, s, inflate) for p in policies for s in seeds]
    if jobs > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        if progress is not None:
            progress(f"packing: {len(tasks)} runs ({len(policies)} policies x {len(seeds)} seeds) on {jobs} workers")
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            runs = list(pool.map(_one, tasks))
    else:
        workload = pods.workload()
        runs = []
        for p in policies:
            if progress is not None:
                progress(f"packing: {p}: {len(seeds)} seed(s)")
            runs += [run_packing(nodes, pods, p, s, inflate, workload) for s in seeds]
            if progress is not None:
                progress(f"packing: {p}: done in {sum(r.seconds for r in runs if r.policy == p):.1f} s")
    out: dict[str, object] = {
        "mode": "packing",
        "nodes": str(nodes_path),
        "pods": str(pods_path),
        "cluster": {"nodes": len(nodes), "gpus": int(nodes.gpu_count.sum()),
                    "cpu_cores": int(nodes.cpu_cap.sum()) // 1000},
        "pod_count": len(pods),
        "seeds": list(seeds),
        "inflate": inflate,
        "policies": {p: summarize([r for r in runs if r.policy == p]) for p in policies},
    }
    return out
