"""TrainingJob and Queue custom resources <-> the jobsched store.

* ``kubectl apply -f job.yaml`` of a TrainingJob is submitted like a CLI submission; deleting it
  cancels the job; a Queue CR is applied as a queue (queuesync.py, which writes its status too).
* Jobs submitted through the HTTP API get a TrainingJob CR too, so ``kubectl get tj`` shows them.
* Each job's status (phase, reason, conditions, attempts) is written back through the status
  subresource when its phase, reason or attempt count changes and the change has lasted a round
  (3 s while pods are being started; a finished job at once): all changes of a round in one batch.

Both kinds of write stay off the pods' path: while starts are in flight they wait (up to 10 s),
then go one at a time; otherwise in parallel on the backend's API pool, under its client-side rate
limit.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from jobsched.backends.kubernetes import conditions as C
from jobsched.backends.kubernetes.informer import Informer, leader_rounds
from jobsched.backends.kubernetes.queuesync import QueueSync
from jobsched.spec.units import quantity_bytes

log = logging.getLogger("jobsched.k8s.crsync")
GROUP, VERSION = "jobsched.io", "v1alpha1"
TERMINAL = ("Succeeded", "Failed", "Cancelled")
SETTLE, SETTLE_BUSY = 0.4, 3.0  # s a status change must last before it is written (idle, starting pods)
DEFER_MAX = 30.0  # s a batch of TrainingJob writes waits for the pod starts in flight to finish


def cr_status(st: Any, prev: dict[str, Any] | None = None, generation: int | None = None) -> dict[str, Any]:
    """The TrainingJob's ``.status``: phase, reason (QuotaExceeded apart from Unschedulable), the
    effective queue and replicas and memory (for the printer columns, in Kubernetes notation),
    attempts, and conditions (``prev``: the status written before, whose transition times are kept)."""
    phase = st.phase.value
    last = st.attempts[-1] if st.attempts else None
    conds = C.job_conditions(st, prev, generation)
    memory = (last.resources.requests.get("memory") if last else None) or st.sizing.chosen_memory
    out: dict[str, Any] = {
        "phase": phase, "reason": st.reason, "message": st.message,
        "queue": st.queue, "replicas": st.replicas, "memory": quantity_bytes(memory),
        "attemptCount": len(st.attempts),
        "attempts": [{"index": a.index, "reason": a.reason, "exitCode": a.exit_code,
                      "memoryRequest": quantity_bytes(a.resources.requests.get("memory")), "nodes": a.nodes}
                     for a in st.attempts],
        "conditions": conds,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


class CustomResourceSync:
    def __init__(self, backend: Any, service: Any) -> None:
        self.backend, self.service = backend, service
        custom = backend.custom
        self.jobs = Informer("trainingjobs", custom.list_cluster_custom_object, self._on_job,
                             group=GROUP, version=VERSION, plural="trainingjobs")
        self.queues = Informer("queues", custom.list_cluster_custom_object, self._on_queue,
                               group=GROUP, version=VERSION, plural="queues")
        backend.jobs_inf, backend.queues_inf = self.jobs, self.queues
        self.queue_sync = QueueSync(backend, service)
        self._stop = threading.Event()
        self._written: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, tuple[Any, ...]] = {}  # namespace/name -> (phase, reason, attempts) written
        self._settling: dict[str, tuple[tuple[Any, ...], float]] = {}  # change -> time.monotonic() first seen
        self._known: set[str] = set()  # namespace/name of CRs whose job the store has
        self._thread = threading.Thread(target=self._status_loop, name="cr-status", daemon=True)
        self._mirror: queue.Queue[dict[str, Any]] = queue.Queue()
        self._mirror_thread = threading.Thread(target=self._mirror_loop, name="cr-mirror", daemon=True)

    def start(self) -> None:
        self.queues.start()
        # Queues first: a TrainingJob listed before its Queue is imported would be refused. Waited
        # for off the start-up path (without the CRDs the queue informer never syncs).
        threading.Thread(target=self._start_jobs, name="cr-jobs-start", daemon=True).start()
        self.queue_sync.start()
        self._thread.start()
        self._mirror_thread.start()

    def _start_jobs(self) -> None:
        self.queues.synced.wait(30.0)
        self.jobs.start()

    def stop(self) -> None:
        self._stop.set()
        self.queue_sync.stop()
        self.jobs.stop()
        self.queues.stop()

    def _on_queue(self, typ: str, obj: dict[str, Any]) -> None:
        self.queue_sync.on_queue(typ, obj)  # import (server-set metadata stripped); status in queuesync.py

    def _on_job(self, typ: str, obj: dict[str, Any]) -> None:
        md = obj["metadata"]
        ns, name = md.get("namespace", "default"), md["name"]
        if typ == "DELETED":
            self._known.discard(f"{ns}/{name}")
            self._seen.pop(f"{ns}/{name}", None)
            try:
                self.service.cancel(ns, name)
            except Exception:
                pass
            return
        key = f"{ns}/{name}"
        if key in self._known:
            return  # a status write or a metadata change of a job we have
        try:
            self.service.get(ns, name)
            self._known.add(key)
            return  # known: submitted through the API, or imported before
        except LookupError:
            pass
        manifest = {k: obj[k] for k in ("apiVersion", "kind", "spec") if k in obj}
        manifest["metadata"] = {k: md[k] for k in ("name", "namespace", "labels", "annotations", "uid")
                                if k in md}
        try:
            self.service.submit(manifest)
            log.info("imported TrainingJob %s/%s", ns, name)
        except Exception as e:
            self._patch_status(ns, name, {"phase": "Failed", "reason": "InvalidSpec", "message": str(e),
                                          "conditions": [C.condition("Failed", True, "InvalidSpec", str(e), None,
                                                                     None, md.get("generation"))]})

    def create_for(self, manifest: dict[str, Any]) -> None:
        """Mirror an API submission as a TrainingJob CR (so kubectl sees it), off the submit path."""
        self._mirror.put(manifest)

    def _mirror_loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._mirror.get(timeout=0.5)]
            except queue.Empty:
                continue
            while len(batch) < 256:
                try:
                    batch.append(self._mirror.get_nowait())
                except queue.Empty:
                    break
            self._run_batch([lambda m=m: self._create(m) for m in batch], "mirror")

    def _run_batch(self, calls: list[Any], what: str) -> None:
        """Low-priority writes: they wait while pods are being started (up to DEFER_MAX s), then
        go one at a time if starts still run, else in parallel."""
        busy = getattr(self.backend, "starting", lambda: 0)
        deadline = time.monotonic() + DEFER_MAX
        while calls and busy() and time.monotonic() < deadline and not self._stop.wait(0.05):
            pass
        futures: list[Future[None]] = []
        for call in calls:
            if self._stop.is_set():
                break
            if busy():
                try:
                    call()
                except Exception as e:  # API server away: the job runs anyway; only the copy is missing
                    log.warning("%s write failed: %s", what, e)
            else:
                try:
                    futures.append(self.backend.writer.submit(call))
                except RuntimeError:  # the backend is closing: its pool takes no more work
                    break
        for f in futures:
            e = f.exception()
            if e is not None:
                log.warning("%s write failed: %s", what, e)

    def _create(self, manifest: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        body = {k: manifest[k] for k in ("apiVersion", "kind", "spec")}
        md = manifest["metadata"]
        body["metadata"] = {k: md[k] for k in ("name", "namespace", "labels", "annotations") if md.get(k)}
        try:
            self.backend.writer.write(self.backend.custom.create_namespaced_custom_object, GROUP, VERSION,
                                      md.get("namespace", "default"), "trainingjobs", body)
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("could not create TrainingJob CR %s: %s", md["name"], e.reason)

    def _patch_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.backend.writer.write(self.backend.custom.patch_namespaced_custom_object_status,
                                      GROUP, VERSION, ns, "trainingjobs", name, {"status": status})
            self._written[f"{ns}/{name}"] = status
        except ApiException as e:
            if e.status != 404:
                log.warning("status of %s/%s: %s", ns, name, e.reason)

    def _status_loop(self) -> None:
        leader_rounds(self._stop, 0.5, self.backend.is_leader, self._write_statuses, "status write-back")

    def _write_statuses(self) -> None:
        """Patch the status of each CR whose job changed phase, reason or attempt count since the
        last write: the store is read once for all jobs, and in full only for those that changed."""
        marks = self.service.store.job_marks()
        now, busy = time.monotonic(), bool(getattr(self.backend, "starting", lambda: 0)())
        calls = []
        for obj in self.jobs.items():
            md = obj["metadata"]
            ns, name = md.get("namespace", "default"), md["name"]
            key, mark = f"{ns}/{name}", marks.get((ns, name))
            if mark is None or self._seen.get(key) == mark:
                self._settling.pop(key, None)
                continue
            # A change is written once it has lasted a round (0.5 s; SETTLE_BUSY s while pods are
            # being started), so a job that passes through Admitted to Running meanwhile gets one
            # write; a finished job is written at once.
            first = self._settling.get(key)
            if first is None or first[0] != mark:
                self._settling[key] = first = (mark, now)
            if mark[0] not in TERMINAL and now - first[1] < (SETTLE_BUSY if busy else SETTLE):
                continue
            self._settling.pop(key, None)
            try:
                st = self.service.get(ns, name)
            except LookupError:
                continue
            want = _plain(cr_status(st, self._written.get(key) or obj.get("status"), md.get("generation")))
            if self._written.get(key) != want and obj.get("status") != want:
                calls.append(lambda ns=ns, name=name, want=want, mark=mark: self._write(ns, name, want, mark))
            else:
                self._seen[key] = mark
        self._run_batch(calls, "status")

    def _write(self, ns: str, name: str, status: dict[str, Any], mark: tuple[Any, ...]) -> None:
        self._patch_status(ns, name, status)
        if self._written.get(f"{ns}/{name}") is status:
            self._seen[f"{ns}/{name}"] = mark


def _plain(status: dict[str, Any]) -> Any:
    """The status as it reads back from the API server (JSON types), to compare with the CR's."""
    return json.loads(json.dumps(status))
