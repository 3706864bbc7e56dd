"""Queue custom resources <-> the store's queues.

* A Queue applied with kubectl (client- or server-side) is imported: the metadata the API server
  fills in (managedFields, resourceVersion, uid, ...) and kubectl's last-applied annotation are
  stripped before the manifest is validated, so only what the user wrote is checked. It is applied
  again only when its ``metadata.generation`` changes (not on each status write).
* Its ``.status`` is written back through the status subresource: ``pending`` and ``admitted``
  jobs, ``usage`` (the requests of admitted jobs, in Kubernetes notation), and an ``Accepted``
  condition that says why a Queue was refused.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from jobsched.backends.kubernetes import conditions as C
from jobsched.backends.kubernetes.informer import leader_rounds

log = logging.getLogger("jobsched.k8s.queuesync")
GROUP, VERSION = "jobsched.io", "v1alpha1"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def user_manifest(obj: dict[str, Any]) -> dict[str, Any]:
    """The Queue as the user wrote it: apiVersion, kind, spec, and name/labels/annotations only."""
    md = obj.get("metadata") or {}
    meta: dict[str, Any] = {"name": md.get("name")}
    if md.get("labels"):
        meta["labels"] = md["labels"]
    notes = {k: v for k, v in (md.get("annotations") or {}).items() if k != LAST_APPLIED}
    if notes:
        meta["annotations"] = notes
    out = {k: obj[k] for k in ("apiVersion", "kind", "spec") if k in obj}
    out["metadata"] = meta
    return out


class QueueSync:
    def __init__(self, backend: Any, service: Any, interval: float = 1.0) -> None:
        self.backend, self.service, self.interval = backend, service, interval
        self._applied: dict[str, Any] = {}  # name -> generation imported
        self._refused: dict[str, str] = {}  # name -> why
        self._written: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="queue-status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def on_queue(self, typ: str, obj: dict[str, Any]) -> None:
        """The Queue informer's handler: import new and changed Queues."""
        name = obj["metadata"]["name"]
        if typ == "DELETED":
            self._applied.pop(name, None)
            self._refused.pop(name, None)
            return
        gen = obj["metadata"].get("generation")
        if name in self._applied and self._applied[name] == gen:
            return  # only .status (or nothing the spec says) changed
        try:
            self.service.apply_queue(user_manifest(obj))
            self._refused.pop(name, None)
        except Exception as e:
            self._refused[name] = str(e)
            log.warning("queue %s refused: %s", name, e)
        self._applied[name] = gen

    # status -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        leader_rounds(self._stop, self.interval, self.backend.is_leader, self.write_statuses,
                      "queue status write-back")

    def status_for(self, obj: dict[str, Any], qs: Any) -> dict[str, Any]:
        name, gen = obj["metadata"]["name"], obj["metadata"].get("generation")
        prev = self._written.get(name) or obj.get("status")
        why = self._refused.get(name)
        accepted = C.condition("Accepted", why is None and qs is not None,
                               "Imported" if why is None and qs is not None else "InvalidSpec",
                               why or ("" if qs is not None else "not imported yet"), None,
                               C.previous(prev).get("Accepted"), gen)
        out: dict[str, Any] = {"conditions": [accepted], "observedGeneration": gen}
        if qs is not None:
            out.update(weight=qs.weight, pending=qs.pending, admitted=qs.running,
                       usage=C.usage_quantities(qs.usage))
        return out

    def write_statuses(self) -> None:
        from kubernetes.client.exceptions import ApiException

        inf = self.backend.queues_inf
        objs = inf.items() if inf is not None else []
        if not objs:
            return
        known = {q.name: q for q in self.service.queues()}
        for obj in objs:
            name = obj["metadata"]["name"]
            want = self.status_for(obj, known.get(name) if name not in self._refused else None)
            if self._written.get(name) == want or obj.get("status") == want:
                continue
            try:
                self.backend.custom.patch_cluster_custom_object_status(GROUP, VERSION, "queues", name,
                                                                       {"status": want})
                self._written[name] = want
            except ApiException as e:
                if e.status != 404:
                    log.warning("status of queue %s: %s", name, e.reason)
