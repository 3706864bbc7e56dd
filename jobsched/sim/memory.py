"""Memory mode of the simulator: how four sizing strategies fare on the same synthetic workload.

Each job has a true per-replica peak (drawn from the measured zoo, benchmarks/data/memory_zoo.json,
or a documented synthetic distribution when the zoo is absent), an estimate (the zoo's estimate of
that configuration), and a declared size that users guess badly (true peak x lognormal error).
An attempt whose size is below the true peak is OOM-killed part-way; its run time is wasted.

Strategies: ``static`` (Kubernetes/Kubeflow: retry at the same size up to backoffLimit), ``vpa``
(x1.2, at least +100 MiB per OOM), ``argo`` (podSpecPatch doubling memory per retry) and
``jobsched`` (estimate + history + OOM policy: :mod:`jobsched.rightsizing`). Jobs are independent
(no queueing), so the figures isolate the sizing decisions. Every strategy gets the same retry
budget and the same restart rule (no checkpoint credit), so the comparison is neutral.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jobsched.rightsizing.cost import request_share
from jobsched.rightsizing.history import PeakHistory
from jobsched.rightsizing.policy import admission_memory, next_attempt_memory, round_up
from jobsched.spec.resources import Resources

GiB, MIB = 2**30, 2**20
STRATEGIES = ("static", "vpa", "argo", "jobsched")
ZOO_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "memory_zoo.json"
# Instance types that price a replica-hour by dominant share (p4d.24xlarge, r6i.8xlarge on-demand).
GPU_NODE = (Resources(96_000, 1152 * GiB, 8, 1000), 32.77)
CPU_NODE = (Resources(32_000, 256 * GiB), 2.02)
DEFAULTS: dict[str, Any] = {
    "jobs": 500, "retries": 3, "margin": 0.15, "growth": 1.5, "declared_bias": 1.3,
    "declared_sigma": 0.6, "run_sigma": 0.05, "cap_gib": 1152.0, "zoo": None,
}


@dataclass(frozen=True)
class Family:
    name: str
    peak: int  # measured peak of one replica
    estimate: int | None


@dataclass(frozen=True)
class Job:
    family: str
    peak: int
    estimate: int | None
    declared: int
    replicas: int
    gpus: float  # per replica (a share counts as a fraction)
    hours: float
    oom_at: float  # fraction of the run at which an under-sized attempt is killed


def load_zoo(path: Path | None = None) -> tuple[list[Family], str]:
    """Families from the measured zoo, or the synthetic fallback; and where they came from."""
    p = path or ZOO_PATH
    if p.is_file():
        data = json.loads(p.read_text())
        entries = data if isinstance(data, list) else data.get("configs") or next(
            (v for v in data.values() if isinstance(v, list)), [])
        fams = [f for f in (_family(e, i) for i, e in enumerate(entries)) if f is not None]
        if fams:
            return fams, f"measured zoo {p} ({len(fams)} configurations)"
    rng = np.random.default_rng(12345)
    peaks = np.exp(rng.uniform(math.log(1.0), math.log(160.0), 16)) * GiB
    errs = np.exp(rng.normal(0.0, 0.2, 16))
    fams = [Family(f"synthetic-{i}", int(pk), int(pk * er)) for i, (pk, er) in enumerate(zip(peaks, errs,
                                                                                          strict=True))]
    return fams, ("SYNTHETIC (no measured zoo at " f"{p}): 16 families, peaks log-uniform in 1..160 GiB, "
                  "estimate error lognormal sigma 0.2")


def _family(e: Any, i: int) -> Family | None:
    if not isinstance(e, dict):
        return None
    flat: dict[str, Any] = {}
    for k, v in e.items():
        if isinstance(v, dict):
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        flat[k] = v
    nums = {k.lower(): int(v) for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and v > 0 and ("byte" in k.lower() or "peak" in k.lower() or "estim" in k.lower()
                           or "measur" in k.lower())}
    measured = nums.get("measured_peak_bytes") or next(
        (v for k, v in nums.items() if "measur" in k or "actual" in k), None)
    estimated = nums.get("estimate_bytes") or next((v for k, v in nums.items() if "estim" in k), None)
    if measured is None:
        return None
    name = str(e.get("name") or e.get("model") or e.get("factory") or f"config-{i}")
    return Family(name, measured, estimated)


def make_jobs(fams: Sequence[Family], rng: np.random.Generator, opts: dict[str, Any],
              pods: Any = None) -> list[Job]:
    n = int(opts["jobs"])
    pop = 1.0 / np.arange(1, len(fams) + 1)  # Zipf popularity: families recur, some often
    pick = rng.choice(len(fams), size=n, p=pop / pop.sum())
    jobs = []
    rows = rng.integers(0, len(pods), size=n) if pods is not None else None
    for j in range(n):
        f = fams[int(pick[j])]
        peak = int(f.peak * math.exp(rng.normal(0.0, opts["run_sigma"])))
        declared = round_up(peak * opts["declared_bias"] * math.exp(rng.normal(0.0, opts["declared_sigma"])))
        hours = float(np.clip(rng.lognormal(math.log(2.0), 1.0), 0.1, 48.0))
        if rows is not None:
            i = int(rows[j])
            gpus = float(pods.gpus[i]) * (float(pods.milli[i]) / 1000.0 if pods.gpus[i] else 0.0)
            replicas = int(pods.replicas[i])
            if math.isfinite(float(pods.duration[i])) and pods.duration[i] > 0:
                hours = float(np.clip(pods.duration[i] / 3600.0, 0.01, 168.0))
        else:
            gpus = float(rng.choice([0, 1, 1, 2, 4, 8]))
            replicas = int(rng.choice([1, 1, 2, 4, 8]))
        early = rng.random() < 0.7  # most peaks come at the first steps; some at eval/checkpoint
        oom_at = float(rng.uniform(0.0, 0.05) if early else rng.uniform(0.05, 0.9))
        jobs.append(Job(f.name, peak, f.estimate, declared, replicas, gpus, hours, oom_at))
    return jobs


def _price_per_replica_hour(job: Job, size: int) -> float:
    cap, price = GPU_NODE if job.gpus else CPU_NODE
    req = Resources(4000 * max(int(math.ceil(job.gpus)), 1), size, int(math.ceil(job.gpus)),
                    1000 if job.gpus else 0)
    return price * request_share(req, cap)


def _sizes(strategy: str, job: Job, hist: PeakHistory, opts: dict[str, Any], cap: int) -> list[int | None]:
    """The sizes of successive attempts until one fits the true peak or the strategy gives up."""
    out: list[int | None] = []
    if strategy == "jobsched":
        rec = hist.recommend(job.family, margin=opts["margin"])
        d = admission_memory(declared=job.declared, estimate=job.estimate, recommended=rec,
                             margin=opts["margin"], pinned_limit=None, auto=True, cap=cap)
        size = d.memory
    else:
        size = job.declared
    for k in range(int(opts["retries"]) + 1):
        out.append(size if size is not None and size <= cap else None)
        if size is None or size > cap or size >= job.peak:
            break
        if strategy == "static":
            continue
        if strategy == "vpa":
            size = round_up(max(size * 1.2, size + 100 * MIB))
        elif strategy == "argo":
            size = job.declared * 2 ** (k + 1)
        else:
            size = next_attempt_memory(reason="OOMKilled", previous=size, observed_peak=size,
                                       margin=opts["margin"], growth=opts["growth"], cap=cap,
                                       max_memory=None).memory
    return out


def simulate(strategy: str, jobs: Sequence[Job], opts: dict[str, Any]) -> dict[str, float]:
    cap = int(opts["cap_gib"] * GiB)
    hist = PeakHistory()
    m = dict.fromkeys(("oom_kills", "crash_loops", "failed_jobs", "first_try_ok", "wasted_replica_hours",
                       "wasted_gpu_hours", "slack_gib_hours", "cost"), 0.0)
    slack_pct = []
    for job in jobs:
        sizes = _sizes(strategy, job, hist, opts, cap)
        ok = sizes[-1] is not None and sizes[-1] >= job.peak
        ooms = [s for s in sizes if s is not None and s < job.peak]
        m["oom_kills"] += len(ooms)
        m["crash_loops"] += any(a == b for a, b in zip(ooms, ooms[1:], strict=False))
        m["failed_jobs"] += not ok
        m["first_try_ok"] += ok and len(sizes) == 1
        for s in ooms:
            t = job.replicas * job.hours * job.oom_at
            m["wasted_replica_hours"] += t
            m["wasted_gpu_hours"] += t * job.gpus
            m["cost"] += t * _price_per_replica_hour(job, s)
        last = sizes[-1]
        if ok and last is not None:
            t = job.replicas * job.hours
            m["slack_gib_hours"] += (last - job.peak) * t / GiB
            m["cost"] += t * _price_per_replica_hour(job, last)
            slack_pct.append(100.0 * (last / job.peak - 1))
            hist.record(job.family, job.peak)  # cgroup memory.peak of the completed attempt
    m["completed"] = float(len(slack_pct))
    m["cost_per_completed_job"] = m["cost"] / max(len(slack_pct), 1)
    m["median_slack_pct"] = float(np.median(slack_pct)) if slack_pct else 0.0
    return m


def run_memory_mode(pods_csv: str | None, seeds: list[int], **opts: Any) -> dict[str, Any]:
    """Compare the strategies on ``opts['jobs']`` jobs per seed; metrics are means over seeds."""
    unknown = sorted(set(opts) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown memory-mode option(s): {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    o = {**DEFAULTS, **{k: v for k, v in opts.items() if v is not None}}
    if not seeds:
        raise ValueError("seeds: at least one seed is needed")
    fams, source = load_zoo(Path(o["zoo"]) if o["zoo"] else None)
    pods = None
    if pods_csv:
        from jobsched.sim.trace import load_pods

        pods = load_pods(pods_csv)
    per_seed: dict[str, list[dict[str, float]]] = {s: [] for s in STRATEGIES}
    for seed in seeds:
        jobs = make_jobs(fams, np.random.default_rng(seed), o, pods)
        for s in STRATEGIES:
            per_seed[s].append(simulate(s, jobs, o))
    mean = {s: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} for s, rows in per_seed.items()}
    return {
        "mode": "memory",
        "workload": {"jobs": o["jobs"], "seeds": list(seeds), "peaks": source, "pods": pods_csv,
                     "gpu_counts": "trace pods" if pods_csv else "synthetic"},
        "options": {k: o[k] for k in DEFAULTS if k != "zoo"},
        "strategies": mean,
        "per_seed": per_seed,
    }


def format_table(result: dict[str, Any]) -> str:
    cols = [("oom_kills", "OOM kills", "{:.0f}"), ("crash_loops", "crash loops", "{:.0f}"),
            ("failed_jobs", "failed", "{:.0f}"), ("wasted_replica_hours", "wasted replica-h", "{:.1f}"),
            ("wasted_gpu_hours", "wasted GPU-h", "{:.1f}"), ("slack_gib_hours", "slack GiB-h", "{:.0f}"),
            ("median_slack_pct", "median slack %", "{:.0f}"), ("cost", "cost $", "{:.0f}"),
            ("cost_per_completed_job", "$/completed job", "{:.2f}")]
    head = f"{'strategy':<10}" + "".join(f"{c[1]:>17}" for c in cols)
    lines = [head, "-" * len(head)]
    for s, m in result["strategies"].items():
        lines.append(f"{s:<10}" + "".join(f"{fmt.format(m[k]):>17}" for k, _, fmt in cols))
    return "\n".join(lines)
