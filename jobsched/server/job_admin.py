"""JobService operations beyond submit/get/cancel: ``metadata.generateName``, ``delete`` and the
server-side dry run (``POST /v1/jobs?dryRun=true``)."""

from __future__ import annotations

import secrets
import shutil
import string
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobsched.server import convert
from jobsched.server.errors import Conflict, Invalid
from jobsched.spec.api import DryRunResult
from jobsched.spec.job import GENERATED_SUFFIX, MemoryPolicy, TrainingJob
from jobsched.spec.quantity import format_bytes, memory_bytes
from jobsched.spec.queue import Queue
from jobsched.spec.status import JobPhase
from jobsched.store import JobRow, Store

if TYPE_CHECKING:  # pragma: no cover
    from jobsched.server.controller import Controller

_ALPHABET = string.ascii_lowercase + string.digits
DELETE_TIMEOUT = 60.0


def pick_name(job: TrainingJob, exists: Callable[[str, str], bool]) -> None:
    """``generateName``: the prefix plus 5 random characters, free in the namespace (as Kubernetes)."""
    if job.metadata.name:
        return
    prefix = (job.metadata.generate_name or "")[:63 - GENERATED_SUFFIX]
    for _ in range(20):
        name = prefix + "".join(secrets.choice(_ALPHABET) for _ in range(GENERATED_SUFFIX))
        if not exists(job.metadata.namespace, name):
            job.metadata.name = name
            return
    raise Conflict(f"metadata.generateName: no free name with prefix {prefix!r}")


def stop(store: Store, row: JobRow, wake: Callable[[], None], timeout: float = DELETE_TIMEOUT) -> JobRow | None:
    """Cancel the job if it is live and wait until every attempt has stopped; the final row."""
    if not JobPhase(row.phase).is_terminal() and not row.cancel_requested:
        store.update_job(row.uid, cancel_requested=True)
        store.add_event(row.uid, time.time(), "Normal", "CancelRequested", "deleting the job")
    deadline = time.monotonic() + timeout
    while True:
        fresh = store.job_by_uid(row.uid)
        if fresh is None:
            return None  # deleted meanwhile
        live = [a for a in store.attempts(row.uid) if a.state != "ended"]
        if JobPhase(fresh.phase).is_terminal() and not live:
            return fresh
        if time.monotonic() > deadline:
            raise Conflict(f"job {row.key} is still stopping after {timeout:.0f} s; delete it again later")
        wake()
        time.sleep(0.05)


def remove(store: Store, backend: Any, home: Path, row: JobRow) -> None:
    """Remove a stopped job: store rows (job, attempts, events, timelines), the backend's objects
    (run directory and logs, or pods, Service and checkpoint claim) and the checkpoints jobsched
    made for it. A ``spec.checkpointDir`` the user named is the user's and stays."""
    forget = getattr(backend, "forget", None)
    if forget is not None:
        forget(row.key, row.uid)
    if not row.manifest["spec"].get("checkpointDir"):
        shutil.rmtree(home / "checkpoints" / row.namespace / row.name, ignore_errors=True)
    store.delete_job(row.uid)


def dry_run(store: Store, controller: Controller | None, job: TrainingJob,
            warnings: list[str], now: float) -> DryRunResult:
    """What submitting ``job`` would do, storing nothing: the memory admission sizing would choose
    (without the estimator child: it runs user code for seconds), and one scheduling cycle of this
    job alone against the current cluster (never fits, quota, or where it would start)."""
    queues = store.queues()
    if job.spec.queue not in queues:
        raise Invalid(f"spec.queue: queue {job.spec.queue!r} does not exist (known: {', '.join(sorted(queues))})")
    if job.metadata.name and store.job(job.metadata.namespace, job.name) is not None:
        raise Conflict(f"metadata.name: job {job.key!r} already exists")
    generated = not job.metadata.name
    name = job.name or (job.metadata.generate_name or "") + "?" * GENERATED_SUFFIX
    if generated:  # a name as submit would pick it, for the scheduling check only
        job = job.model_copy(deep=True)
        pick_name(job, lambda ns, n: store.job(ns, n) is not None)
    memory, why, skipped = _memory(store, controller, job, Queue.model_validate(queues[job.spec.queue]))
    res = DryRunResult(name=name, namespace=job.metadata.namespace, queue=job.spec.queue,
                       memory=memory or None, memory_reason=why, skipped=skipped, warnings=warnings,
                       name_generated=generated)
    if not memory:
        res.fits, res.verdict = False, why
        return res
    if controller is None:
        res.verdict = "not checked against the cluster"
        return res
    from jobsched.core.cycle import Admit, Reject, Scheduler, Wait

    row = JobRow(uid=str(uuid.uuid4()), namespace=job.metadata.namespace, name=job.name, manifest=job.to_manifest(),
                 queue=job.spec.queue, priority=job.spec.priority, phase=JobPhase.PENDING.value, reason=None,
                 message=None, created_at=now, admitted_at=None, finished_at=None, family=job.family(),
                 memory=memory, sizing={}, sizing_ready=True, retries_used=0, cancel_requested=False, cost=0.0)
    snap, _ = controller.snapshot()
    sched = Scheduler(policy=controller.scheduler.policy, preemption=controller.scheduler.preemption)
    decisions = sched.cycle(snap, [convert.pod_group(row)], now).decisions
    d = next((x for x in decisions if getattr(x, "key", None) == row.key), None)
    if isinstance(d, Reject):
        res.fits, res.verdict = False, f"never fits: {d.reason}"
        res.quota = d.reason if "quota" in d.reason else "within quota"
    elif isinstance(d, Wait):
        res.verdict = f"would wait: {d.reason}"
        res.quota = d.reason if d.quota else "within quota"
    elif isinstance(d, Admit):
        nodes = sorted({a.node for a in d.assignments})
        res.admit_now, res.quota = True, "within quota"
        res.verdict = f"would start now on {', '.join(nodes)}"
    if any(x.__class__.__name__ == "Preempt" for x in decisions):
        res.verdict = "would preempt lower-priority jobs: " + res.verdict
    return res


def _memory(store: Store, controller: Controller | None, job: TrainingJob,
            queue: Queue) -> tuple[int, str, list[str]]:
    """Admission sizing as the estimator thread would do it, minus the estimate itself."""
    from jobsched.rightsizing.estimator import names_factory
    from jobsched.rightsizing.history import recommend
    from jobsched.rightsizing.policy import admission_memory

    declared = job.requests().memory
    auto = job.spec.memory_policy is MemoryPolicy.AUTO
    skipped = []
    if not auto:
        if declared:
            return declared, "declared (memoryPolicy Fixed)", skipped
        return (queue.default_memory_bytes(),
                f"no memory request: queue {queue.name}'s defaultMemory (memoryPolicy Fixed)", skipped)
    if names_factory(job):
        skipped.append("memory estimate: not run (it imports the job's PyTorch factory in a child process "
                       "and takes seconds); a real submit may size from it")
    rs = job.spec.right_sizing
    peaks = [int(r["peak"]) for r in store.history(job.family()) if r["reason"] in ("Completed", "OOMKilled")]
    floor = memory_bytes(rs.min_memory) if rs.min_memory is not None else 64 * 2**20
    recommended = recommend(peaks, margin=rs.margin, floor=floor) if peaks else None
    cap = controller.max_node_memory() if controller is not None else 1 << 62
    if rs.max_memory is not None:
        cap = min(cap, memory_bytes(rs.max_memory))
    default = 0 if declared else queue.default_memory_bytes()
    d = admission_memory(declared=declared if declared or recommended else default, estimate=None,
                         recommended=recommended, margin=rs.margin,
                         pinned_limit=job.spec.template.resources.memory_limit(), auto=True, cap=cap)
    if d.memory is None:
        return 0, f"never fits: {d.reason}", skipped
    source = (f" (history: {len(peaks)} recorded run(s) of family {job.family()})" if peaks
              else "" if declared else f" (queue {queue.name} defaultMemory {format_bytes(default)})")
    return d.memory, d.reason + source, skipped
