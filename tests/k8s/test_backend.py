"""The Kubernetes backend against a real kube-apiserver + etcd, with KWOK nodes as kubelets."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml

from jobsched.server.runtime import Runtime

pytestmark = pytest.mark.k8s
ROOT = Path(__file__).resolve().parents[2]
OUTCOME = "jobsched.io/kwok-outcome"


def until(check, timeout=40.0, what="condition", rt=None, name=None):
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            detail = ""
            if rt is not None and name is not None:
                st = rt.service.get("default", name)
                detail = f": {st.phase} {st.reason} {st.message} " + "; ".join(
                    f"{e.reason}: {e.message}" for e in st.events
                )
            raise AssertionError(f"timed out waiting for {what}{detail}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def crds(k8s_cluster):
    from kubernetes import client, utils

    api = k8s_cluster.api_client()
    for f in sorted((ROOT / "manifests" / "crds").glob("*.yaml")):
        try:
            utils.create_from_yaml(api, str(f))
        except utils.FailToCreateError as e:
            if not all(x.status == 409 for x in e.api_exceptions):
                raise
    ext = client.ApiextensionsV1Api(api)
    until(
        lambda: all(
            any(
                c.type == "Established" and c.status == "True"
                for c in (ext.read_custom_resource_definition(n).status.conditions or [])
            )
            for n in ("trainingjobs.jobsched.io", "queues.jobsched.io")
        ),
        what="CRDs established",
    )
    return api


@pytest.fixture
def rt(k8s_cluster, crds, tmp_path):
    r = Runtime(
        tmp_path / "home",
        backend="kubernetes",
        backend_options={
            "kubeconfig": str(k8s_cluster.kubeconfig),
            "lease_name": f"js-{uuid.uuid4().hex[:6]}",
        },
    )
    r.start()
    until(r.backend.is_leader, what="leadership")
    yield r
    r.stop()


def label() -> str:
    return uuid.uuid4().hex[:8]


def job(name: str, replicas: int, pool: str, cpu: str = "1", memory: str = "1Gi", **spec) -> dict:
    return {
        "apiVersion": "jobsched.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            **spec,
            "template": {
                "command": ["python", "-m", "workers.train"],
                "image": "jobsched/worker:dev",
                "nodeSelector": {"pool": pool},
                "resources": {"requests": {"cpu": cpu, "memory": memory}},
            },
        },
    }


def pods_of(core, name: str):
    return [
        p
        for p in core.list_namespaced_pod("default").items
        if (p.metadata.labels or {}).get("jobsched.io/job") == name
    ]


def set_outcome(core, pods, outcome: str):
    for p in pods:
        core.patch_namespaced_pod(
            p.metadata.name, "default", {"metadata": {"annotations": {OUTCOME: outcome}}}
        )


def core_api(rt):
    return rt.backend.core


def test_gang_bound_all_or_nothing(rt, k8s_cluster):
    pool = label()
    k8s_cluster.add_nodes(2, cpu="2", memory="8Gi", labels={"pool": pool})
    until(
        lambda: (
            len([n for n in rt.backend.nodes() if n.labels.get("pool") == pool and not n.unschedulable]) == 2
        ),
        what="nodes seen",
    )
    core = core_api(rt)
    rt.service.submit(job("blocker", 1, pool))
    until(lambda: rt.service.get("default", "blocker").phase.value == "Running", what="blocker running")
    rt.service.submit(job("gang4", 4, pool))
    st = until(lambda: (s := rt.service.get("default", "gang4")).message and s, what="pending reason")
    time.sleep(1.0)
    st = rt.service.get("default", "gang4")
    assert st.phase.value == "Pending" and "only 3 of 4 replicas fit" in st.message
    assert pods_of(core, "gang4") == []  # nothing of the gang was created, let alone bound
    rt.service.cancel("default", "blocker")
    until(lambda: rt.service.get("default", "gang4").phase.value == "Running", what="gang4 running")
    pods = pods_of(core, "gang4")
    assert len(pods) == 4 and all(p.spec.node_name for p in pods)
    assert all(p.spec.scheduler_name == "jobsched" for p in pods)
    assert {p.metadata.labels["jobsched.io/replica"] for p in pods} == {"0", "1", "2", "3"}
    envs = {e.name: e.value for e in pods[0].spec.containers[0].env}
    assert envs["WORLD_SIZE"] == "4" and envs["MASTER_ADDR"].startswith("gang4-a0-0.")
    set_outcome(core, pods, "Succeeded")
    st = until(lambda: (s := rt.service.get("default", "gang4")).phase.is_terminal() and s, what="gang4 done")
    assert st.phase.value == "Succeeded"


def test_oomkilled_pod_is_resized(rt, k8s_cluster):
    pool = label()
    k8s_cluster.add_nodes(1, cpu="4", memory="16Gi", labels={"pool": pool})
    until(
        lambda: any(n.labels.get("pool") == pool and not n.unschedulable for n in rt.backend.nodes()),
        what="node seen",
    )
    core = core_api(rt)
    rt.service.submit(job("oomy", 2, pool, memory="1Gi"))
    until(
        lambda: (
            len(pods_of(core, "oomy")) == 2
            and all(p.status.phase == "Running" for p in pods_of(core, "oomy"))
        ),
        what="oomy running",
        rt=rt,
        name="oomy",
    )
    set_outcome(core, pods_of(core, "oomy")[:1], "OOMKilled")
    st = until(
        lambda: (s := rt.service.get("default", "oomy")).attempts and len(s.attempts) == 2 and s,
        what="second attempt",
    )
    assert st.attempts[0].reason == "OOMKilled"
    new = until(
        lambda: [p for p in pods_of(core, "oomy") if p.metadata.labels["jobsched.io/attempt"] == "1"] or None,
        what="attempt-1 pods",
    )
    limit = new[0].spec.containers[0].resources.limits["memory"]
    assert int(limit) >= int(1.5 * 2**30)
    def attempt1():
        return [p for p in pods_of(core, "oomy") if p.metadata.labels["jobsched.io/attempt"] == "1"]

    new = until(lambda: (ps := attempt1()) and all(p.status.phase == "Running" for p in ps) and ps,
                what="attempt-1 running")
    set_outcome(core, new, "Succeeded")
    until(lambda: rt.service.get("default", "oomy").phase.value == "Succeeded", what="oomy succeeded")


def test_node_deleted_mid_run_requeues(rt, k8s_cluster):
    pool = label()
    names = k8s_cluster.add_nodes(2, cpu="2", memory="8Gi", labels={"pool": pool})
    until(
        lambda: (
            len([n for n in rt.backend.nodes() if n.labels.get("pool") == pool and not n.unschedulable]) == 2
        ),
        what="nodes seen",
    )
    core = core_api(rt)
    rt.service.submit(job("nodeloss", 1, pool, cpu="2"))
    pod = until(
        lambda: [p for p in pods_of(core, "nodeloss") if p.status.phase == "Running"] or None, what="running"
    )[0]
    core.delete_node(pod.spec.node_name)
    st = until(
        lambda: (s := rt.service.get("default", "nodeloss")).attempts and len(s.attempts) == 2 and s,
        what="requeued",
    )
    assert st.attempts[0].reason == "NodeLost"
    other = [n for n in names if n != pod.spec.node_name][0]
    assert st.attempts[1].nodes == [other]


def test_restart_rebuilds_cache_and_binds_nothing_twice(k8s_cluster, crds, tmp_path):
    pool = label()
    k8s_cluster.add_nodes(1, cpu="4", memory="8Gi", labels={"pool": pool})
    opts = {"kubeconfig": str(k8s_cluster.kubeconfig), "lease_name": f"js-{label()}"}
    r1 = Runtime(tmp_path / "h", backend="kubernetes", backend_options=opts)
    r1.start()
    until(r1.backend.is_leader, what="leader")
    r1.service.submit(job("survive", 2, pool))
    until(lambda: r1.service.get("default", "survive").phase.value == "Running", what="running")
    core = r1.backend.core
    before = {p.metadata.name: p.metadata.uid for p in pods_of(core, "survive")}
    r1.controller.stop()  # the scheduler dies (its lease is not released)
    r1.backend.close()
    r2 = Runtime(tmp_path / "h", backend="kubernetes", backend_options=opts)
    r2.start()
    try:
        until(r2.backend.is_leader, timeout=40, what="leader again")
        time.sleep(1.0)
        after = {p.metadata.name: p.metadata.uid for p in pods_of(core, "survive")}
        assert after == before  # same pods, nothing created or bound again
        set_outcome(core, pods_of(core, "survive"), "Succeeded")
        st = until(lambda: (s := r2.service.get("default", "survive")).phase.is_terminal() and s, what="done")
        assert st.phase.value == "Succeeded" and len(st.attempts) == 1
    finally:
        r2.stop()


def test_apiserver_restart_mid_watch_is_survived(rt, k8s_cluster):
    pool = label()
    k8s_cluster.add_nodes(1, cpu="2", memory="8Gi", labels={"pool": pool})
    until(
        lambda: any(n.labels.get("pool") == pool and not n.unschedulable for n in rt.backend.nodes()),
        what="node seen",
    )
    k8s_cluster.stop_apiserver()
    time.sleep(1.0)
    k8s_cluster.start_apiserver()
    rt.service.submit(job("after-restart", 1, pool))
    core = core_api(rt)
    pods = until(
        lambda: [p for p in pods_of(core, "after-restart") if p.status.phase == "Running"] or None,
        timeout=60,
        what="running after restart",
    )
    set_outcome(core, pods, "Succeeded")
    until(
        lambda: rt.service.get("default", "after-restart").phase.value == "Succeeded", timeout=60, what="done"
    )


def test_kubectl_apply_is_picked_up_and_status_written(rt, k8s_cluster):
    pool = label()
    k8s_cluster.add_nodes(1, cpu="2", memory="8Gi", labels={"pool": pool})
    custom = rt.backend.custom
    custom.create_namespaced_custom_object(
        "jobsched.io", "v1alpha1", "default", "trainingjobs", job("applied", 1, pool)
    )
    until(lambda: _exists(rt, "applied"), what="imported")
    core = core_api(rt)
    pods = until(
        lambda: [p for p in pods_of(core, "applied") if p.status.phase == "Running"] or None, what="running"
    )
    assert pods[0].metadata.owner_references[0].kind == "TrainingJob"
    set_outcome(core, pods, "Succeeded")
    obj = until(
        lambda: (
            (
                o := custom.get_namespaced_custom_object(
                    "jobsched.io", "v1alpha1", "default", "trainingjobs", "applied"
                )
            )
            .get("status", {})
            .get("phase")
            == "Succeeded"
            and o
        ),
        what="CR status",
    )
    assert obj["status"]["attemptCount"] == 1


def test_invalid_trainingjob_refused_by_crd_schema(crds):
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    custom = client.CustomObjectsApi(crds)
    bad = job("bad", 0, "x")
    bad["spec"]["template"]["resources"]["requests"]["memory"] = "-1Gi"
    with pytest.raises(ApiException) as e:
        custom.create_namespaced_custom_object("jobsched.io", "v1alpha1", "default", "trainingjobs", bad)
    assert e.value.status == 422
    assert "spec.replicas" in e.value.body and "spec.template.resources.requests.memory" in e.value.body


def test_only_one_leader(k8s_cluster):
    from jobsched.backends.kubernetes.leader import LeaseElector

    api = k8s_cluster.api_client()
    name = f"lease-{label()}"
    a = LeaseElector(api, "default", name, "a", lease_seconds=3)
    b = LeaseElector(api, "default", name, "b", lease_seconds=3)
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False
    assert a.try_acquire_or_renew() is True
    time.sleep(3.5)  # a stops renewing: its lease expires and b takes over
    assert b.try_acquire_or_renew() is True
    assert a.try_acquire_or_renew() is False


def _exists(rt, name):
    try:
        rt.service.get("default", name)
        return True
    except LookupError:
        return False


def test_manifests_validate_offline():
    docs = [
        d
        for f in sorted((ROOT / "manifests").rglob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d
    ]
    kinds = {d["kind"] for d in docs}
    assert {"CustomResourceDefinition"} <= kinds


def test_pods_of_other_schedulers_hold_room(rt, k8s_cluster):
    from kubernetes import client

    pool = label()
    names = k8s_cluster.add_nodes(2, cpu="2", memory="8Gi", labels={"pool": pool})
    core = core_api(rt)
    core.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"foreign-{pool}"},
        "spec": {"schedulerName": "someone-else", "containers": [
            {"name": "c", "image": "x", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}]}})
    body = client.V1Binding(metadata=client.V1ObjectMeta(name=f"foreign-{pool}"),
                            target=client.V1ObjectReference(api_version="v1", kind="Node", name=names[0]))
    core.create_namespaced_pod_binding(f"foreign-{pool}", "default", body, _preload_content=False)
    until(lambda: any(n.name == names[0] and n.held_vector().cpu_milli == 2000 for n in rt.backend.nodes()),
          what="foreign pod's room held")
    rt.service.submit(job("beside", 1, pool, cpu="2"))
    pods = until(lambda: [p for p in pods_of(core, "beside") if p.spec.node_name] or None, what="bound")
    assert pods[0].spec.node_name == names[1]  # not onto the node the other scheduler filled


def _foreign_pod(core, name: str, node: str, cpu: str = "0", gpus: int = 0) -> None:
    from kubernetes import client

    req = {"cpu": cpu, "memory": "64Mi", **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    core.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"schedulerName": "someone-else", "containers": [
            {"name": "c", "image": "x", "resources": {"requests": req, "limits": req}}]}})
    body = client.V1Binding(metadata=client.V1ObjectMeta(name=name),
                            target=client.V1ObjectReference(api_version="v1", kind="Node", name=node))
    core.create_namespaced_pod_binding(name, "default", body, _preload_content=False)


def test_foreign_pods_make_jobs_wait_then_run(rt, k8s_cluster):
    """Other schedulers' pods hold room for now, not for good: a job pinned to a node a foreign pod
    fills, and a 4-GPU gang while foreign 1-GPU pods hold GPUs, stay Pending (saying why) and run
    once those pods are gone."""
    pool = label()
    (cpu_node,) = k8s_cluster.add_nodes(1, cpu="8", memory="16Gi", labels={"pool": pool})
    gpu_nodes = k8s_cluster.add_nodes(2, cpu="8", memory="16Gi", gpus=4, labels={"pool": f"{pool}-gpu"})
    core = core_api(rt)
    _foreign_pod(core, f"f-{pool}", cpu_node, cpu="7")
    for i, n in enumerate(gpu_nodes):
        _foreign_pod(core, f"g-{pool}-{i}", n, gpus=1)
    until(lambda: sum(n.held_vector().gpus for n in rt.backend.nodes()
                      if n.labels.get("pool") == f"{pool}-gpu") == 2, what="foreign pods seen")
    shown = {n.name: n for n in rt.service.nodes()}  # GET /v1/nodes: allocatable whole, the held room apart
    assert shown[cpu_node].held["cpu"] == "7000m" and shown[cpu_node].allocatable["cpu"] == "8"
    rt.service.submit(job("pinned", 1, pool, cpu="7"))
    gpu_job = job("gpus4", 2, f"{pool}-gpu")
    gpu_job["spec"]["template"]["resources"]["requests"]["nvidia.com/gpu"] = 4
    rt.service.submit(gpu_job)
    for name, n in (("pinned", 1), ("gpus4", 2)):
        st = until(lambda name=name: (s := rt.service.get("default", name)).message and s, what=f"{name} waits",
                   rt=rt, name=name)
        assert st.phase.value == "Pending", (name, st.phase, st.message)
        assert st.message.startswith(f"waiting: capacity held by pods of other schedulers on {n} node"), st.message
    time.sleep(1.5)  # a few more cycles: still waiting, never failed
    assert {rt.service.get("default", n).phase.value for n in ("pinned", "gpus4")} == {"Pending"}
    assert pods_of(core, "pinned") == [] and pods_of(core, "gpus4") == []
    core.delete_namespaced_pod(f"f-{pool}", "default", grace_period_seconds=0)
    for i in range(2):
        core.delete_namespaced_pod(f"g-{pool}-{i}", "default", grace_period_seconds=0)
    for name in ("pinned", "gpus4"):
        until(lambda name=name: rt.service.get("default", name).phase.value == "Running", what=f"{name} runs",
              rt=rt, name=name)
    assert {p.spec.node_name for p in pods_of(core, "pinned")} == {cpu_node}
    assert {p.spec.node_name for p in pods_of(core, "gpus4")} == set(gpu_nodes)


def test_gpu_feature_discovery_labels_size_gpu_placement(rt, k8s_cluster):
    """A KWOK node labelled like NVIDIA GPU Feature Discovery: its model and memory per GPU reach
    the scheduler; a GPU-memory request it cannot hold is rejected, one it can hold is bound, and
    the pod leaves device isolation to the device plugin."""
    pool = label()
    gfd = {"pool": pool, "nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.memory": "23034"}
    k8s_cluster.add_nodes(1, cpu="8", memory="32Gi", gpus=1, labels=gfd)
    node = until(lambda: next((n for n in rt.backend.nodes() if n.labels.get("pool") == pool), None),
                 what="GPU node seen")
    assert node.gpu_model == "NVIDIA-L4" and node.gpu_memory_bytes == 23034 * 2**20
    shown = next(n for n in rt.service.nodes() if n.name == node.name)
    assert shown.gpu_model == "NVIDIA-L4" and shown.gpu_memory == 23034 * 2**20
    core = core_api(rt)
    big = job("gpu-big", 1, pool)
    big["spec"]["template"]["resources"]["requests"].update({"nvidia.com/gpu": 1, "jobsched.io/gpu-memory": "30Gi"})
    big["spec"]["template"]["nodeSelector"] = {"pool": pool}
    rt.service.submit(big)
    st = until(lambda: (s := rt.service.get("default", "gpu-big")).phase.is_terminal() and s, what="rejected")
    assert st.phase.value == "Failed" and "GPU memory below 30Gi" in st.message
    fits = job("gpu-fits", 1, pool)
    fits["spec"]["template"]["resources"]["requests"].update({"nvidia.com/gpu": 1, "jobsched.io/gpu-memory": "16Gi"})
    rt.service.submit(fits)
    until(lambda: rt.service.get("default", "gpu-fits").phase.value == "Running", what="gpu-fits running")
    pods = pods_of(core, "gpu-fits")
    c = pods[0].spec.containers[0]
    assert c.resources.limits["nvidia.com/gpu"] == "1"
    assert not {"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"} & {e.name for e in c.env}
    set_outcome(core, pods, "Succeeded")
    until(lambda: rt.service.get("default", "gpu-fits").phase.is_terminal(), what="gpu-fits done")
