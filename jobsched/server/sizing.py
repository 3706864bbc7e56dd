"""What happens to a job after an attempt ends: finish, requeue, retry, or resize (right-sizing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobsched.rightsizing.policy import round_up
from jobsched.server import convert
from jobsched.spec import quantity as q
from jobsched.spec.duration import format_duration
from jobsched.spec.status import JobPhase
from jobsched.store import AttemptRow, JobRow

if TYPE_CHECKING:
    from jobsched.rightsizing.recovery import EndedAttempt, Recovery

REQUEUE_SAME_SIZE = {"Preempted", "Evicted", "NodeLost"}


@dataclass
class AfterAttempt:
    job_fields: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def after_attempt(job: JobRow, att: AttemptRow, reason: str, peak: int | None, cap: int,
                  now: float, ended: Sequence[EndedAttempt] = (), estimate: int | None = None,
                  recommended: int | None = None, gpu_cap: int | None = None) -> AfterAttempt:
    """``ended``: what every attempt so far (this one last) told about memory, for OOM recovery;
    ``estimate``/``recommended``: the estimator's and the history's figures, when known;
    ``gpu_cap``: the most GPU memory any GPU the job may use offers (for a CUDA OOM)."""
    spec = convert.job_spec(job)
    out = AfterAttempt()
    if reason == "Completed":
        out.job_fields = {"phase": JobPhase.SUCCEEDED.value, "reason": "Completed", "message": None,
                          "finished_at": now}
        out.events.append(("Normal", "Succeeded", f"attempt {att.idx}: every replica exited 0"))
        return out
    if job.cancel_requested or reason == "Cancelled":
        out.job_fields = {"phase": JobPhase.CANCELLED.value, "reason": "Cancelled",
                          "message": "cancelled by the user", "finished_at": now}
        out.events.append(("Normal", "Cancelled", f"attempt {att.idx} stopped"))
        return out
    request = int(att.requests.get("memory") or 0)
    if reason == "Evicted" and peak and (att.memory_limit or 0) > request and peak > request:
        # Evicted while bursting above its request: it needs at least what it used, unless it leaks.
        from jobsched.rightsizing.recovery import leak_verdict

        leak = leak_verdict(ended) if ended else None
        if leak is not None:
            msg = f"memory leak: {leak}; evicted for node memory pressure, the job is stopped"
            out.job_fields = {"phase": JobPhase.FAILED.value, "reason": "MemoryLeak", "finished_at": now,
                              "message": msg}
            out.events.append(("Warning", "MemoryLeak", msg))
            return out
        rs = spec.spec.right_sizing
        grown = min(round_up(peak * (1 + rs.margin)), cap)
        if grown > job.memory:
            out.job_fields = {"phase": JobPhase.PENDING.value, "reason": reason, "memory": grown,
                              "sizing": {**job.sizing, "chosen_memory": grown, "resized": True, "burst": True},
                              "message": f"attempt {att.idx} was evicted while using {q.format_bytes(peak)} above "
                                         f"its request: requeued with request {q.format_bytes(grown)}"}
            out.events.append(("Normal", "Requeued", out.job_fields["message"]))
            return out
    if reason in REQUEUE_SAME_SIZE:
        out.job_fields = {"phase": JobPhase.PENDING.value, "reason": reason,
                          "message": f"attempt {att.idx} ended ({reason}): requeued at the same size"}
        out.events.append(("Normal", "Requeued", out.job_fields["message"]))
        return out
    if reason == "StartFailed":  # the shim could not exec the command: the same on every retry
        detail = next((r.get("message") for r in att.replicas.values()
                       if r.get("reason") == "StartFailed" and r.get("message")), None)
        out.job_fields = {"phase": JobPhase.FAILED.value, "reason": "StartFailed", "finished_at": now,
                          "message": f"attempt {att.idx}: {detail or 'the command could not be started'}"
                                     "; not retried (it would fail the same way)"}
        out.events.append(("Warning", "Failed", out.job_fields["message"]))
        return out
    retries = job.retries_used + 1
    if retries > spec.spec.max_retries:
        out.job_fields = {"phase": JobPhase.FAILED.value, "reason": reason, "retries_used": retries,
                          "finished_at": now,
                          "message": f"attempt {att.idx} ended {reason}; maxRetries "
                                     f"({spec.spec.max_retries}) exhausted"}
        if reason in ("OOMKilled", "InProgramOOM"):  # what the next attempt would have asked for
            d = _next_oom_size(job, att, reason, peak, cap, ended, estimate, recommended)
            if d.memory is not None:
                out.job_fields["sizing"] = {**job.sizing, "suggested_memory": d.memory}
        out.events.append(("Warning", "Failed", out.job_fields["message"]))
        return out
    if reason == "CudaOOM":
        return _cuda_oom(job, att, retries, gpu_cap, now)
    if reason in ("OOMKilled", "InProgramOOM"):
        return _resize(job, att, reason, peak, cap, retries, now, ended, estimate, recommended)
    detail = next((r.get("message") for r in att.replicas.values()
                   if r.get("reason") == reason and r.get("message")), None)
    what = f"attempt {att.idx} ended {reason}" + (f" ({detail})" if detail else "")
    out.job_fields, event = backoff(job, retries, spec.spec.max_retries, spec.spec.backoff.delay(retries),
                                    now, what)
    out.events.append(event)
    return out


def backoff(job: JobRow, retries: int, max_retries: int, delay: float, now: float,
            what: str) -> tuple[dict[str, Any], tuple[str, str, str]]:
    """Requeue for retry ``retries`` after ``delay`` seconds: the controller admits the job again
    only once ``sizing.retry_after`` has passed (reason BackOff meanwhile)."""
    message = f"{what}; retry {retries}/{max_retries} in {format_duration(delay)}"
    fields = {"phase": JobPhase.PENDING.value, "reason": "BackOff", "retries_used": retries,
              "message": message, "sizing": {**job.sizing, "retry_after": now + delay}}
    return fields, ("Warning", "BackOff", message)


def _next_oom_size(job: JobRow, att: AttemptRow, reason: str, peak: int | None, cap: int,
                   ended: Sequence[EndedAttempt], estimate: int | None, recommended: int | None) -> Recovery:
    from jobsched.rightsizing.recovery import EndedAttempt, after_oom

    rs = convert.job_spec(job).spec.right_sizing
    limit, what = cap, "largest node"
    if rs.max_memory is not None and q.memory_bytes(rs.max_memory) < cap:
        limit, what = q.memory_bytes(rs.max_memory), "rightSizing.maxMemory"
    if not ended:
        ended = [EndedAttempt(reason, int(att.requests.get("memory") or job.memory), att.memory_limit, peak)]
    return after_oom(ended, margin=rs.margin, growth=rs.growth, cap=limit, cap_what=what, estimate=estimate,
                     recommended=recommended, burst=rs.burst != "Never")


def _resize(job: JobRow, att: AttemptRow, reason: str, peak: int | None, cap: int, retries: int, now: float,
            ended: Sequence[EndedAttempt], estimate: int | None, recommended: int | None) -> AfterAttempt:
    """After an OOM: the next size from the timeline, the estimate and the history (recovery.py)."""
    out = AfterAttempt()
    d = _next_oom_size(job, att, reason, peak, cap, ended, estimate, recommended)
    if d.memory is None:
        stop = d.stop_reason or "MemoryCapReached"
        out.job_fields = {"phase": JobPhase.FAILED.value, "reason": stop, "retries_used": retries,
                          "finished_at": now, "message": d.reason}
        out.events.append(("Warning", stop, d.reason))
        return out
    sizing = {**job.sizing, "chosen_memory": d.memory, "why": d.reason, "resized": True, "burst": d.burst}
    out.job_fields = {"phase": JobPhase.PENDING.value, "reason": reason, "memory": d.memory,
                      "sizing": sizing, "retries_used": retries,
                      "message": f"resized to {q.format_bytes(d.memory)} per replica"
                                 + (" (measuring retry: the limit may burst above it)" if d.burst else "")
                                 + "; resumes from the newest checkpoint"}
    out.events.append(("Warning", "Resized", d.reason))
    return out


def _cuda_oom(job: JobRow, att: AttemptRow, retries: int, gpu_cap: int | None, now: float) -> AfterAttempt:
    """Resize on the device dimension: the next attempt asks for more GPU memory per GPU (a bigger
    share, a whole GPU, or a GPU model with more memory), never the same device size again; the host
    memory stays. Without a larger GPU the job fails with a hint."""
    from jobsched.rightsizing.policy import next_attempt_memory
    from jobsched.spec.resources import Resources

    rs = convert.job_spec(job).spec.right_sizing
    had = [int(r.get("gpu_memory_limit") or 0) for r in att.launch.get("replicas", [])]
    device = max(had, default=0) or Resources.from_dict(att.requests).gpu_memory or None
    peaks = [int(r["device_peak_bytes"]) for r in att.replicas.values() if r.get("device_peak_bytes")]
    previous = att.memory_limit or job.memory
    d = next_attempt_memory(reason="CudaOOM", previous=previous, observed_peak=max(peaks, default=None),
                            margin=rs.margin, growth=rs.growth, cap=max(previous, 1), max_memory=None,
                            device="gpu", gpu_memory=device, gpu_cap=gpu_cap)
    out = AfterAttempt()
    if d.gpu_memory is None:
        out.job_fields = {"phase": JobPhase.FAILED.value, "reason": "GpuMemoryCapReached",
                          "retries_used": retries, "finished_at": now, "message": d.reason}
        out.events.append(("Warning", "GpuMemoryCapReached", d.reason))
        return out
    sizing = {**job.sizing, "gpu_memory": d.gpu_memory, "why": d.reason}
    out.job_fields = {"phase": JobPhase.PENDING.value, "reason": "CudaOOM", "sizing": sizing,
                      "retries_used": retries,
                      "message": f"resized to {q.format_bytes(d.gpu_memory)} of GPU memory per GPU; resumes "
                                 "from the newest checkpoint"}
    out.events.append(("Warning", "Resized", d.reason))
    return out
