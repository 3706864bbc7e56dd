"""Translate between stored rows and the core's / backend's / API's structures."""

from __future__ import annotations

import json
import math
from typing import Any

from jobsched.backends.base import GangLaunch, ReplicaLaunch
from jobsched.core.constraints import from_template
from jobsched.core.gang import Assignment, PodGroup
from jobsched.core.snapshot import RunningGang
from jobsched.spec.api import (
    AttemptInfo,
    AttemptResources,
    EventInfo,
    JobStatus,
    MemoryTimeline,
    ReplicaInfo,
    SizingInfo,
)
from jobsched.spec.duration import format_duration
from jobsched.spec.job import MemoryPolicy, TrainingJob
from jobsched.spec.resources import Resources
from jobsched.spec.status import JobPhase
from jobsched.store import AttemptRow, JobRow, Store


def job_spec(row: JobRow) -> TrainingJob:
    return TrainingJob.model_validate(row.manifest)


def request_of(row: JobRow, job: TrainingJob | None = None) -> Resources:
    job = job or job_spec(row)
    req = job.requests().with_memory(row.memory)
    gpu_memory = gpu_memory_of(row, job, req)
    return req.with_gpu_memory(gpu_memory, job.spec.sharing()) if gpu_memory != req.gpu_memory else req


def gpu_memory_of(row: JobRow, job: TrainingJob, req: Resources) -> int:
    """Bytes per GPU the next attempt asks for: a CUDA-OOM resize (``sizing["gpu_memory"]``) first;
    then the user's ``jobsched.io/gpu-memory``; under Auto, else the estimator's device figure
    (``sizing["device_estimate"]``) plus the right-sizing margin, rounded up to MiB."""
    if not req.gpus:
        return 0
    resized = row.sizing.get("gpu_memory")
    if resized:
        return int(resized)
    if req.gpu_memory or job.spec.memory_policy is not MemoryPolicy.AUTO:
        return req.gpu_memory
    est = row.sizing.get("device_estimate")
    if not est:
        return 0
    mib = 2**20
    return int(math.ceil(int(est) * (1 + job.spec.right_sizing.margin) / mib)) * mib


def pod_group(row: JobRow) -> PodGroup:
    job = job_spec(row)
    return PodGroup(
        key=row.key, request=request_of(row, job), replicas=job.spec.replicas, queue=row.queue,
        priority=row.priority, created=row.created_at, node_selector=dict(job.spec.template.node_selector),
        gpu_models=tuple(job.spec.gpu_models), placement=job.spec.placement,
        constraints=from_template(job.spec.template.tolerations, job.spec.template.affinity),
    )


def running_gang(job: JobRow, att: AttemptRow) -> RunningGang:
    stop = att.stop_reason or ""
    terminating_for = stop.split(":", 1)[1] if stop.startswith("Preempted:") else None
    return RunningGang(
        key=job.key, request=Resources.from_dict(att.requests),
        assignments=tuple(Assignment(int(r), str(n), -1, tuple(g)) for r, n, g in att.assignments),
        queue=job.queue, priority=job.priority, started=att.started_at or 0.0,
        terminating_for=terminating_for,
    )


def memory_timeline(timelines: dict[int, dict[str, Any]], limit: int | None) -> MemoryTimeline | None:
    from jobsched.rightsizing.timeline import peak_replica, summary

    best = peak_replica(timelines)
    if best is None:
        return None
    rank, tl = best
    return MemoryTimeline(rank=rank, **summary(tl, limit), t=list(tl.get("t") or []),
                          usage=[int(x) for x in tl.get("usage") or []])


def attempt_info(att: AttemptRow, timelines: dict[int, dict[str, Any]] | None = None) -> AttemptInfo:
    req = Resources.from_dict(att.requests)
    requests = {"cpu": req.cpu_milli, "memory": req.memory, "nvidia.com/gpu": req.gpus}
    if req.gpu_memory:
        requests["jobsched.io/gpu-memory"] = req.gpu_memory
    if req.gpus and req.gpu_milli < 1000:
        requests["jobsched.io/gpu-milli"] = req.gpu_milli
    limits = {"memory": att.memory_limit} if att.memory_limit is not None else {}
    reps = [ReplicaInfo(rank=int(k), **{kk: vv for kk, vv in v.items() if kk != "rank"})
            for k, v in sorted(att.replicas.items(), key=lambda kv: int(kv[0]))]
    nodes = [str(n) for _, n, _ in att.assignments]
    return AttemptInfo(
        index=att.idx, resources=AttemptResources(requests=requests, limits=limits),
        exit_code=att.exit_code, reason=att.reason, message=att.message, peak_memory_bytes=att.peak_memory,
        node=nodes[0] if nodes else None, nodes=nodes, started_at=att.started_at,
        finished_at=att.finished_at, enforcement=att.enforcement, resumed_from_checkpoint=att.resumed,
        replicas=reps, memory_mode=memory_mode(att),
        memory_timeline=memory_timeline(timelines, att.memory_limit) if timelines else None,
    )


def memory_mode(att: AttemptRow) -> str | None:
    from jobsched.rightsizing.recovery import MIN_BURST

    request = int(att.requests.get("memory") or 0)
    if att.memory_limit is None:
        return None
    return "burst" if request and att.memory_limit >= request * MIN_BURST else "fixed"


def job_status(store: Store, row: JobRow, with_manifest: bool = False,
               timelines: dict[int, dict[int, dict[str, Any]]] | None = None, now: float | None = None) -> JobStatus:
    """``timelines``: attempt index -> rank -> memory timeline, shown per attempt when given."""
    job = row.manifest
    tls = timelines or {}
    message = row.message
    retry_after = row.sizing.get("retry_after")
    if now is not None and row.reason == "BackOff" and row.phase == JobPhase.PENDING.value and retry_after:
        message = f"{message} ({format_duration(max(float(retry_after) - now, 0.0))} left)"
    events = [EventInfo(time=e["time"], type=e["type"], reason=e["reason"], message=e["message"])
              for e in store.events(row.uid)]
    return JobStatus(
        name=row.name, namespace=row.namespace, uid=row.uid, queue=row.queue, priority=row.priority,
        replicas=int(job.get("spec", {}).get("replicas", 1)), phase=JobPhase(row.phase), reason=row.reason,
        message=message, created_at=row.created_at, admitted_at=row.admitted_at,
        finished_at=row.finished_at, attempts=[attempt_info(a, tls.get(a.idx)) for a in store.attempts(row.uid)],
        events=events, sizing=SizingInfo(**row.sizing), cost=row.cost,
        labels=dict(job.get("metadata", {}).get("labels", {})), manifest=job if with_manifest else None,
    )


def launch_to_json(g: GangLaunch) -> dict[str, Any]:
    return {
        "job_key": g.job_key, "job_uid": g.job_uid, "attempt": g.attempt, "checkpoint_dir": g.checkpoint_dir,
        "placement": g.placement, "labels": g.labels, "pod_template": g.pod_template,
        "ttl_seconds_after_finished": g.ttl_seconds_after_finished,
        "replicas": [{**r.__dict__, "requests": r.requests.as_dict(), "gpus": list(r.gpus)} for r in g.replicas],
    }


def launch_from_json(d: dict[str, Any]) -> GangLaunch:
    reps = [ReplicaLaunch(**{**r, "requests": Resources.from_dict(r["requests"]), "gpus": tuple(r["gpus"])})
            for r in d["replicas"]]
    return GangLaunch(d["job_key"], d["job_uid"], int(d["attempt"]), reps, d.get("checkpoint_dir"),
                      d.get("placement", "Pack"), d.get("labels", {}), d.get("pod_template", {}),
                      d.get("ttl_seconds_after_finished"))


def dumps(x: Any) -> str:
    return json.dumps(x, sort_keys=True)


RANK_ENV_ANNOTATION = "jobsched.io/rank-env"


def rank_env(job: TrainingJob) -> dict[int, dict[str, str]]:
    """Per-rank extra environment from the ``jobsched.io/rank-env`` annotation (JSON
    ``{"0": {"DMLC_ROLE": "scheduler"}, ...}``), used for MXJob roles."""
    raw = job.metadata.annotations.get(RANK_ENV_ANNOTATION)
    if not raw:
        return {}
    data = json.loads(raw)
    return {int(k): {str(a): str(b) for a, b in v.items()} for k, v in data.items()}
