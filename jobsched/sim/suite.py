"""Run packing mode for several policies and seeds and collect one JSON-ready report.

Runs go to ``jobs`` worker processes, each of which loads the traces once; every run reports how far
it got (``Tick``) through a queue, so the caller can show policy, seed, pods placed and an ETA while
they run. Each worker returns only its run's curves, so the parent's memory does not grow with the
cluster, and the report gives the largest resident set of the workers.
"""

from __future__ import annotations

import os
import queue
import resource
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from jobsched.sim.packing import PackingRun, run_packing, summarize
from jobsched.sim.scale import scale_nodes, scale_pods
from jobsched.sim.trace import NodeTable, PodTrace, load_nodes, load_pods

DEFAULT_POLICIES = ("random", "bestfit", "dotprod", "packing", "clustering", "fgd", "jobsched")


@dataclass(frozen=True)
class Tick:
    """How far one run got: ``step`` of ``total`` arrivals, ``placed`` of them placed."""

    policy: str
    seed: int
    step: int
    total: int
    placed: int
    done: bool = False
    seconds: float = 0.0


_WORKER: dict[str, Any] = {}


def _load(nodes_path: str, pods_path: str, scale: int) -> tuple[NodeTable, PodTrace]:
    nodes, pods = load_nodes(nodes_path), load_pods(pods_path)
    if scale > 1:
        nodes, pods = scale_nodes(nodes, scale), scale_pods(pods, scale)
    return nodes, pods


def _init(nodes_path: str, pods_path: str, scale: int, ticks: Any) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    nodes, pods = _load(nodes_path, pods_path, scale)
    _WORKER.update(nodes=nodes, pods=pods, workload=pods.workload(), ticks=ticks)


def _run(policy: str, seed: int, inflate: float, nodes: NodeTable, pods: PodTrace, workload: Any,
         put: Callable[[Tick], None] | None) -> PackingRun:
    def tick(step: int, total: int, placed: int) -> None:
        if put is not None:
            put(Tick(policy, seed, step, total, placed))

    run = run_packing(nodes, pods, policy, seed, inflate, workload, tick=tick)
    if put is not None:
        put(Tick(policy, seed, len(run.arrived_pct), len(run.arrived_pct), run.placed, True, run.seconds))
    return run


def _one(args: tuple[str, int, float]) -> tuple[PackingRun, int]:
    policy, seed, inflate = args
    w = _WORKER
    run = _run(policy, seed, inflate, w["nodes"], w["pods"], w["workload"], w["ticks"].put)
    return run, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def packing_report(nodes_path: str | Path, pods_path: str | Path, policies: Sequence[str] = DEFAULT_POLICIES,
                   seeds: Sequence[int] = tuple(range(42, 52)), inflate: float = 1.3,
                   jobs: int = 1, progress: Callable[[str], None] | None = None,
                   ticks: Callable[[Tick], None] | None = None, nodes_scale: int = 1) -> dict[str, object]:
    """Mean and spread over ``seeds`` of every policy's allocation (see :mod:`jobsched.sim.packing`).
    ``ticks`` hears every run's progress; ``nodes_scale`` K replicates the cluster and the pod list
    K times (:mod:`jobsched.sim.scale`)."""
    t0, c0 = time.perf_counter(), time.process_time()
    nodes, pods = _load(str(nodes_path), str(pods_path), nodes_scale)
    # Seed by seed (every policy once per seed): the runs done so far are a fair sample of the rest,
    # so the ETA holds from the first few, and the slow policies spread over the workers.
    tasks = [(p, s, inflate) for s in seeds for p in policies]
    if progress is not None:
        progress(f"packing: {len(tasks)} runs ({len(policies)} policies x {len(seeds)} seeds) on "
                 f"{min(jobs, len(tasks))} worker(s), {len(nodes)} nodes")
    if jobs > 1 and len(tasks) > 1:
        runs, rss = _parallel(str(nodes_path), str(pods_path), nodes_scale, tasks, jobs, ticks)
    else:
        workload = pods.workload()
        runs = [_run(p, s, inf, nodes, pods, workload, ticks) for p, s, inf in tasks]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out: dict[str, object] = {
        "mode": "packing",
        "nodes": str(nodes_path),
        "pods": str(pods_path),
        "nodes_scale": nodes_scale,
        "cluster": {"nodes": len(nodes), "gpus": int(nodes.gpu_count.sum()),
                    "cpu_cores": int(nodes.cpu_cap.sum()) // 1000},
        "pod_count": len(pods),
        "seeds": list(seeds),
        "inflate": inflate,
        "runtime": {"seconds": round(time.perf_counter() - t0, 1), "jobs": jobs,
                    "cpu_seconds_runs": round(sum(r.cpu_seconds for r in runs), 1),
                    "cpu_seconds_parent": round(time.process_time() - c0, 1),
                    "max_rss_mib_worker": round(rss / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1),
                    "load_average_1": round(os.getloadavg()[0], 1)},
        "policies": {p: summarize([r for r in runs if r.policy == p]) for p in policies},
    }
    return out


def _parallel(nodes_path: str, pods_path: str, scale: int, tasks: list[tuple[str, int, float]], jobs: int,
              ticks: Callable[[Tick], None] | None) -> tuple[list[PackingRun], int]:
    ctx = get_context("spawn")  # no fork of a parent that may hold threads (rich's refresher)
    q: Any = ctx.Queue()
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx, initializer=_init,
                             initargs=(nodes_path, pods_path, scale, q)) as pool:
        futures: list[Future[tuple[PackingRun, int]]] = [pool.submit(_one, t) for t in tasks]
        while True:
            pending = [f for f in futures if not f.done()]
            try:
                tick = q.get(timeout=0.2)
                if ticks is not None:
                    ticks(tick)
                continue
            except queue.Empty:
                if not pending:
                    break
        results = [f.result() for f in futures]
    return [r for r, _ in results], max(m for _, m in results)
