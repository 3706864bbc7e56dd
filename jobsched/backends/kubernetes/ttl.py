"""Clean up after finished jobs, like a Kubernetes Job's ``ttlSecondsAfterFinished``.

When every replica of an attempt has exited, its pods are deleted ``ttl`` seconds later, and the
job's headless Service too unless a newer attempt has started meanwhile (a retry: it keeps the
Service, and a retry starting after the cleanup creates it again). The checkpoint claim is kept: it
outlives attempts (``jobsched delete`` removes it). The deletes run on this module's own thread,
never on the scheduling path; the controller's tick only counts exits.

``ttl`` is the job's ``spec.ttlSecondsAfterFinished``, else the server's ``--ttl-after-finished``;
neither set: nothing is cleaned up until the job is deleted (as before). State is in memory: a job
that finished before a server restart is not cleaned up by this server.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("jobsched.k8s.ttl")


@dataclass
class _Attempt:
    uid: str
    namespace: str
    service: str
    ttl: float
    left: int  # replicas not yet exited


class Janitor:
    def __init__(self, core: Any, labels: tuple[str, str], clock: Callable[[], float] = time.monotonic) -> None:
        self.core = core
        self.uid_label, self.attempt_label = labels
        self.clock = clock
        self._lock = threading.Lock()  # also held while a Service is deleted (see started)
        self._wake = threading.Condition(self._lock)
        self._attempts: dict[tuple[str, int], _Attempt] = {}  # (job key, attempt) -> outstanding
        self._latest: dict[str, int] = {}  # job key -> newest attempt started
        self._due: list[tuple[float, str, int]] = []  # heap of (when, job key, attempt)
        self._stopped = False
        self._thread: threading.Thread | None = None

    def started(self, job_key: str, uid: str, attempt: int, replicas: int, service: str, ttl: float | None) -> None:
        """An attempt was started (or adopted) with ``replicas`` live replicas. Called before its
        Service is ensured: a cleanup of an earlier attempt then keeps (or has already deleted) it."""
        with self._lock:
            self._latest[job_key] = max(attempt, self._latest.get(job_key, attempt))
            if ttl is None:
                return
            self._attempts[(job_key, attempt)] = _Attempt(uid, job_key.split("/", 1)[0], service, ttl, replicas)
            if replicas <= 0:
                self._schedule(job_key, attempt)

    def discard(self, job_key: str, attempt: int) -> None:
        """The attempt never started (its start failed and was undone)."""
        with self._lock:
            self._attempts.pop((job_key, attempt), None)

    def forget(self, job_key: str) -> None:
        """The job was deleted (its pods and Service with it): nothing left to clean up."""
        with self._lock:
            for k in [k for k in self._attempts if k[0] == job_key]:
                del self._attempts[k]
            self._latest.pop(job_key, None)

    def exited(self, job_key: str, attempt: int) -> None:
        """One replica of the attempt exited (cheap: the controller's tick calls this)."""
        with self._lock:
            a = self._attempts.get((job_key, attempt))
            if a is None:
                return
            a.left -= 1
            if a.left <= 0:
                self._schedule(job_key, attempt)

    def _schedule(self, job_key: str, attempt: int) -> None:
        a = self._attempts[(job_key, attempt)]
        heapq.heappush(self._due, (self.clock() + a.ttl, job_key, attempt))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="jobsched-ttl", daemon=True)
            self._thread.start()
        self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stopped and (not self._due or self._due[0][0] > self.clock()):
                    self._wake.wait(None if not self._due else max(self._due[0][0] - self.clock(), 0.0))
                if self._stopped:
                    return
                _, job_key, attempt = heapq.heappop(self._due)
                a = self._attempts.pop((job_key, attempt), None)
            if a is not None:
                self._clean(job_key, attempt, a)

    def _clean(self, job_key: str, attempt: int, a: _Attempt) -> None:
        from kubernetes.client.exceptions import ApiException

        sel = f"{self.uid_label}={a.uid},{self.attempt_label}={attempt}"
        try:  # list, then delete one by one: the verbs the ClusterRole grants (no deletecollection)
            for pod in self.core.list_namespaced_pod(a.namespace, label_selector=sel).items:
                try:
                    self.core.delete_namespaced_pod(pod.metadata.name, a.namespace)
                except ApiException as e:
                    if e.status != 404:
                        raise
            with self._lock:  # a retry's start() waits here: it then sees the Service gone and makes it
                if self._latest.get(job_key) == attempt:
                    self._latest.pop(job_key, None)
                    try:
                        self.core.delete_namespaced_service(a.service, a.namespace)
                    except ApiException as e:
                        if e.status != 404:
                            raise
            log.info("ttl: cleaned up %s attempt %d after %gs", job_key, attempt, a.ttl)
        except Exception as e:  # noqa: BLE001 - logged; the objects stay (owner references still GC them)
            log.warning("ttl: cleaning up %s attempt %d failed: %s", job_key, attempt, e)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wake.notify()
