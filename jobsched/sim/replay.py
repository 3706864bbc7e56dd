"""Replay mode: a discrete-event simulation that drives the real ``jobsched.core.cycle.Scheduler``.

Pods (or gangs: a ``replicas`` column, or TrainingJob manifests) arrive at their creation time and,
once admitted, run for their traced duration (deletion - scheduled time) and depart. At every event
time with pending work the scheduler runs one cycle on a snapshot of the simulated cluster with the
simulated clock as ``now``; its Admit/Reject/Wait decisions are applied, exactly as a backend would.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field

import numpy as np

from jobsched.core.cycle import Admit, Reject, Scheduler
from jobsched.core.fragmentation import TargetWorkload
from jobsched.core.gang import Assignment, PodGroup
from jobsched.core.nodes import NodeTable
from jobsched.core.snapshot import QueueInfo, RunningGang, Snapshot
from jobsched.sim.packing import configure
from jobsched.sim.trace import PodTrace

# Assumed on-demand prices (USD per GPU-hour, and per vCPU-hour) where the node list has no price.
GPU_HOURLY = {"A10": 1.10, "T4": 0.53, "P100": 1.46, "V100M16": 2.48, "V100M32": 3.06, "G2": 2.00,
              "G3": 2.50}
DEFAULT_GPU_HOURLY = 1.50
CPU_HOURLY = 0.04


def node_prices(table: NodeTable) -> np.ndarray:
    """USD/hour per node: the node list's price, else the assumed per-GPU and per-core rates."""
    per_gpu = np.array([GPU_HOURLY.get(table.models[m], DEFAULT_GPU_HOURLY) if m >= 0 else 0.0
                        for m in table.gpu_model])
    est = table.gpu_count * per_gpu + table.cpu_cap / 1000.0 * CPU_HOURLY
    return np.where(table.price > 0, table.price, est)


@dataclass
class _Book:
    delays: list[float] = field(default_factory=list)
    jcts: list[float] = field(default_factory=list)
    series: list[tuple[float, float, float, int, int, float]] = field(default_factory=list)
    cost: float = 0.0


def _percentiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"count": 0}
    a = np.asarray(xs)
    return {"count": int(a.size), "mean": round(float(a.mean()), 2), "p50": round(float(np.percentile(a, 50)), 2),
            "p95": round(float(np.percentile(a, 95)), 2), "p99": round(float(np.percentile(a, 99)), 2),
            "max": round(float(a.max()), 2)}


def run_replay(nodes: NodeTable, pods: PodTrace, policy: str = "jobsched", seed: int = 0,
               workload: TargetWorkload | None = None, cycle_interval: float = 0.0,
               horizon: float | None = None, max_points: int = 400) -> dict[str, object]:
    """Replay ``pods`` on ``nodes``; returns queueing delay, JCT, utilization and cost figures."""
    t0 = time.perf_counter()
    table = nodes.copy()
    sched = Scheduler(policy, seed, preemption=False)
    configure(sched.scorer, sched.gpus, workload if workload is not None else pods.workload())
    observe = getattr(sched.scorer, "observe", None)
    forget = getattr(sched.scorer, "forget", None)
    prices = node_prices(table)
    queues = {"default": QueueInfo("default")}
    order = np.argsort(pods.created, kind="stable")
    keys = [f"{i}:{pods.names[i]}" for i in range(len(pods))]
    arrivals = [(float(pods.created[i]), int(i)) for i in order]
    departures: list[tuple[float, int]] = []
    pending: dict[int, PodGroup] = {}
    running: dict[int, RunningGang] = {}
    started: dict[int, float] = {}
    rejected: dict[int, str] = {}
    book = _Book()
    nxt = cycles = 0
    last_t = arrivals[0][0] if arrivals else 0.0
    cap_gpu = max(table.gpu_total_milli(), 1)
    cap_cpu = max(int(table.cpu_cap.sum()), 1)
    while nxt < len(arrivals) or departures:
        t = min(arrivals[nxt][0] if nxt < len(arrivals) else math.inf,
                departures[0][0] if departures else math.inf)
        if cycle_interval > 0:
            t = math.ceil(t / cycle_interval) * cycle_interval
        if horizon is not None and t > horizon:
            break
        busy = (table.cpu_free < table.cpu_cap) | (table.gpu_full < table.gpu_count)
        book.cost += float(prices[busy].sum()) * (t - last_t) / 3600.0
        last_t = t
        while departures and departures[0][0] <= t:
            _, i = heapq.heappop(departures)
            gang = running.pop(i)
            for a in gang.assignments:
                table.release(a.row, gang.request, a.gpus)
                if forget is not None:
                    forget(a.row, gang.request)
            book.jcts.append(t - float(pods.created[i]))
        while nxt < len(arrivals) and arrivals[nxt][0] <= t:
            i = arrivals[nxt][1]
            nxt += 1
            pending[i] = PodGroup(keys[i], pods.request(i), int(pods.replicas[i]), created=float(pods.created[i]),
                                  gpu_models=pods.models[i], placement=pods.placement[i])
        if pending:
            snap = Snapshot(table, tuple(running.values()), queues)
            result = sched.cycle(snap, list(pending.values()), now=t)
            cycles += 1
            by_key = {g.key: i for i, g in pending.items()}
            for d in result.decisions:
                if isinstance(d, Admit):
                    i = by_key[d.key]
                    _admit(table, pending.pop(i), d.assignments, t, running, i, observe)
                    started[i] = t
                    book.delays.append(t - float(pods.created[i]))
                    heapq.heappush(departures, (t + float(pods.duration[i]), i))
                elif isinstance(d, Reject):
                    i = by_key[d.key]
                    pending.pop(i)
                    rejected[i] = d.reason
        used_gpu = table.gpu_used_milli()
        used_cpu = int((table.cpu_cap - table.cpu_free).sum())
        book.series.append((t, 100.0 * used_gpu / cap_gpu, 100.0 * used_cpu / cap_cpu, len(running),
                            len(pending), book.cost))
    _check(table)
    step = max(len(book.series) // max_points, 1)
    series = book.series[::step]
    finite = [i for i in started if math.isfinite(float(pods.duration[i]))]
    return {
        "policy": policy,
        "seed": seed,
        "pods": len(pods),
        "admitted": len(started),
        "rejected": len(rejected),
        "pending_at_end": len(pending),
        "never_arrived": len(arrivals) - nxt,
        "running_at_end": len(running),
        "cycles": cycles,
        "queueing_delay_s": _percentiles(book.delays),
        "jct_s": _percentiles(book.jcts),
        "finite_jobs": len(finite),
        "gpu_alloc_pct_mean": _time_mean(book.series, 1),
        "gpu_alloc_pct_peak": round(max((s[1] for s in book.series), default=0.0), 2),
        "cpu_alloc_pct_mean": _time_mean(book.series, 2),
        "cost_usd": round(book.cost, 2),
        "series": {"t": [s[0] for s in series], "gpu_alloc_pct": [round(s[1], 2) for s in series],
                   "cpu_alloc_pct": [round(s[2], 2) for s in series], "running": [s[3] for s in series],
                   "pending": [s[4] for s in series], "cost_usd": [round(s[5], 2) for s in series]},
        "rejections": dict(list({keys[i]: r for i, r in rejected.items()}.items())[:20]),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _time_mean(series: list[tuple[float, float, float, int, int, float]], col: int) -> float:
    """Time-weighted mean of a column of the event series (each value holds until the next event)."""
    if len(series) < 2:
        return round(series[0][col], 2) if series else 0.0
    t = np.array([s[0] for s in series])
    v = np.array([s[col] for s in series])
    dt = np.diff(t)
    return round(float((v[:-1] * dt).sum() / max(dt.sum(), 1e-9)), 2)


def _admit(table: NodeTable, g: PodGroup, assignments: tuple[Assignment, ...], t: float,
           running: dict[int, RunningGang], i: int, observe: object) -> None:
    for a in assignments:
        table.allocate(a.row, g.request, a.gpus)
        if callable(observe):
            observe(a.row, g.request)
    running[i] = RunningGang(g.key, g.request, assignments, g.queue, g.priority, t)


def _check(table: NodeTable) -> None:
    """No node over-committed, no GPU share outside 0..1000 (the simulator's accounting check)."""
    bad = (table.cpu_free < 0) | (table.mem_free < 0)
    g = table.gpu_free
    if bad.any() or ((g >= 0) & (g > 1000)).any() or ((g < 0) & (g != -1)).any():  # pragma: no cover
        raise AssertionError("simulated cluster over-committed: an accounting bug")
