"""What the Ray backend tracks per gang and replica, and how a dead actor's exit is classified."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobsched.backends.base import ReplicaEvent
from jobsched.backends.ray.actor import STREAMS

RAY_OOM = re.compile(r"running low on memory|memory pressure \(OOM\)|memory monitor", re.IGNORECASE)
NODE_DIED = re.compile(r"node (has )?died|NODE_DIED|raylet died", re.IGNORECASE)


@dataclass
class Replica:
    job_key: str
    attempt: int
    rank: int
    actor: Any  # a Ray actor handle
    handle: dict[str, Any]  # what start() returned for this rank (persisted by the controller)
    log_dir: Path  # the scheduler-side log directory
    memory_limit: int | None
    exit_ref: Any = None  # ObjectRef of actor.wait_exit()
    status_ref: Any = None  # ObjectRef of actor.status(), for the peak memory
    peak: int = 0
    reported_running: bool = False
    done: bool = False

    @property
    def mirrored(self) -> bool:
        """Logs are written on the replica's node and copied here by the backend."""
        return not self.handle.get("shared", True)


@dataclass
class Gang:
    name: str  # the placement group's name; actors are "<name>-r<rank>"
    job_key: str
    attempt: int
    replicas: dict[int, Replica] = field(default_factory=dict)
    stop_reason: str | None = None
    kill_at: float | None = None  # monotonic deadline after stop(): then the actors are killed

    def live(self) -> list[Replica]:
        return [r for r in self.replicas.values() if not r.done]


def exit_event(r: Replica, result: dict[str, Any], now: float) -> ReplicaEvent:
    peak = max(int(result.get("peak_memory_bytes") or 0), r.peak) or None
    return ReplicaEvent(r.job_key, r.attempt, r.rank, "exited", float(result.get("finished_at") or now),
                        exit_code=result.get("exit_code"), reason=result.get("reason") or "Error",
                        peak_memory_bytes=peak, message=result.get("message"))


def death_event(r: Replica, gang: Gang, error: Exception, now: float) -> ReplicaEvent:
    """The replica's actor died before reporting an exit: stopped by us, killed by Ray's memory
    monitor (OOMKilled, at least at its limit), its node died (NodeLost), or unknown (Lost)."""
    from ray.exceptions import NodeDiedError, OutOfMemoryError

    text = str(error)
    peak: int | None = r.peak or None
    if gang.stop_reason is not None:
        reason, msg = gang.stop_reason, f"replica actor killed after the grace period ({gang.stop_reason})"
    elif isinstance(error, OutOfMemoryError) or RAY_OOM.search(text):
        reason, msg = "OOMKilled", "killed by Ray's memory monitor (node memory pressure)"
        peak = max(peak or 0, r.memory_limit or 0) or None
    elif isinstance(error, NodeDiedError) or NODE_DIED.search(text) or getattr(error, "preempted", False):
        reason, msg = "NodeLost", "the Ray node running this replica died"
    else:
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        reason, msg = "Lost", f"replica actor died: {first}"
    return ReplicaEvent(r.job_key, r.attempt, r.rank, "exited", now,
                        exit_code=137 if reason == "OOMKilled" else None, reason=reason,
                        peak_memory_bytes=peak, message=msg)


def mirror_logs(reps: list[Replica], timeout: float = 5.0) -> None:
    """Append what each replica's node has beyond our copy (nodes that do not share the home)."""
    import ray

    calls = []
    for r in reps:
        for s in STREAMS:
            p = r.log_dir / f"rank-{r.rank}.{s}"
            calls.append((p, r.actor.read_log.remote(s, p.stat().st_size if p.exists() else 0)))
    if not calls:
        return
    try:
        chunks = ray.get([ref for _, ref in calls], timeout=timeout)
    except Exception:  # an actor is gone or slow: keep what we have
        return
    for (p, _), data in zip(calls, chunks, strict=True):
        with open(p, "ab") as f:  # created even when empty, so every rank has its log file
            f.write(data)
