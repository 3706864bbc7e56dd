"""jobsched's own pods, read back from the API server: pods no live attempt tracks hold room on their
node until they are deleted; pods of attempts the store does not run, and unbound pods no start is
working on, are deleted; a new attempt's pods come only after the old attempt's are gone."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from jobsched.backends.kubernetes import pods as P
from jobsched.server.runtime import Runtime

pytestmark = pytest.mark.k8s
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def rt(k8s_cluster, tmp_path, wait_for):
    from kubernetes import utils

    for f in sorted((ROOT / "manifests" / "crds").glob("*.yaml")):
        try:
            utils.create_from_yaml(k8s_cluster.api_client(), str(f))
        except utils.FailToCreateError as e:
            if not all(x.status == 409 for x in e.api_exceptions):
                raise
    r = Runtime(tmp_path / "home", backend="kubernetes",
                backend_options={"kubeconfig": str(k8s_cluster.kubeconfig), "lease_name": f"js-{uuid.uuid4().hex[:6]}"})
    r.start()
    wait_for(r.backend.is_leader, 40, "leadership")
    yield r
    r.stop()


def job(name: str, pool: str, cpu: str = "1") -> dict:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"replicas": 1, "template": {
                "command": ["python", "-m", "workers.train"], "image": "jobsched/worker:dev",
                "nodeSelector": {"pool": pool}, "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}}}


def leftover(core, name: str, uid: str, attempt: int, rank: int, node: str | None, cpu: str = "2") -> None:
    """A pod as an earlier jobsched process would have left it."""
    from kubernetes import client

    core.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {P.L_JOB: name, P.L_UID: uid, P.L_ATTEMPT: str(attempt),
                                              P.L_REPLICA: str(rank)}},
        "spec": {"schedulerName": P.SCHEDULER_NAME, "containers": [
            {"name": "replica", "image": "x", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]}})
    if node:
        body = client.V1Binding(metadata=client.V1ObjectMeta(name=name),
                                target=client.V1ObjectReference(api_version="v1", kind="Node", name=node))
        core.create_namespaced_pod_binding(name, "default", body, _preload_content=False)


def names(core, uid: str) -> set[str]:
    return {p.metadata.name for p in core.list_namespaced_pod("default", label_selector=f"{P.L_UID}={uid}").items}


def test_stale_and_orphan_pods_hold_room_until_deleted(rt, k8s_cluster, wait_for):
    tag = uuid.uuid4().hex[:6]
    (node,) = k8s_cluster.add_nodes(1, cpu="4", memory="8Gi", labels={"pool": tag})
    core = rt.backend.core
    rt.service.submit(job(f"keep-{tag}", tag))
    wait_for(lambda: rt.service.get("default", f"keep-{tag}").phase.value == "Running", 40, "running")
    uid = rt.service.get("default", f"keep-{tag}").uid
    rt.controller.recovery._next = time.monotonic() + 3600  # hold the sweep while we look
    leftover(core, f"stale-{tag}", uid, 5, 0, node)  # an attempt the store never ran, still bound
    leftover(core, f"orphan-{tag}", uid, 0, 9, None)  # unbound, and no start is working on it
    wait_for(lambda: rt.backend.foreign_usage().get(node, (0,))[0] == 2000, 20, "the stale pod's room held")
    # The room is held, not gone: a 2-CPU job waits (4 - 1 running - 2 held), it does not fail.
    rt.service.submit(job(f"more-{tag}", tag, cpu="2"))
    st = wait_for(lambda: (s := rt.service.get("default", f"more-{tag}")).message and s, 20, "waiting")
    assert st.phase.value == "Pending" and "held by pods of other schedulers" in st.message
    rt.controller.recovery._next = 0.0
    wait_for(lambda: names(core, uid) == {P.pod_name(f"keep-{tag}", 0, 0)}, 30, "stale and orphan pods deleted")
    assert rt.backend.reconciler.counts.superseded_deleted == 1 and rt.backend.reconciler.counts.orphans_deleted == 1
    assert rt.service.get("default", f"keep-{tag}").phase.value == "Running"  # its own pod is untouched
    wait_for(lambda: rt.service.get("default", f"more-{tag}").phase.value == "Running", 30, "the waiting job runs")


def test_a_new_attempt_waits_for_the_old_attempts_pods_to_be_gone(rt, k8s_cluster, wait_for):
    tag = uuid.uuid4().hex[:6]
    (node,) = k8s_cluster.add_nodes(1, cpu="4", memory="8Gi", labels={"pool": tag})
    core, rec = rt.backend.core, rt.backend.reconciler
    uid = f"uid-{tag}"
    leftover(core, f"old-{tag}", uid, 0, 0, node)
    wait_for(lambda: any(p.name == f"old-{tag}" for p in rec.own()), 20, "leftover in the cache")
    assert rec.clear_superseded("default", uid, 0) == 0  # its own attempt: kept
    assert rec.clear_superseded("default", uid, 1) == 1
    assert names(core, uid) == set()  # gone (not merely terminating) when it returns
