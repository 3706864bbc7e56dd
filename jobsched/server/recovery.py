"""Start-up recovery and continuous reconciliation against a backend that can tell what is bound.

The store records an attempt "starting" before its pods are created and "running" once every bind
returned. A kill -9 in between leaves the store behind the API server. On the leader, every few
seconds (the first time at once):

- each attempt still "starting" that no bind of this process is working on is handed to the
  backend's ``recover_start``: bound everywhere, it is adopted (recorded running, its pods tracked);
  otherwise its pods are deleted and confirmed gone, and the job is requeued without using a retry;
- the backend's ``reconcile`` deletes pods of attempts the store has ended and orphan unbound pods.

Backends without ``recover_start`` (local, Ray) keep :meth:`Lifecycle.readopt`'s behaviour.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from jobsched.server import convert
from jobsched.server.lifecycle import Lifecycle
from jobsched.store import AttemptRow, JobRow, Store

log = logging.getLogger("jobsched.recovery")
EVERY = 5.0  # s between reconciliations


class Recovery:
    def __init__(self, store: Store, backend: Any, lifecycle: Lifecycle, in_flight: Callable[[str, int], bool],
                 bound: Callable[[JobRow, int, dict[int, dict[str, object]]], None]) -> None:
        self.store, self.backend, self.lifecycle = store, backend, lifecycle
        self.in_flight, self.bound = in_flight, bound
        self.enabled = hasattr(backend, "recover_start")
        self._next = 0.0

    def tick(self) -> bool:
        """Returns whether an attempt was adopted or requeued (the controller schedules again)."""
        if not self.enabled or time.monotonic() < self._next:
            return False
        is_leader = getattr(self.backend, "is_leader", None)
        if is_leader is not None and not is_leader():
            return False  # only the leader deletes or adopts
        self._next = time.monotonic() + EVERY
        changed = False
        for att in self.store.live_attempts():
            if att.handles:
                continue
            job = self.store.job_by_uid(att.job_uid)
            if job is None or self.in_flight(job.key, att.idx):
                continue
            try:
                self.recover(job, att)
                changed = True
            except Exception as e:  # the API server away, a deletion not yet confirmed: next time
                log.warning("recovering attempt %d of %s failed (retried in %g s): %s", att.idx, job.key, EVERY, e)
        live = self.store.live_attempts()
        busy = {(a.job_uid, a.idx) for a in live if not a.handles}  # starts in flight, or not recovered
        try:
            self.backend.reconcile({(a.job_uid, a.idx) for a in live}, busy, self._known)
        except Exception as e:
            log.warning("reconciling pods failed (retried in %g s): %s", EVERY, e)
        return changed

    def _known(self, uids: set[str]) -> set[str]:
        return set(self.store.jobs_by_uid(uids))

    def recover(self, job: JobRow, att: AttemptRow) -> None:
        gang = convert.launch_from_json(att.launch)
        handles = self.backend.recover_start(gang)
        if handles is None:
            self.lifecycle.requeue_interrupted(job, att.idx)
            return
        events = self.backend.adopt(gang, handles)  # tracked before bound() may stop them
        self.bound(job, att.idx, handles)
        self.store.add_event(job.uid, self.lifecycle.clock(), "Normal", "Adopted",
                             f"attempt {att.idx} was bound before the scheduler restarted: adopted, "
                             "not started again")
        for ev in events:
            self.lifecycle.on_event(ev)
