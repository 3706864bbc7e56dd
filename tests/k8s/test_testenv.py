"""The test control plane behaves like a cluster with kubelets: binding, outcomes, restarts."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.k8s

# The contract the KWOK stages implement (tools/k8s-testenv/stages/pod.yaml).
OUTCOME_ANNOTATION = "jobsched.io/kwok-outcome"
OUTCOME_AFTER_ANNOTATION = "jobsched.io/kwok-outcome-after"
K8sCluster = Any  # tests/k8s/conftest.py:K8sCluster
Wait = Any  # tests/k8s/conftest.py:wait_for


@pytest.fixture(scope="module")
def core(k8s_cluster: K8sCluster) -> Any:
    from kubernetes import client

    return client.CoreV1Api(k8s_cluster.api_client())


@pytest.fixture(scope="module")
def node(k8s_cluster: K8sCluster) -> str:
    names: list[str] = k8s_cluster.add_nodes(1, cpu="16", memory="64Gi", gpus=8, prefix="testenv")
    return names[0]


def make_pod(core: Any, annotations: dict[str, str] | None = None, scheduler: str = "jobsched") -> str:
    """A pod only ``scheduler`` may bind (default jobsched: none runs here); returns its name."""
    from kubernetes import client

    name = f"p-{uuid.uuid4().hex[:8]}"
    core.create_namespaced_pod(
        "default",
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, annotations=annotations),
            spec=client.V1PodSpec(
                scheduler_name=scheduler,
                restart_policy="Never",
                containers=[client.V1Container(name="train", image="trainer:latest")],
            ),
        ),
    )
    return name


def bind(core: Any, pod: str, node: str) -> None:
    """Bind through the Binding subresource, as a scheduler does."""
    from kubernetes import client

    body = client.V1Binding(
        metadata=client.V1ObjectMeta(name=pod),
        target=client.V1ObjectReference(kind="Node", name=node, api_version="v1"),
    )
    # The client cannot deserialize the Binding the server returns (empty target).
    core.create_namespaced_binding("default", body, _preload_content=False)


def phase_is(core: Any, pod: str, phase: str) -> Any:
    status = core.read_namespaced_pod_status(pod, "default").status
    return status if status.phase == phase else None


def set_outcome(core: Any, pod: str, outcome: str, after: str | None = None) -> None:
    annotations = {OUTCOME_ANNOTATION: outcome}
    if after:
        annotations[OUTCOME_AFTER_ANNOTATION] = after
    core.patch_namespaced_pod(pod, "default", {"metadata": {"annotations": annotations}})


def test_nodes_get_capacity_labels_and_ready(k8s_cluster: K8sCluster, core: Any) -> None:
    names = k8s_cluster.add_nodes(
        3, cpu="32", memory="256Gi", gpus=4, labels={"jobsched.io/gpu-model": "a100"}
    )
    for name in names:
        n = core.read_node(name)
        assert n.status.allocatable["cpu"] == "32"
        assert n.status.allocatable["memory"] == "256Gi"
        assert n.status.allocatable["nvidia.com/gpu"] == "4"
        assert n.metadata.labels["jobsched.io/gpu-model"] == "a100"
        assert not n.spec.taints  # no controller-manager: nothing may leave a not-ready taint


def test_add_nodes_rejects_bad_capacity(k8s_cluster: K8sCluster) -> None:
    with pytest.raises(ValueError, match="memory"):
        k8s_cluster.add_nodes(1, memory="lots")
    with pytest.raises(ValueError, match="gpus"):
        k8s_cluster.add_nodes(1, gpus=-1)


def test_only_bound_pod_runs(core: Any, node: str, wait_for: Wait) -> None:
    bound, unbound = make_pod(core), make_pod(core)
    bind(core, bound, node)
    status = wait_for(lambda: phase_is(core, bound, "Running"), what="bound pod Running")
    assert status.container_statuses[0].state.running is not None
    assert status.pod_ip
    other = core.read_namespaced_pod(unbound, "default")
    assert other.spec.node_name is None
    assert other.status.phase == "Pending"


@pytest.mark.parametrize(
    ("outcome", "phase", "exit_code", "reason"),
    [
        ("Succeeded", "Succeeded", 0, "Completed"),
        ("Failed", "Failed", 1, "Error"),
        ("OOMKilled", "Failed", 137, "OOMKilled"),
    ],
)
def test_outcome_annotation_ends_pod(
    core: Any, node: str, outcome: str, phase: str, exit_code: int, reason: str, wait_for: Wait
) -> None:
    pod = make_pod(core)
    bind(core, pod, node)
    wait_for(lambda: phase_is(core, pod, "Running"), what="Running")
    set_outcome(core, pod, outcome)
    status = wait_for(lambda: phase_is(core, pod, phase), what=f"phase {phase}")
    terminated = status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (exit_code, reason)


def test_outcome_set_before_binding_waits_for_running(core: Any, node: str, wait_for: Wait) -> None:
    pod = make_pod(core, {OUTCOME_ANNOTATION: "OOMKilled"})
    bind(core, pod, node)
    status = wait_for(lambda: phase_is(core, pod, "Failed"), what="phase Failed")
    assert status.container_statuses[0].state.terminated.exit_code == 137
    assert status.start_time is not None  # it went through Running first


def test_outcome_after_delays_the_end(core: Any, node: str, wait_for: Wait) -> None:
    pod = make_pod(core)
    bind(core, pod, node)
    wait_for(lambda: phase_is(core, pod, "Running"), what="Running")
    asked = dt.datetime.now(dt.UTC).replace(microsecond=0)
    set_outcome(core, pod, "Succeeded", after="3s")
    status = wait_for(lambda: phase_is(core, pod, "Succeeded"), what="Succeeded")
    finished = status.container_statuses[0].state.terminated.finished_at
    assert finished - asked >= dt.timedelta(seconds=2)  # timestamps have 1 s resolution


def test_deleted_pod_is_removed(core: Any, node: str, wait_for: Wait) -> None:
    from kubernetes.client.exceptions import ApiException

    pod = make_pod(core)
    bind(core, pod, node)
    wait_for(lambda: phase_is(core, pod, "Running"), what="Running")
    core.delete_namespaced_pod(pod, "default")  # graceful: KWOK finishes it like a kubelet

    def gone() -> bool:
        try:
            core.read_namespaced_pod(pod, "default")
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(gone, what="pod deletion")


def test_apiserver_restart_keeps_objects(
    k8s_cluster: K8sCluster, core: Any, node: str, wait_for: Wait
) -> None:
    import urllib3
    from kubernetes import client

    running = make_pod(core)
    bind(core, running, node)
    wait_for(lambda: phase_is(core, running, "Running"), what="Running")
    core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="keep-me"), data={"k": "v"})
    )
    k8s_cluster.stop_apiserver()
    try:
        with pytest.raises(urllib3.exceptions.MaxRetryError):
            core.list_namespaced_pod("default", _request_timeout=2)
    finally:
        k8s_cluster.start_apiserver()
    assert core.read_namespaced_config_map("keep-me", "default").data == {"k": "v"}
    assert core.read_namespaced_pod(running, "default").status.phase == "Running"
    # KWOK reconnects: a pod bound after the restart still runs and ends.
    pod = make_pod(core, {OUTCOME_ANNOTATION: "Succeeded"})
    bind(core, pod, node)
    wait_for(lambda: phase_is(core, pod, "Succeeded"), timeout=60, what="Succeeded after restart")


def test_default_kube_scheduler_binds_to_kwok_nodes(
    k8s_cluster: K8sCluster, core: Any, node: str, wait_for: Wait
) -> None:
    pod = make_pod(core, scheduler="default-scheduler")
    k8s_cluster.start("kube-scheduler")
    try:
        wait_for(lambda: phase_is(core, pod, "Running"), timeout=60, what="kube-scheduler to bind")
    finally:
        k8s_cluster.stop("kube-scheduler")
    assert core.read_namespaced_pod(pod, "default").spec.node_name.startswith(("testenv-", "kwok-node-"))
