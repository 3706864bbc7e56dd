"""What happens to a job after an attempt ends: finish, requeue, retry, or resize (right-sizing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobsched.server import convert
from jobsched.spec import quantity as q
from jobsched.spec.status import JobPhase
from jobsched.store import AttemptRow, JobRow

REQUEUE_SAME_SIZE = {"Preempted", "Evicted", "NodeLost"}


@dataclass
class AfterAttempt:
    job_fields: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def after_attempt(job: JobRow, att: AttemptRow, reason: str, peak: int | None, cap: int,
                  now: float, gpu_cap: int | None = None) -> AfterAttempt:
    from jobsched.rightsizing.policy import next_attempt_memory

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
    if reason in REQUEUE_SAME_SIZE:
        out.job_fields = {"phase": JobPhase.PENDING.value, "reason": reason,
                          "message": f"attempt {att.idx} ended ({reason}): requeued at the same size"}
        out.events.append(("Normal", "Requeued", out.job_fields["message"]))
        return out
    retries = job.retries_used + 1
    if retries > spec.spec.max_retries:
        out.job_fields = {"phase": JobPhase.FAILED.value, "reason": reason, "retries_used": retries,
                          "finished_at": now,
                          "message": f"attempt {att.idx} ended {reason}; maxRetries "
                                     f"({spec.spec.max_retries}) exhausted"}
        out.events.append(("Warning", "Failed", out.job_fields["message"]))
        return out
    if reason == "CudaOOM":
        return _cuda_oom(job, att, retries, gpu_cap, now)
    if reason in ("OOMKilled", "InProgramOOM"):
        rs = spec.spec.right_sizing
        previous = att.memory_limit or job.memory
        d = next_attempt_memory(
            reason=reason, previous=previous, observed_peak=peak, margin=rs.margin, growth=rs.growth,
            cap=cap, max_memory=q.memory_bytes(rs.max_memory) if rs.max_memory is not None else None)
        if d.memory is None:
            out.job_fields = {"phase": JobPhase.FAILED.value, "reason": "MemoryCapReached",
                              "retries_used": retries, "finished_at": now, "message": d.reason}
            out.events.append(("Warning", "MemoryCapReached", d.reason))
            return out
        sizing = {**job.sizing, "chosen_memory": d.memory, "why": d.reason, "resized": True}
        out.job_fields = {"phase": JobPhase.PENDING.value, "reason": reason, "memory": d.memory,
                          "sizing": sizing, "retries_used": retries,
                          "message": f"resized to {q.format_bytes(d.memory)} per replica; resumes from "
                                     "the newest checkpoint"}
        out.events.append(("Warning", "Resized", d.reason))
        return out
    out.job_fields = {"phase": JobPhase.PENDING.value, "reason": reason, "retries_used": retries,
                      "message": f"attempt {att.idx} ended {reason}; retry {retries}/{spec.spec.max_retries}"}
    out.events.append(("Warning", "Retrying", out.job_fields["message"]))
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
