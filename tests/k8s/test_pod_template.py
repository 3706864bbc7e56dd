"""The pod template GPU clusters need, against a real kube-apiserver + etcd with KWOK nodes: node
taints and required node affinity honoured by placement, the template's pod-spec fields on the pods
the API server accepts, and finished jobs' pods and Service deleted after ttlSecondsAfterFinished."""

from __future__ import annotations

import uuid

import pytest

from jobsched.server.runtime import Runtime
from tests.k8s.test_backend import crds, job, pods_of, set_outcome, until  # noqa: F401 - crds: a fixture

pytestmark = pytest.mark.k8s
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
TTL = 1  # the server's default here (--ttl-after-finished)


@pytest.fixture(scope="module")
def rt(k8s_cluster, crds, tmp_path_factory):  # noqa: F811 - crds is the imported fixture
    r = Runtime(tmp_path_factory.mktemp("home"), backend="kubernetes", backend_options={
        "kubeconfig": str(k8s_cluster.kubeconfig), "lease_name": f"js-{uuid.uuid4().hex[:6]}",
        "ttl_seconds_after_finished": TTL})
    r.start()
    until(r.backend.is_leader, what="leadership")
    yield r
    r.stop()


def taint(core, node: str, *taints: dict) -> None:
    core.patch_node(node, {"spec": {"taints": list(taints)}})


def pod_names(core, name: str) -> set[str]:
    return {p.metadata.name for p in pods_of(core, name)}


def service_exists(core, name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        core.read_namespaced_service(f"{name}-js", "default")
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def test_tolerations_and_affinity_are_honoured_and_reach_the_pod(rt, k8s_cluster):
    from kubernetes import client

    pool = uuid.uuid4().hex[:8]
    plain, gpu_a, gpu_b = (k8s_cluster.add_nodes(1, cpu="2", memory="8Gi", gpus=g, labels={"pool": pool, "zone": z})[0]
                           for g, z in ((0, f"{pool}-a"), (8, f"{pool}-a"), (8, f"{pool}-b")))
    core = rt.backend.core
    for node in (gpu_a, gpu_b):
        taint(core, node, GPU_TAINT)
    until(lambda: sum(1 for n in rt.backend.nodes() if n.name in (gpu_a, gpu_b) and n.taints) == 2,
          what="taints seen by the scheduler")
    # What the pod's fields refer to must exist for the API server's admission (PriorityClass, RuntimeClass).
    for create in (lambda: client.SchedulingV1Api(rt.backend.api_client).create_priority_class(
                       {"metadata": {"name": "gpu-high"}, "value": 1000}),
                   lambda: client.NodeV1Api(rt.backend.api_client).create_runtime_class(
                       {"metadata": {"name": "nvidia"}, "handler": "nvidia"})):
        try:
            create()
        except client.ApiException as e:
            if e.status != 409:
                raise

    zone_b = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": [f"{pool}-b"]}]}]}}}
    gpu = job("tolerant", 1, pool, cpu="2")
    gpu["spec"]["template"].update({
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": zone_b, "shmSize": "2Gi", "runtimeClassName": "nvidia", "priorityClassName": "gpu-high",
        "serviceAccountName": "trainer", "imagePullSecrets": [{"name": "regcred"}],
        "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
        "containerSecurityContext": {"capabilities": {"add": ["IPC_LOCK"]}},
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "imagenet"}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}]})
    gpu["spec"]["template"]["resources"]["requests"]["nvidia.com/gpu"] = 1
    rt.service.submit(gpu)
    rt.service.submit(job("untainted-only", 1, pool, cpu="2"))  # tolerates nothing: only the plain node

    bound = until(lambda: [p for p in pods_of(core, "tolerant") if p.spec.node_name] or None,
                  what="tolerant bound", rt=rt, name="tolerant")
    pod = bound[0]
    assert pod.spec.node_name == gpu_b  # the tainted node its affinity names, not the other GPU node
    assert [(t.key, t.operator, t.effect) for t in pod.spec.tolerations if t.key == "nvidia.com/gpu"] == [
        ("nvidia.com/gpu", "Exists", "NoSchedule")]
    term = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms[0]
    assert term.match_expressions[0].values == [f"{pool}-b"]
    assert pod.spec.runtime_class_name == "nvidia" and pod.spec.priority_class_name == "gpu-high"
    assert pod.spec.service_account_name == "trainer" and pod.spec.image_pull_secrets[0].name == "regcred"
    assert pod.spec.security_context.run_as_user == 1000 and pod.spec.security_context.fs_group == 2000
    c = pod.spec.containers[0]
    assert c.security_context.capabilities.add == ["IPC_LOCK"]
    shm = next(v for v in pod.spec.volumes if v.empty_dir is not None)
    assert (shm.empty_dir.medium, shm.empty_dir.size_limit) == ("Memory", "2Gi")
    mounts = {m.mount_path: m.name for m in c.volume_mounts}
    assert mounts["/dev/shm"] == shm.name and mounts["/data"] == "data"

    other = until(lambda: [p for p in pods_of(core, "untainted-only") if p.spec.node_name] or None,
                  what="untainted-only bound", rt=rt, name="untainted-only")
    assert other[0].spec.node_name == plain

    # Tolerating nothing, a job whose affinity names only a tainted node can never run: rejected,
    # the reason naming the taint (no provisioner here to add a node).
    stuck = job("intolerant", 1, pool, cpu="1")
    stuck["spec"]["template"]["affinity"] = zone_b
    rt.service.submit(stuck)
    st = until(lambda: (s := rt.service.get("default", "intolerant")).phase.is_terminal() and s, what="rejected")
    assert st.phase.value == "Failed"
    assert "untolerated taint {nvidia.com/gpu=present:NoSchedule}" in st.message, st.message
    assert not pods_of(core, "intolerant")
    set_outcome(core, bound + other, "Succeeded")


def test_finished_jobs_pods_and_service_are_deleted_after_the_ttl(rt, k8s_cluster):
    pool = uuid.uuid4().hex[:8]
    k8s_cluster.add_nodes(2, cpu="4", memory="8Gi", labels={"pool": pool})
    core = rt.backend.core
    keep = job("ttl-keep", 2, pool)
    keep["spec"]["ttlSecondsAfterFinished"] = 3600  # the job's own TTL wins over the server's
    rt.service.submit(job("ttl-default", 2, pool))
    rt.service.submit(keep)
    for name in ("ttl-default", "ttl-keep"):
        until(lambda n=name: len([p for p in pods_of(core, n) if p.spec.node_name]) == 2, what=f"{name} bound",
              rt=rt, name=name)
        assert service_exists(core, name)
    set_outcome(core, pods_of(core, "ttl-default") + pods_of(core, "ttl-keep"), "Succeeded")
    for name in ("ttl-default", "ttl-keep"):
        until(lambda n=name: rt.service.get("default", n).phase.value == "Succeeded", what=f"{name} succeeded")
    until(lambda: not pods_of(core, "ttl-default") and not service_exists(core, "ttl-default"),
          timeout=30, what="ttl-default's pods and Service deleted")
    assert len(pods_of(core, "ttl-keep")) == 2 and service_exists(core, "ttl-keep")
    st = rt.service.get("default", "ttl-default")
    assert st.phase.value == "Succeeded" and len(st.attempts) == 1  # the job's record stays


def test_a_retry_keeps_its_pods_and_service_while_the_failed_attempt_is_cleaned_up(rt, k8s_cluster):
    pool = uuid.uuid4().hex[:8]
    k8s_cluster.add_nodes(2, cpu="4", memory="8Gi", labels={"pool": pool})
    core = rt.backend.core
    flaky = job("ttl-retry", 2, pool, maxRetries=1, backoff={"duration": "0s"})
    rt.service.submit(flaky)
    first = until(lambda: (b := [p for p in pods_of(core, "ttl-retry") if p.spec.node_name]) and len(b) == 2 and b,
                  what="attempt 0 bound")
    set_outcome(core, pods_of(core, "ttl-retry"), "Failed")

    def retry_running():
        pods = [p for p in pods_of(core, "ttl-retry") if p.metadata.labels["jobsched.io/attempt"] == "1"]
        return len(pods) == 2 and all(p.status.phase == "Running" for p in pods) and pods

    retry = until(retry_running, timeout=60, what="attempt 1 running", rt=rt, name="ttl-retry")
    old = {p.metadata.name for p in first}
    until(lambda: not old & pod_names(core, "ttl-retry"), timeout=30, what="attempt 0's pods deleted")
    assert {p.metadata.name for p in retry} <= pod_names(core, "ttl-retry")  # the retry's pods untouched
    assert service_exists(core, "ttl-retry")  # the retry still needs its rendezvous Service
    assert rt.service.get("default", "ttl-retry").phase.value == "Running"
    set_outcome(core, retry, "Succeeded")
    until(lambda: not pods_of(core, "ttl-retry") and not service_exists(core, "ttl-retry"), timeout=30,
          what="the finished retry cleaned up")


def test_a_trainingjob_applied_with_tolerations_keeps_them_through_the_crd(rt, k8s_cluster):
    """The CRD keeps the pod fields (no pruning of the free-form sub-objects), the import validates
    them, and the pod gets them: a job applied like `kubectl apply` lands on a tainted node."""
    pool = uuid.uuid4().hex[:8]
    node = k8s_cluster.add_nodes(1, cpu="2", memory="8Gi", labels={"pool": pool})[0]
    core = rt.backend.core
    taint(core, node, {"key": "dedicated", "value": "ml", "effect": "NoExecute"})
    until(lambda: any(n.name == node and n.taints for n in rt.backend.nodes()), what="taint seen")
    body = job("applied-tolerant", 1, pool)
    body["spec"]["ttlSecondsAfterFinished"] = 1
    body["spec"]["template"].update({"shmSize": "1Gi", "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute", "tolerationSeconds": 3600}]})
    rt.backend.custom.create_namespaced_custom_object("jobsched.io", "v1alpha1", "default", "trainingjobs", body)
    pods = until(lambda: [p for p in pods_of(core, "applied-tolerant") if p.spec.node_name] or None,
                 what="applied-tolerant bound")
    assert pods[0].spec.node_name == node
    tol = next(t for t in pods[0].spec.tolerations if t.key == "dedicated")
    assert (tol.value, tol.effect, tol.toleration_seconds) == ("ml", "NoExecute", 3600)
    set_outcome(core, pods, "Succeeded")
    until(lambda: not pods_of(core, "applied-tolerant"), timeout=30, what="cleaned up after the job's TTL")
