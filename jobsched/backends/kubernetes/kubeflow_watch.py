"""jobsched as a drop-in scheduler for the Kubeflow training-operator's PyTorchJob, MXJob and TFJob,
for Volcano's Job, and for ``batch/v1`` Jobs that opt in with ``spec.managedBy: jobsched.io/scheduler``.

With ``--watch-kubeflow`` (backend option ``watch_kubeflow``), ``--watch-volcano``
(``watch_volcano``) and/or ``--watch-jobs`` (``watch_jobs``), each of these kinds whose CRD is
installed is watched: a new object is
converted (spec/sources.py) and submitted as a gang under its own name; deleting it cancels the job;
the job's progress is written back to the object's status as its own controller writes it
(Kubeflow: ``conditions`` Created/Running/Restarting/Succeeded/Failed, ``replicaStatuses`` per
replica type, ``startTime``, ``completionTime``; Volcano: ``state.phase`` Pending/Running/
Restarting/Completed/Failed/Aborted, ``running``/``succeeded``/``failed``, ``retryCount``; a Job: as
the Job controller would, ``batch_status``). An object
whose status already says it ended is left alone (it ran before), and so is one another job's name
holds. Run it instead of that controller, not beside it: both would start pods for the same object.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from functools import partial
from typing import Any

from jobsched.backends.kubernetes.informer import Informer, leader_rounds

log = logging.getLogger("jobsched.k8s.kubeflow")
# "<plural>.<group>" (the CRD's name) -> (version, source-kind label, the replica-specs field)
KUBEFLOW = {"pytorchjobs.kubeflow.org": ("v1", "PyTorchJob", "pytorchReplicaSpecs"),
            "mxjobs.kubeflow.org": ("v1", "MXJob", "mxReplicaSpecs"),
            "tfjobs.kubeflow.org": ("v1", "TFJob", "tfReplicaSpecs")}
VOLCANO = {"jobs.batch.volcano.sh": ("v1alpha1", "VolcanoJob", "")}
# batch/v1 Jobs that name jobsched in spec.managedBy (the Job controller leaves those alone).
BATCH = {"jobs.batch": ("v1", "Job", "")}
MANAGED_BY = "jobsched.io/scheduler"
KINDS = {**KUBEFLOW, **VOLCANO, **BATCH}
SOURCE_LABEL = "jobsched.io/source-kind"


def installed_kinds(api_client: Any, wanted: list[str]) -> list[str]:
    """The CRD names of ``wanted`` (keys of KINDS) that are installed."""
    from kubernetes import client

    names = {c.metadata.name for c in client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items}
    return [p for p in wanted if p in names or p in BATCH]


def _time(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else None


def kubeflow_status(st: Any, obj: dict[str, Any], replica_key: str) -> dict[str, Any]:
    """The training-operator's JobStatus for a jobsched job status ``st``."""
    phase = st.phase.value
    created = _time(st.created_at)
    conds = [{"type": "Created", "status": "True", "reason": "JobCreated", "message": f"submitted to jobsched "
              f"queue {st.queue}", "lastUpdateTime": created, "lastTransitionTime": created}]

    def cond(typ: str, reason: str, when: float | None, message: str | None = None) -> None:
        t = _time(when)
        conds.append({"type": typ, "status": "True", "reason": reason, "message": message or reason,
                      "lastUpdateTime": t, "lastTransitionTime": t})

    if len(st.attempts) > 1 and phase not in ("Succeeded", "Failed"):
        cond("Restarting", "JobRestarting", st.attempts[-1].started_at, st.attempts[-2].reason)
    if phase == "Running":  # every replica's pod runs (Admitted: placed, pods starting)
        cond("Running", "JobRunning", st.admitted_at)
    elif phase in ("Succeeded", "Failed"):
        if st.admitted_at:
            conds.append({**conds[0], "type": "Running", "status": "False", "reason": "JobRunning",
                          "message": "ended"})
        cond(phase, f"Job{phase}", st.finished_at, st.message)
    counts: dict[str, dict[str, int]] = {}
    for role, rs in (obj.get("spec", {}).get(replica_key) or {}).items():
        n = int(rs.get("replicas", 1)) if isinstance(rs, dict) else 0
        counts[role] = {"active": n if phase == "Running" else 0, "succeeded": n if phase == "Succeeded" else 0,
                        "failed": n if phase == "Failed" else 0}
    out: dict[str, Any] = {"conditions": conds, "replicaStatuses": counts}
    if st.admitted_at:
        out["startTime"] = _time(st.admitted_at)
    if phase in ("Succeeded", "Failed") and st.finished_at:
        out["completionTime"] = _time(st.finished_at)
    return out


VOLCANO_PHASES = {"Pending": "Pending", "Admitted": "Pending", "Running": "Running", "Succeeded": "Completed",
                  "Failed": "Failed", "Cancelled": "Aborted"}


def volcano_status(st: Any, obj: dict[str, Any]) -> dict[str, Any]:
    """Volcano's JobStatus for a jobsched job status ``st``."""
    phase = VOLCANO_PHASES[st.phase.value]
    if phase == "Pending" and len(st.attempts) > 1:
        phase = "Restarting"
    n = int(st.replicas)
    when = st.finished_at or (st.admitted_at if phase == "Running" else None) or st.created_at
    return {"state": {"phase": phase, "reason": st.reason or "", "message": st.message or "",
                      "lastTransitionTime": _time(when)},
            "minAvailable": int(obj.get("spec", {}).get("minAvailable", n)),
            "running": n if phase == "Running" else 0, "succeeded": n if phase == "Completed" else 0,
            "failed": n if phase == "Failed" else 0, "retryCount": max(len(st.attempts) - 1, 0)}


def batch_status(st: Any, obj: dict[str, Any]) -> dict[str, Any]:
    """A managed Job's status as the Job controller would write it (Kubernetes validates it: an
    ended Job carries SuccessCriteriaMet/FailureTarget before Complete/Failed, and its times)."""
    phase, n = st.phase.value, int(st.replicas)
    out: dict[str, Any] = {"active": n if phase == "Running" else 0, "ready": n if phase == "Running" else 0,
                           "succeeded": n if phase == "Succeeded" else 0, "failed": n if phase == "Failed" else 0,
                           "terminating": 0}
    if st.admitted_at:
        out["startTime"] = _time(st.admitted_at)
    if phase in ("Succeeded", "Failed", "Cancelled"):
        t = _time(st.finished_at or st.created_at)
        out.setdefault("startTime", t)
        first, last = ("SuccessCriteriaMet", "Complete") if phase == "Succeeded" else ("FailureTarget", "Failed")
        reason = {"Succeeded": "CompletionsReached", "Failed": "BackoffLimitExceeded"}.get(phase, "Cancelled")
        out["conditions"] = [{"type": typ, "status": "True", "reason": reason, "message": st.message or reason,
                              "lastProbeTime": t, "lastTransitionTime": t} for typ in (first, last)]
        if phase == "Succeeded":
            out["completionTime"] = t
    return out


def _ended(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if (status.get("state") or {}).get("phase") in ("Completed", "Failed", "Aborted", "Terminated"):
        return True
    return any(c.get("type") in ("Succeeded", "Failed", "Complete") and c.get("status") == "True"
               for c in status.get("conditions") or [])


class KubeflowWatch:
    """Watches the kinds of ``wanted`` (CRD names, keys of KINDS) that are installed."""

    def __init__(self, backend: Any, service: Any, wanted: list[str]) -> None:
        self.backend, self.service = backend, service
        self.wanted = wanted
        self.plurals = installed_kinds(backend.api_client, wanted)
        self.informers = {p: Informer(p, backend.custom.list_cluster_custom_object, partial(self._on_job, p),
                                      group=p.split(".", 1)[1], version=KINDS[p][0], plural=p.split(".", 1)[0])
                          for p in self.plurals}
        self._stop = threading.Event()
        self._written: dict[str, dict[str, Any]] = {}
        self._thread = threading.Thread(target=self._status_loop, name="kubeflow-status", daemon=True)

    def start(self) -> None:
        for crd in self.wanted:
            if crd not in self.plurals:
                log.info("%s: CRD not installed, not watched", crd)
        for inf in self.informers.values():
            inf.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for inf in self.informers.values():
            inf.stop()

    def _mine(self, plural: str, ns: str, name: str) -> Any | None:
        """The jobsched job converted from this object (None: none, or another job's)."""
        try:
            st = self.service.get(ns, name)
        except LookupError:
            return None
        return st if st.labels.get(SOURCE_LABEL) == KINDS[plural][1] else None

    def _on_job(self, plural: str, typ: str, obj: dict[str, Any]) -> None:
        from jobsched.spec.sources import to_training_job

        md = obj["metadata"]
        ns, name = md.get("namespace", "default"), md["name"]
        if plural in BATCH and (obj.get("spec") or {}).get("managedBy") != MANAGED_BY:
            return  # the Job controller's (or Kueue's), not ours
        if typ == "DELETED":
            if self._mine(plural, ns, name) is not None:
                try:
                    self.service.cancel(ns, name)
                except Exception as e:  # already ended or deleted: nothing to cancel
                    log.info("cancel %s/%s: %s", ns, name, e)
            return
        try:
            self.service.get(ns, name)
            return  # known: imported before, or the name is another job's (then left alone)
        except LookupError:
            pass
        if _ended(obj):
            return  # it ran before jobsched watched it
        manifest = {k: obj[k] for k in ("apiVersion", "kind", "spec") if k in obj}
        manifest["metadata"] = {k: md[k] for k in ("name", "namespace", "labels", "annotations") if k in md}
        try:
            to_training_job(manifest)  # refused here: a Failed condition saying why
            self.service.submit(manifest)
            log.info("scheduling %s %s/%s", KINDS[plural][1], ns, name)
        except Exception as e:
            now = _time(datetime.now(UTC).timestamp())
            if plural in BATCH:
                return  # a Job's status cannot say "refused" before it ran; the server log does
            if plural in VOLCANO:
                self._patch(plural, ns, name, {"state": {"phase": "Failed", "reason": "InvalidSpec",
                                                         "message": str(e)[:1000], "lastTransitionTime": now}})
                return
            self._patch(plural, ns, name, {"conditions": [
                {"type": "Failed", "status": "True", "reason": "InvalidSpec", "message": str(e)[:1000],
                 "lastUpdateTime": now, "lastTransitionTime": now}]})

    def _patch(self, plural: str, ns: str, name: str, status: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            group, version = plural.split(".", 1)[1], KINDS[plural][0]  # "batch": /apis/batch/v1 alike
            self.backend.custom.patch_namespaced_custom_object_status(group, version, ns, plural.split(".", 1)[0],
                                                                      name, {"status": status})
            self._written[f"{plural}/{ns}/{name}"] = status
        except ApiException as e:
            if e.status != 404:
                log.warning("status of %s %s/%s: %s", plural, ns, name, e.reason)

    def _status_loop(self) -> None:
        leader_rounds(self._stop, 0.5, self.backend.is_leader, self._write_statuses, "kubeflow status write-back")

    def _write_statuses(self) -> None:
        for plural, inf in self.informers.items():
            for obj in inf.items():
                md = obj["metadata"]
                ns, name = md.get("namespace", "default"), md["name"]
                st = self._mine(plural, ns, name)
                if st is None:
                    continue
                want = (volcano_status(st, obj) if plural in VOLCANO else batch_status(st, obj) if plural in BATCH
                        else kubeflow_status(st, obj, KINDS[plural][2]))
                if self._written.get(f"{plural}/{ns}/{name}") != want:
                    self._patch(plural, ns, name, want)
