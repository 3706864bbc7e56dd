"""The Kueue queue label rule, Kubernetes quantity notation, and the TrainingJob/Queue status that
the Kubernetes backend writes (conditions with kept transition times; quota apart from capacity)."""

from __future__ import annotations

import pytest

from jobsched.backends.kubernetes.crsync import cr_status
from jobsched.backends.kubernetes.queuesync import user_manifest
from jobsched.spec import Queue, TrainingJob
from jobsched.spec.api import AttemptInfo, AttemptResources, JobStatus
from jobsched.spec.queuelabel import KUEUE_QUEUE_LABEL, queue_from_labels
from jobsched.spec.status import JobPhase
from jobsched.spec.units import quantity_bytes


def manifest(queue: object = None, labels: dict | None = None) -> dict:
    spec: dict = {"template": {"command": ["python", "train.py"]}}
    if queue is not None:
        spec["queue"] = queue
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": "a", "labels": labels or {}}, "spec": spec}


@pytest.mark.parametrize(("labels", "spec_queue", "expected"), [
    ({KUEUE_QUEUE_LABEL: "team-a"}, None, "team-a"),
    ({KUEUE_QUEUE_LABEL: "team-a"}, "", "team-a"),
    ({KUEUE_QUEUE_LABEL: "team-a"}, "team-b", "team-b"),  # an explicit spec.queue wins
    ({}, None, None),
    (None, "", None),
    ({KUEUE_QUEUE_LABEL: ""}, None, None),
])
def test_queue_from_labels(labels, spec_queue, expected):
    assert queue_from_labels(labels, spec_queue) == expected


def test_trainingjob_takes_the_kueue_label_only_when_spec_queue_is_unset():
    m = manifest(labels={KUEUE_QUEUE_LABEL: "team-a"})
    assert TrainingJob.model_validate(m).spec.queue == "team-a"
    assert "queue" not in m["spec"]  # the caller's manifest is not changed
    assert TrainingJob.model_validate(manifest("", {KUEUE_QUEUE_LABEL: "team-a"})).spec.queue == "team-a"
    assert TrainingJob.model_validate(manifest("team-b", {KUEUE_QUEUE_LABEL: "team-a"})).spec.queue == "team-b"
    assert TrainingJob.model_validate(manifest()).spec.queue == "default"
    assert TrainingJob.model_validate(manifest("")).spec.queue == "default"


@pytest.mark.parametrize(("n", "text"), [(8 * 2**30, "8Gi"), (1536 * 2**20, "1536Mi"), (1000, "1000"),
                                         (0, "0"), (None, None), (2**40, "1Ti")])
def test_quantity_bytes(n, text):
    assert quantity_bytes(n) == text


def status(phase: str, reason: str | None = None, message: str | None = None, attempts: int = 0) -> JobStatus:
    atts = [AttemptInfo(index=i, resources=AttemptResources(requests={"memory": 8 * 2**30}), started_at=100.0 + i,
                        finished_at=None) for i in range(attempts)]
    return JobStatus(name="a", phase=JobPhase(phase), reason=reason, message=message, created_at=50.0,
                     admitted_at=100.0 if attempts else None, finished_at=200.0 if phase == "Succeeded" else None,
                     attempts=atts)


def test_pending_on_quota_is_told_apart_from_capacity():
    quota = cr_status(status("Pending", "QuotaExceeded", "queue 'a' quota exceeded for cpu"), None, 3)
    full = cr_status(status("Pending", "Unschedulable", "only 1 of 2 replicas fit"), None, 3)
    adm = {s["reason"]: next(c for c in s["conditions"] if c["type"] == "Admitted") for s in (quota, full)}
    assert adm["QuotaExceeded"]["reason"] == "QuotaExceeded" and adm["QuotaExceeded"]["status"] == "False"
    assert adm["Unschedulable"]["reason"] == "Unschedulable" and "replicas fit" in adm["Unschedulable"]["message"]
    assert quota["queue"] == "default" and quota["observedGeneration"] == 3


def test_conditions_follow_kubernetes_conventions_and_keep_transition_times():
    running = cr_status(status("Running", attempts=1), None, 1)
    assert running["memory"] == "8Gi" and running["attempts"][0]["memoryRequest"] == "8Gi"
    conds = {c["type"]: c for c in running["conditions"]}
    for c in conds.values():
        assert set(c) == {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
        assert c["reason"] and c["lastTransitionTime"].endswith("Z") and c["observedGeneration"] == 1
    assert conds["Running"]["lastTransitionTime"] == "1970-01-01T00:01:40Z"  # the attempt's start
    prev = {**running, "conditions": [{**c, "lastTransitionTime": "2020-01-01T00:00:00Z"}
                                      for c in running["conditions"]]}
    done = {c["type"]: c for c in cr_status(status("Succeeded", "Completed", attempts=1), prev, 2)["conditions"]}
    assert done["Admitted"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"  # status unchanged: kept
    assert done["Succeeded"]["status"] == "True" and done["Succeeded"]["lastTransitionTime"] == "1970-01-01T00:03:20Z"
    assert done["Running"]["status"] == "False" and done["Running"]["reason"] == "Succeeded"
    assert done["Admitted"]["observedGeneration"] == 2


def test_queue_applied_with_kubectl_validates_without_server_metadata():
    obj = {"apiVersion": "jobsched.io/v1alpha1", "kind": "Queue",
           "metadata": {"name": "team-a", "uid": "u", "resourceVersion": "7", "generation": 1,
                        "creationTimestamp": "2026-01-01T00:00:00Z",
                        "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a"}},
           "spec": {"quota": {"cpu": "4"}}, "status": {"pending": 1}}
    with pytest.raises(ValueError, match="managedFields"):
        Queue.model_validate(obj)
    q = Queue.model_validate(user_manifest(obj))
    assert q.name == "team-a" and q.metadata.annotations == {"team": "a"}


def test_never_fits_tells_quota_apart_from_capacity():
    from jobsched.core import Reject, Scheduler
    from jobsched.core.snapshot import QueueInfo
    from tests.builders import make_job, make_nodes, snapshot

    snap = snapshot(make_nodes(2, gpus=4), queues=[QueueInfo("team", gpu_quota=2)])
    jobs = [make_job("over-quota").gpus(1).replicas(3).queue("team").build(), make_job("too-big").gpus(8).build()]
    got = {d.key: d for d in Scheduler("jobsched").cycle(snap, jobs, now=100.0).decisions}
    quota, big = got[jobs[0].key], got[jobs[1].key]
    assert isinstance(quota, Reject) and quota.quota  # the job fails with reason QuotaExceeded
    assert isinstance(big, Reject) and not big.quota  # ... and this one Unschedulable
