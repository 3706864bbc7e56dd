"""Status conditions as Kubernetes conventions want them (metav1.Condition): ``type``, ``status``,
``reason``, ``message``, ``lastTransitionTime`` (kept while the status stays the same) and
``observedGeneration``; and quantities in Kubernetes notation for printer columns."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from jobsched.spec.units import format_cpu, quantity_bytes


def rfc3339(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def condition(typ: str, on: bool, reason: str, message: str, when: float | None, prev: Mapping[str, Any] | None,
              generation: int | None) -> dict[str, Any]:
    """One condition; ``lastTransitionTime`` is the previous one's when ``status`` did not change,
    else ``when`` (the time the store recorded for the transition)."""
    status = "True" if on else "False"
    if prev is not None and prev.get("status") == status and prev.get("lastTransitionTime"):
        ltt = prev["lastTransitionTime"]
    else:
        ltt = rfc3339(when if when is not None else time.time())
    out: dict[str, Any] = {"type": typ, "status": status, "reason": reason, "message": message or "",
                           "lastTransitionTime": ltt}
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def previous(status: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The conditions of a status written before, by type."""
    conds: Iterable[Any] = (status or {}).get("conditions") or []
    return {c["type"]: c for c in conds if isinstance(c, Mapping) and "type" in c}


def usage_quantities(usage: Mapping[str, int]) -> dict[str, Any]:
    """A usage vector (cpu milli, memory bytes, GPUs) in Kubernetes notation."""
    return {"cpu": format_cpu(int(usage.get("cpu", 0))), "memory": quantity_bytes(int(usage.get("memory", 0))),
            "nvidia.com/gpu": str(int(usage.get("nvidia.com/gpu", 0)))}


def job_conditions(st: Any, prev: Mapping[str, Any] | None, generation: int | None) -> list[dict[str, Any]]:
    """Admitted, Running, Succeeded, Failed for a job's status (spec.api.JobStatus). A pending job's
    Admitted condition is False with the reason it waits: QuotaExceeded (its queue's quota is used
    up) apart from Unschedulable (no room in the cluster), as ``jobsched status`` says."""
    phase = st.phase.value
    last = st.attempts[-1] if st.attempts else None
    terminal = phase in ("Succeeded", "Failed", "Cancelled")
    old = previous(prev)
    ended = (last.finished_at if last else None) or st.finished_at or st.created_at

    if phase == "Pending":
        admitted = (False, st.reason or "Pending", st.message or "", ended)
    else:
        admitted = (True, "Admitted", "", st.admitted_at)
    if phase == "Running":
        running = (True, "Running", "", last.started_at if last else None)
    else:
        running = (False, phase if terminal else "NotRunning", "", ended)
    done = {typ: (True, st.reason or typ, st.message or "", st.finished_at) if phase == typ
            else (False, "NotFinished" if typ == "Succeeded" else "NotFailed", "", st.created_at)
            for typ in ("Succeeded", "Failed")}
    table = {"Admitted": admitted, "Running": running, **done}
    return [condition(typ, on, reason, msg, when, old.get(typ), generation)
            for typ, (on, reason, msg, when) in table.items()]
