"""Job and attempt state transitions driven by replica events, cancellations and preemptions.

A gang lives and dies together: the first replica that fails stops the others; the attempt ends
when every replica has exited, with the reason of the first failure. Then the job is finished,
requeued at the same size (preemption, eviction, node loss), resized (OOM), or retried (error) within
``maxRetries``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobsched.backends.base import Backend, ReplicaEvent
from jobsched.server import convert
from jobsched.server.metrics import Metrics
from jobsched.server.sizing import after_attempt, backoff
from jobsched.spec.status import AttemptReason, JobPhase
from jobsched.store import AttemptRow, JobRow, Store

if TYPE_CHECKING:
    from jobsched.rightsizing.recovery import EndedAttempt

log = logging.getLogger("jobsched.lifecycle")
FAILURES = {"Error", "OOMKilled", "InProgramOOM", "CudaOOM", "Evicted", "Lost", "NodeLost", "StartFailed"}


class Lifecycle:
    def __init__(self, store: Store, backend: Backend, metrics: Metrics, clock: Callable[[], float],
                 max_node_memory: Callable[[], int],
                 max_gpu_memory: Callable[[JobRow], int | None] | None = None) -> None:
        self.store, self.backend, self.metrics, self.clock = store, backend, metrics, clock
        self.max_node_memory = max_node_memory
        self.max_gpu_memory = max_gpu_memory  # the largest GPU a job could get (CUDA OOM resizing)
        self.stop_gang: Callable[..., None] = backend.stop  # the controller's: off its loop (binder.py)

    # events -----------------------------------------------------------------------------------
    def _find(self, job_key: str, attempt: int) -> tuple[JobRow, AttemptRow] | None:
        ns, name = job_key.split("/", 1)
        job = self.store.job(ns, name)
        if job is None:
            return None
        atts = [a for a in self.store.attempts(job.uid) if a.idx == attempt]
        return (job, atts[0]) if atts else None

    def on_event(self, ev: ReplicaEvent) -> None:
        found = self._find(ev.job_key, ev.attempt)
        if found is None or found[1].state == "ended":
            return
        job, att = found
        rep = dict(att.replicas.get(str(ev.rank), {}))
        rep["node"] = att.assignments[ev.rank][1] if ev.rank < len(att.assignments) else None
        if ev.kind == "running":
            rep["pid"] = ev.pid
            self.store.update_attempt(job.uid, att.idx, replicas={**att.replicas, str(ev.rank): rep})
            return
        reason = ev.reason
        if att.stop_reason is not None and ev.reason not in ("Completed", "OOMKilled", "InProgramOOM", "CudaOOM"):
            # Stopped by us: for a sibling's failure, a cancellation or a preemption.
            cause = att.stop_reason.split(":", 1)[0]
            reason = AttemptReason.GANG_STOPPED.value if cause in FAILURES else cause
        rep.update(exit_code=ev.exit_code, reason=reason, peak_memory_bytes=ev.peak_memory_bytes,
                   message=ev.message)
        if ev.device_peak_bytes:
            rep["device_peak_bytes"] = ev.device_peak_bytes
        replicas = {**att.replicas, str(ev.rank): rep}
        stop_reason = att.stop_reason
        with self.store.tx() as c:
            self.store.update_attempt(job.uid, att.idx, conn=c, replicas=replicas)
            if ev.timeline:
                self.store.put_timeline(job.uid, att.idx, ev.rank, ev.timeline, conn=c)
            if ev.reason in FAILURES and stop_reason is None:
                stop_reason = ev.reason
                self.store.update_attempt(job.uid, att.idx, conn=c, state="stopping", stop_reason=stop_reason)
                self.store.add_event(job.uid, ev.time, "Warning", ev.reason or "Error",
                                     f"replica {ev.rank} {ev.reason}: {ev.message or ''} — stopping the gang"
                                     .rstrip(), conn=c)
        if ev.reason == "OOMKilled":
            self.metrics.oom_kills.labels(queue=job.queue).inc()
        if stop_reason is not None and att.stop_reason is None and ev.reason in FAILURES:
            self.stop_gang(job.key, att.idx, AttemptReason.GANG_STOPPED.value, grace_seconds=5)
        if ev.reason == "Completed" and stop_reason is None and self._succeeded(job, replicas, len(att.assignments)):
            with self.store.tx() as c:  # spec.successRoles done: stop the rest, the attempt Completed
                self.store.update_attempt(job.uid, att.idx, conn=c, state="stopping", stop_reason="Completed")
                self.store.add_event(job.uid, ev.time, "Normal", "SuccessRolesDone", "every replica of "
                                     "spec.successRoles exited 0 — stopping the other replicas", conn=c)
            self.stop_gang(job.key, att.idx, "Completed", grace_seconds=5)
        n = len(att.assignments)
        if len([r for r in replicas.values() if r.get("reason")]) >= n:
            self.finish_attempt(job, att.idx)

    @staticmethod
    def _succeeded(job: JobRow, replicas: dict[str, Any], n: int) -> bool:
        """Every replica of spec.successRoles exited 0 while others still run."""
        if not job.manifest.get("spec", {}).get("successRoles"):
            return False
        ranks = convert.job_spec(job).spec.success_ranks()
        done = {int(k) for k, r in replicas.items() if r.get("reason") == "Completed"}
        return bool(ranks) and ranks <= done and len([r for r in replicas.values() if r.get("reason")]) < n

    def finish_attempt(self, job: JobRow, idx: int) -> None:
        att = next(a for a in self.store.attempts(job.uid) if a.idx == idx)
        stop = att.stop_reason.split(":", 1)[0] if att.stop_reason else None
        reps = att.replicas.values()
        if stop is None:
            stop = "Completed" if all(r.get("reason") == "Completed" for r in reps) else "Error"
        failing = [r for r in reps if r.get("reason") == stop] or list(reps)
        exit_code = next((r.get("exit_code") for r in failing if r.get("exit_code") is not None), None)
        peaks = [int(r["peak_memory_bytes"]) for r in reps if r.get("peak_memory_bytes")]
        peak = max(peaks) if peaks else None
        message = next((r.get("message") for r in failing if r.get("message")), None)
        now = self.clock()
        job = self.store.job_by_uid(job.uid) or job
        ended = self.ended_attempts(job, att, stop, peak) if stop in ("OOMKilled", "InProgramOOM",
                                                                     "Evicted") else ()
        gpu_cap = self.max_gpu_memory(job) if stop == "CudaOOM" and self.max_gpu_memory else None
        decision = after_attempt(job, att, stop, peak, self.max_node_memory(), now, ended=ended,
                                 estimate=job.sizing.get("estimated_memory"),
                                 recommended=job.sizing.get("recommended_memory"), gpu_cap=gpu_cap)
        with self.store.tx() as c:
            self.store.update_attempt(job.uid, idx, conn=c, state="ended", reason=stop, exit_code=exit_code,
                                      peak_memory=peak, message=message, finished_at=now)
            if peak and stop in ("Completed", "OOMKilled"):
                self.store.add_history(job.family, now, peak, att.memory_limit or 0, stop, conn=c)
            fields = decision.job_fields
            self.store.update_job(job.uid, conn=c, **fields)
            for type_, reason, msg in decision.events:
                self.store.add_event(job.uid, now, type_, reason, msg, conn=c)
        self.metrics.attempts.labels(reason=stop).inc()

    def ended_attempts(self, job: JobRow, current: AttemptRow, reason: str, peak: int | None) -> list[EndedAttempt]:
        """What each attempt of the job told about its memory, oldest first, ``current`` last (it
        is ending now with ``reason``): the profile of its peak replica's timeline."""
        from jobsched.rightsizing.recovery import MIN_BURST, EndedAttempt
        from jobsched.rightsizing.timeline import peak_replica, profile

        timelines = self.store.timelines(job.uid)
        out = []
        for a in self.store.attempts(job.uid):
            if a.idx != current.idx and a.state != "ended":
                continue
            why = reason if a.idx == current.idx else (a.reason or "")
            request = int(a.requests.get("memory") or 0)
            best = peak_replica(timelines.get(a.idx, {}))
            prof = profile(best[1], a.memory_limit) if best else None
            burst = bool(a.memory_limit and request and a.memory_limit >= request * MIN_BURST)
            out.append(EndedAttempt(why, request, a.memory_limit, peak if a.idx == current.idx else a.peak_memory,
                                    prof, burst))
        return out

    # actions ----------------------------------------------------------------------------------
    def preempt(self, victim_key: str, preemptor: str, reason: str) -> None:
        ns, name = victim_key.split("/", 1)
        job = self.store.job(ns, name)
        if job is None:
            return
        live = [a for a in self.store.attempts(job.uid) if a.state != "ended"]
        for att in live:
            with self.store.tx() as c:
                self.store.update_attempt(job.uid, att.idx, conn=c, state="stopping",
                                          stop_reason=f"Preempted:{preemptor}")
                self.store.add_event(job.uid, self.clock(), "Warning", "Preempted", reason, conn=c)
            self.stop_gang(job.key, att.idx, "Preempted")
        self.metrics.preemptions.inc()

    def process_cancellations(self) -> None:
        for job in self.store.jobs(phases=(JobPhase.PENDING.value, JobPhase.ADMITTED.value,
                                           JobPhase.RUNNING.value), cancel_requested=True):
            live = [a for a in self.store.attempts(job.uid) if a.state != "ended"]
            if not live:
                with self.store.tx() as c:
                    self.store.update_job(job.uid, conn=c, phase=JobPhase.CANCELLED.value, reason="Cancelled",
                                          message="cancelled by the user", finished_at=self.clock())
                    self.store.add_event(job.uid, self.clock(), "Normal", "Cancelled", "cancelled by the user",
                                         conn=c)
                continue
            for att in live:
                if att.stop_reason is None or att.stop_reason.startswith("Preempted"):
                    self.store.update_attempt(job.uid, att.idx, state="stopping", stop_reason="Cancelled")
                    self.stop_gang(job.key, att.idx, "Cancelled", grace_seconds=5)

    def fail(self, job: JobRow, reason: str, message: str) -> None:
        with self.store.tx() as c:
            self.store.update_job(job.uid, conn=c, phase=JobPhase.FAILED.value, reason=reason, message=message,
                                  finished_at=self.clock())
            self.store.add_event(job.uid, self.clock(), "Warning", reason, message, conn=c)

    def start_failed(self, job: JobRow, idx: int, message: str, permanent: bool = False) -> None:
        """Unreserve: end the attempt (StartFailed). A permanent failure (missing command or working
        directory, invalid env) fails the job now; a transient one is retried after a back-off,
        within maxRetries."""
        spec = convert.job_spec(job)
        retries = job.retries_used + 1
        now = self.clock()
        fields: dict[str, Any] = {"phase": JobPhase.FAILED.value, "reason": "StartFailed", "finished_at": now}
        if permanent:
            fields["message"] = f"{message}; not retried (it would fail the same way)"
        elif retries > spec.spec.max_retries:
            fields.update(retries_used=retries, message=f"{message}; maxRetries ({spec.spec.max_retries}) "
                                                        "exhausted")
        else:
            fields, event = backoff(job, retries, spec.spec.max_retries, spec.spec.backoff.delay(retries), now,
                                    f"attempt {idx} could not start: {message}")
        if fields["phase"] == JobPhase.FAILED.value:
            event = ("Warning", "StartFailed", fields["message"])
        with self.store.tx() as c:
            self.store.update_attempt(job.uid, idx, conn=c, state="ended", reason="StartFailed", message=message,
                                      finished_at=now)
            self.store.update_job(job.uid, conn=c, **fields)
            self.store.add_event(job.uid, now, *event, conn=c)

    def requeue_interrupted(self, job: JobRow, idx: int) -> None:
        """An attempt the scheduler restarted during, with nothing of it left running (its pods
        deleted and gone): ended Lost, the job requeued without using a retry."""
        now = self.clock()
        msg = f"attempt {idx} was not fully bound when the scheduler restarted: its pods were deleted, requeued"
        with self.store.tx() as c:
            self.store.update_attempt(job.uid, idx, conn=c, state="ended", reason="Lost", finished_at=now,
                                      message="the scheduler restarted before every replica was bound")
            self.store.update_job(job.uid, conn=c, phase=JobPhase.PENDING.value, reason="Requeued", message=msg)
            self.store.add_event(job.uid, now, "Normal", "Requeued", msg, conn=c)

    def readopt(self) -> None:
        """After a restart: re-adopt live replicas; those that vanished come back as Lost."""
        for att in self.store.live_attempts():
            job = self.store.job_by_uid(att.job_uid)
            if job is None:
                continue
            if (att.state == "starting" or not att.handles) and hasattr(self.backend, "recover_start"):
                continue  # the backend knows what was bound: recovery.py adopts or clears it (leader)
            if att.state == "starting" or not att.handles:
                # Crashed between assume and bind: nothing may be running; treat as lost.
                for rank in range(len(att.assignments)):
                    if str(rank) not in att.replicas or not att.replicas[str(rank)].get("reason"):
                        self.on_event(ReplicaEvent(job.key, att.idx, rank, "exited", self.clock(),
                                                   reason="Lost", message="scheduler restarted during start"))
                continue
            gang = convert.launch_from_json(att.launch)
            handles = {int(k): v for k, v in att.handles.items()
                       if not att.replicas.get(str(k), {}).get("reason")}
            for ev in self.backend.adopt(gang, handles):
                self.on_event(ev)
            self.store.add_event(job.uid, self.clock(), "Normal", "Readopted",
                                 f"attempt {att.idx} re-adopted after a scheduler restart")
