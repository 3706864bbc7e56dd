"""Packing mode: the FGD paper's (USENIX ATC'23) allocation experiment.

Pods are shuffled with a seed and the list is inflated by sampling pods with replacement until the
arrived GPU requests reach ``inflate`` x the cluster's GPU capacity. Each pod gets one placement
attempt through the core's ``place_gang`` with the policy's scorer and GPU chooser (a pod that does not
fit is dropped) and nothing departs. The result is the allocated share of cluster GPU capacity
(milli-GPU) as a function of the arrived GPU requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from jobsched.core.fragmentation import TargetWorkload
from jobsched.core.gang import PodGroup, allowed_mask, place_gang
from jobsched.core.nodes import NodeTable
from jobsched.core.policies import make_policy
from jobsched.core.scorecache import ScoreCache
from jobsched.sim.trace import PodTrace

F64 = npt.NDArray[np.float64]
IDX = npt.NDArray[np.intp]
REPORT_POINTS = (90, 100, 110, 120, 130)


@dataclass
class PackingRun:
    policy: str
    seed: int
    arrived_pct: F64  # after each arrival, % of cluster GPU capacity requested so far
    allocated_pct: F64  # after each arrival, % of cluster GPU capacity allocated
    placed: int
    dropped: int
    seconds: float
    table: NodeTable | None = field(default=None, repr=False)  # the final cluster state
    cpu_seconds: float = 0.0

    def at(self, pct: float) -> float:
        """Allocated % at ``pct`` % arrived, as the FGD authors' analysis reads it
        (experiments/analysis/merge_alloc_discrete*.py): the mean allocation over the arrivals whose
        arrived % rounds to ``pct`` (else within ±1 of it); else when the arrivals first reach it."""
        near = np.round(self.arrived_pct) == pct
        if not near.any():
            near = np.abs(np.round(self.arrived_pct) - pct) <= 1
        if near.any():
            return float(self.allocated_pct[near].mean())
        i = int(np.searchsorted(self.arrived_pct, pct - 1e-9, side="left"))
        return float(self.allocated_pct[min(i, len(self.allocated_pct) - 1)])


def arrival_order(gpu_req: npt.NDArray[np.int64], capacity_milli: int, seed: int, inflate: float) -> IDX:
    """Shuffled pod indices, extended by sampling with replacement, cut where the cumulative GPU
    request first reaches ``inflate`` x capacity."""
    if int(gpu_req.sum()) <= 0:
        raise ValueError("the pod list requests no GPUs: packing mode needs GPU pods")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(gpu_req))
    target = inflate * capacity_milli
    total = float(gpu_req.sum())
    while total < target:
        extra = rng.integers(0, len(gpu_req), size=max(len(gpu_req) // 4, 64))
        order = np.concatenate([order, extra])
        total += float(gpu_req[extra].sum())
    cum = np.cumsum(gpu_req[order])
    cut = int(np.searchsorted(cum, target, side="left"))
    return order[: cut + 1].astype(np.intp)


def configure(scorer: object, chooser: object, workload: TargetWorkload, pods: PodTrace | None = None) -> None:
    """Hand the target workload to policies that use one (fgd, jobsched). A policy that names its own
    ``workload_options`` (FGD: the authors' typical-pod settings) gets that workload of ``pods``."""
    for obj in {id(scorer): scorer, id(chooser): chooser}.values():
        setter = getattr(obj, "set_workload", None)
        if setter is not None:
            options = getattr(obj, "workload_options", None)
            setter(pods.workload(**options) if options and pods is not None else workload)


Tick = Callable[[int, int, int], None]  # (arrivals so far, of how many, placed so far)
TICK_EVERY = 1000


def run_packing(nodes: NodeTable, pods: PodTrace, policy: str, seed: int, inflate: float = 1.3,
                workload: TargetWorkload | None = None, keep_table: bool = False,
                tick: Tick | None = None) -> PackingRun:
    """One seed of one policy. ``tick`` hears how far the run got every ``TICK_EVERY`` arrivals."""
    t0, c0 = time.perf_counter(), time.process_time()
    table = nodes.copy()
    scorer, chooser = make_policy(policy, seed)
    configure(scorer, chooser, workload if workload is not None else pods.workload(), pods)
    observe = getattr(scorer, "observe", None)
    capacity = table.gpu_total_milli()
    gpu_req = pods.gpu_milli_total()
    order = arrival_order(gpu_req, capacity, seed, inflate)
    cache = ScoreCache(scorer)  # row-local policies rescore only the nodes that changed
    groups: dict[int, PodGroup] = {}
    # One mask per distinct constraint (accepted GPU models), not per pod: memory stays flat.
    masks: dict[tuple[str, ...], npt.NDArray[np.bool_]] = {}
    allowed: dict[int, npt.NDArray[np.bool_]] = {}
    arrived = np.empty(len(order))
    allocated = np.empty(len(order))
    cum = used = placed = 0
    for step, i in enumerate(order.tolist()):
        g = groups.get(i)
        if g is None:
            g = groups[i] = PodGroup(pods.names[i], pods.request(i), int(pods.replicas[i]),
                                     gpu_models=pods.models[i], placement=pods.placement[i])
            key = g.gpu_models if g.request.gpus else ()
            if key not in masks:
                masks[key] = allowed_mask(table, g)
            allowed[i] = masks[key]
        got = place_gang(table, g, scorer, chooser, allowed[i], cache)
        cum += int(gpu_req[i])
        if got is not None:
            placed += 1
            used += int(gpu_req[i])
            if observe is not None:
                for a in got:
                    observe(a.row, g.request)
        arrived[step] = cum
        allocated[step] = used
        if tick is not None and step % TICK_EVERY == 0:
            tick(step, len(order), placed)
    if used != table.gpu_used_milli():  # pragma: no cover - an accounting bug in the core
        raise AssertionError(f"allocated {used} milli-GPU but the table holds {table.gpu_used_milli()}")
    scale = 100.0 / capacity
    return PackingRun(policy, seed, arrived * scale, allocated * scale, placed, len(order) - placed,
                      time.perf_counter() - t0, table if keep_table else None, time.process_time() - c0)


def summarize(runs: list[PackingRun], points: tuple[int, ...] = REPORT_POINTS,
              grid: F64 | None = None) -> dict[str, object]:
    """Mean and spread (population std) over seeds at each report point, plus a mean curve."""
    if grid is None:
        grid = np.arange(0, 131, 2, dtype=np.float64)
    at = np.array([[r.at(p) for p in points] for r in runs])
    curve = np.array([[r.at(x) if x > 0 else 0.0 for x in grid] for r in runs])
    return {
        "allocated_pct": {str(p): round(float(at[:, k].mean()), 2) for k, p in enumerate(points)},
        "spread": {str(p): round(float(at[:, k].std()), 2) for k, p in enumerate(points)},
        "min": {str(p): round(float(at[:, k].min()), 2) for k, p in enumerate(points)},
        "max": {str(p): round(float(at[:, k].max()), 2) for k, p in enumerate(points)},
        "placed": round(float(np.mean([r.placed for r in runs])), 1),
        "dropped": round(float(np.mean([r.dropped for r in runs])), 1),
        "seconds_per_run": round(float(np.mean([r.seconds for r in runs])), 2),
        "cpu_seconds_per_run": round(float(np.mean([r.cpu_seconds for r in runs])), 2),
        "placements_per_s": round(float(sum(r.placed for r in runs) / max(sum(r.seconds for r in runs), 1e-9)), 1),
        "curve": {"arrived_pct": grid.tolist(), "allocated_pct": np.round(curve.mean(axis=0), 2).tolist(),
                  "spread": np.round(curve.std(axis=0), 2).tolist()},
    }
