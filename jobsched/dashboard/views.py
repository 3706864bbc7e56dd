"""What the pages show, computed from the service layer's models (no HTML here: the templates
render these plain values, autoescaped)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from jobsched.spec import quantity as q
from jobsched.spec.api import AttemptInfo, JobStatus, NodeStatus, QueueStatus

MIB = 2**20
OOM_REASONS = ("OOMKilled",)


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return "-"
    s = max(0.0, end - start)
    return f"{s:.1f}s" if s < 120 else f"{s / 60:.1f}m" if s < 7200 else f"{s / 3600:.1f}h"


def fmt_cost(cost: float) -> str:
    return f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"


@dataclass(frozen=True)
class Bar:
    """One "used of total" gauge: the label and the filled percentage (None: no limit)."""

    used: str
    total: str
    pct: float | None

    @property
    def over(self) -> bool:
        return self.pct is not None and self.pct > 100


def bar(used: int, total: int | None, fmt: Any) -> Bar:
    if not total:
        return Bar(fmt(used), "unlimited" if total is None else fmt(0), None)
    return Bar(fmt(used), fmt(total), round(100 * used / total, 1))


def _fmt_gpu_milli(milli: int) -> str:
    return f"{milli / 1000:g}"


def queue_rows(queues: list[QueueStatus]) -> list[dict[str, Any]]:
    total_weight = sum(qs.weight for qs in queues) or 1.0
    rows = []
    for qs in queues:
        quota = qs.quota
        rows.append({
            "name": qs.name, "weight": qs.weight, "share": round(100 * qs.weight / total_weight, 1),
            "cpu": bar(qs.usage.get("cpu", 0), q.cpu_milli(quota["cpu"]) if "cpu" in quota else None,
                       q.format_cpu),
            "memory": bar(qs.usage.get("memory", 0),
                          q.memory_bytes(quota["memory"]) if "memory" in quota else None, q.format_bytes),
            "gpu": bar(qs.usage.get(q.GPU, 0), q.whole(quota[q.GPU], q.GPU) if q.GPU in quota else None, str),
            "pending": qs.pending, "admitted": qs.running,
            "default_memory": q.format_bytes(qs.default_memory),
        })
    return rows


def node_rows(nodes: list[NodeStatus]) -> list[dict[str, Any]]:
    rows = []
    for n in nodes:
        alloc = n.allocatable
        gpus = q.whole(alloc[q.GPU], q.GPU) if q.GPU in alloc else 0
        used_milli = n.allocated.get("jobsched.io/gpu-milli", 1000 * n.allocated.get(q.GPU, 0))
        rows.append({
            "name": n.name, "unschedulable": n.unschedulable, "enforcement": n.enforcement or "-",
            "cpu": bar(n.allocated.get("cpu", 0), q.cpu_milli(alloc["cpu"]) if "cpu" in alloc else 0,
                       q.format_cpu),
            "memory": bar(n.allocated.get("memory", 0),
                          q.memory_bytes(alloc["memory"]) if "memory" in alloc else 0, q.format_bytes),
            "gpu": bar(used_milli, 1000 * gpus, _fmt_gpu_milli),
            "gpus": gpus, "gpu_model": n.gpu_model or "-", "gpu_memory": q.format_bytes(n.gpu_memory)
            if n.gpu_memory else "-", "gpu_note": n.gpu_note,
        })
    return rows


def attempt_memory(att: AttemptInfo) -> tuple[int | None, int | None]:
    """(request, limit) of an attempt's replicas, in bytes."""
    req = att.resources.requests.get("memory")
    return req, att.resources.limits.get("memory", req)


def memory_chart(job: JobStatus, att: AttemptInfo) -> dict[str, Any]:
    """The data of one attempt's memory chart (MiB against seconds since its start): usage, the
    limit (and the request when a measuring retry bursts above it), the estimate, the history
    recommendation, and where an OOM kill struck."""
    tl = att.memory_timeline
    t = list(tl.t) if tl else []
    usage = [round(u / MIB, 2) for u in tl.usage] if tl else []
    req, limit = attempt_memory(att)
    oom_at = None
    if att.reason in OOM_REASONS:
        oom_at = tl.limit_hit_at if tl and tl.limit_hit_at is not None else (t[-1] if t else None)

    def mib(v: int | None) -> float | None:
        return round(v / MIB, 2) if v else None

    return {"attempt": att.index, "t": t, "usage": usage, "limit": mib(limit),
            "request": mib(req) if req and limit and req < limit else None,
            "estimate": mib(job.sizing.estimated_memory), "recommended": mib(job.sizing.recommended_memory),
            "oom_at": oom_at, "reason": att.reason or "", "shape": tl.shape if tl else None}


def attempt_rows(job: JobStatus) -> list[dict[str, Any]]:
    rows = []
    for a in job.attempts:
        req, limit = attempt_memory(a)
        rows.append({
            "index": a.index, "reason": a.reason or ("running" if a.finished_at is None else "-"),
            "exit_code": "-" if a.exit_code is None else a.exit_code, "node": ", ".join(a.nodes) or a.node or "-",
            "request": q.format_bytes(req), "limit": q.format_bytes(limit),
            "peak": q.format_bytes(a.peak_memory_bytes), "mode": a.memory_mode or "-",
            "started": fmt_time(a.started_at), "duration": fmt_duration(a.started_at, a.finished_at),
            "message": a.message or "", "oom": a.reason in OOM_REASONS,
            "chart": memory_chart(job, a),
        })
    return rows


def sizing_rows(job: JobStatus) -> list[tuple[str, str]]:
    s = job.sizing
    pairs = [("declared", s.declared_memory), ("estimated", s.estimated_memory),
             ("history recommendation", s.recommended_memory), ("chosen", s.chosen_memory),
             ("queue default", s.default_memory), ("GPU memory per GPU", s.gpu_memory)]
    out = [(k, q.format_bytes(v)) for k, v in pairs if v]
    if s.why:
        out.append(("why", s.why))
    return out
