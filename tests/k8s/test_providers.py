"""Node providers on a real API server: KWOK nodes (plan -> create -> schedule -> consolidate ->
delete) and Karpenter NodeClaims validated by Karpenter's own CRDs (tests/k8s/data/karpenter)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from jobsched.backends.kubernetes.providers import (
    KarpenterProvider,
    KwokProvider,
    karpenter_nodepool,
    make_provider,
    parse_node_class,
)
from jobsched.core.gang import PodGroup
from jobsched.core.nodes import NodeTable
from jobsched.rightsizing.consolidator import consolidate
from jobsched.rightsizing.pools import POOL_LABEL, NodePool
from jobsched.rightsizing.provisioner import plan
from jobsched.spec.node import GPU_MODEL_LABEL, INSTANCE_TYPE_LABEL
from jobsched.spec.resources import Resources

pytestmark = pytest.mark.k8s
ROOT = Path(__file__).resolve().parents[2]
KARPENTER_CRDS = Path(__file__).parent / "data" / "karpenter"
NODE_CLASS = {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}
GiB = 2**30


def until(check: Any, timeout: float = 40.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (v := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return v


def make_pool(name: str) -> NodePool:
    # plan() matches selectors against each type's own labels (not jobsched.io/node-pool): a
    # per-test label keeps this test's gang off other tests' nodes.
    return NodePool.model_validate({"name": name, "instanceTypes": [
        {"name": "c4", "cpu": 4, "memory": "16Gi", "pricePerHour": 0.2, "maxCount": 4, "labels": {"pool": name}},
        {"name": "g2", "cpu": 8, "memory": "64Gi", "gpus": 2, "gpuModel": "A10G", "pricePerHour": 1.5,
         "maxCount": 2, "labels": {"pool": name}}]})


def install(api: Any, files: list[Path], names: list[str]) -> None:
    from kubernetes import client, utils

    for f in files:
        try:
            utils.create_from_yaml(api, str(f))
        except utils.FailToCreateError as e:
            if not all(x.status == 409 for x in e.api_exceptions):
                raise
    ext = client.ApiextensionsV1Api(api)
    until(lambda: all(any(c.type == "Established" and c.status == "True"
                          for c in ext.read_custom_resource_definition(n).status.conditions or [])
                      for n in names), what="CRDs established")


@pytest.fixture(scope="module")
def api(k8s_cluster: Any) -> Any:
    return k8s_cluster.api_client()


def test_kwok_round_trip_plan_create_schedule_consolidate(api: Any, k8s_cluster: Any, tmp_path: Path) -> None:
    """The provisioner's choice becomes Nodes the backend schedules a gang onto; once the gang is
    done the consolidator's deletions remove them from the cluster."""
    from jobsched.server.runtime import Runtime

    install(api, sorted((ROOT / "manifests" / "crds").glob("*.yaml")),
            ["trainingjobs.jobsched.io", "queues.jobsched.io"])
    pool = make_pool(f"p{uuid.uuid4().hex[:6]}")
    prov = KwokProvider(api, pool)
    gang = PodGroup("default/train", Resources(6000, 40 * GiB, 2, 1000), replicas=2,
                    node_selector={"pool": pool.name})
    p = plan([gang], pool.instance_types, prov.counts())
    assert p.nodes == [("g2", 2)]
    names = [n for t, c in p.nodes for n in prov.create(t, c)]
    nodes = until(lambda: len(ns := prov.list()) == 2 and ns, what="KWOK nodes Ready")
    assert {n.name for n in nodes} == set(names) and prov.counts() == {"g2": 2}
    for n in nodes:
        assert n.labels[INSTANCE_TYPE_LABEL] == "g2" and n.labels[GPU_MODEL_LABEL] == "A10G"
        assert n.labels[POOL_LABEL] == pool.name and n.labels["jobsched.io/provider"] == "kwok"
        assert n.allocatable_vector() == Resources(8000, 64 * GiB, 2, 1000) and n.price_per_hour == 1.5

    rt = Runtime(tmp_path / "home", backend="kubernetes",
                 backend_options={"kubeconfig": str(k8s_cluster.kubeconfig), "lease_name": f"js-{pool.name}"})
    rt.start()
    try:
        until(rt.backend.is_leader, what="leadership")
        rt.service.submit({"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
                           "metadata": {"name": f"train-{pool.name}"},
                           "spec": {"replicas": 2, "gpuModels": ["A10G"], "template": {
                               "command": ["python", "-m", "workers.train"], "image": "jobsched/worker:dev",
                               "nodeSelector": {"pool": pool.name},
                               "resources": {"requests": {"cpu": "6", "memory": "40Gi", "nvidia.com/gpu": 2}}}}})
        core = rt.backend.core
        sel = f"jobsched.io/job=train-{pool.name}"
        pods = until(lambda: len(ps := [x for x in core.list_namespaced_pod("default", label_selector=sel).items
                                        if x.status.phase == "Running"]) == 2 and ps, what="gang running")
        assert {x.spec.node_name for x in pods} == set(names)  # one replica per new node
        for x in pods:
            core.patch_namespaced_pod(x.metadata.name, "default",
                                      {"metadata": {"annotations": {"jobsched.io/kwok-outcome": "Succeeded"}}})
        until(lambda: rt.service.get("default", f"train-{pool.name}").phase.value == "Succeeded", what="done")
    finally:
        rt.stop()
    table = NodeTable.from_nodes(prov.list())
    later = consolidate(table, [], {n: 0.0 for n in names}, now=400.0, ttl=300.0)
    assert sorted(later.delete) == sorted(names) and later.savings_per_hour == pytest.approx(3.0)
    for n in later.delete:
        prov.delete(n)
    until(lambda: not prov.list() and not prov.counts(), what="nodes deleted")


def test_kwok_provider_limits_and_ownership(api: Any, k8s_cluster: Any) -> None:
    pool = make_pool(f"p{uuid.uuid4().hex[:6]}")
    prov = KwokProvider(api, pool)
    prov.create("c4", 3)
    with pytest.raises(ValueError, match="c4: 3 \\+ 2 nodes exceeds maxCount 4"):
        prov.create("c4", 2)
    with pytest.raises(KeyError, match="unknown instance type 'x9'"):
        prov.create("x9", 1)
    with pytest.raises(ValueError, match="count: expected a positive integer"):
        prov.create("c4", 0)
    other = k8s_cluster.add_nodes(1, prefix=f"foreign-{pool.name}")[0]
    with pytest.raises(KeyError, match="does not belong"):
        prov.delete(other)  # a node it did not create is never deleted
    with pytest.raises(KeyError, match="no node"):
        prov.delete("no-such-node")
    from kubernetes import client

    assert client.CoreV1Api(api).read_node(other).metadata.name == other
    # another pool's provider neither counts nor lists nor deletes these nodes
    stranger = KwokProvider(api, make_pool(f"q{uuid.uuid4().hex[:6]}"))
    assert stranger.counts() == {} and stranger.list() == []


def test_make_provider_errors_name_the_option(api: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="node_pool: cannot read"):
        make_provider("kwok", api, tmp_path / "missing.yaml")
    f = tmp_path / "pool.yaml"
    f.write_text("name: a\ninstanceTypes:\n  - {name: c4, cpu: 4, memory: 16Gi, pricePerHour: 1, maxCount: 1}\n")
    assert isinstance(make_provider("kwok", api, f), KwokProvider)
    with pytest.raises(ValueError, match="node_provider: unknown provider 'gce'"):
        make_provider("gce", api, f)
    with pytest.raises(ValueError, match="node_class: required"):
        make_provider("karpenter", api, f)
    with pytest.raises(ValueError, match="node_class: expected group/kind/name"):
        parse_node_class("EC2NodeClass/default")
    assert isinstance(make_provider("karpenter", api, f, "karpenter.k8s.aws/EC2NodeClass/default"),
                      KarpenterProvider)


@pytest.fixture(scope="module")
def karpenter_crds(api: Any) -> Any:
    install(api, sorted(KARPENTER_CRDS.glob("karpenter.sh_*.yaml")), ["nodeclaims.karpenter.sh",
                                                                      "nodepools.karpenter.sh"])
    return api


def test_karpenter_nodeclaims_pass_karpenters_crds(karpenter_crds: Any, k8s_cluster: Any) -> None:
    """NodeClaims for the chosen types are accepted by Karpenter's schema and CEL rules; once
    'launched' (a stand-in for Karpenter's controller: status.nodeName + a KWOK Node carrying the
    claim's labels) the provider lists the node, and deleting it deletes the claim."""
    from kubernetes import client

    api = karpenter_crds
    custom = client.CustomObjectsApi(api)
    pool = make_pool(f"k{uuid.uuid4().hex[:6]}")
    np = custom.create_cluster_custom_object("karpenter.sh", "v1", "nodepools", karpenter_nodepool(pool, NODE_CLASS))
    assert np["spec"]["disruption"]["budgets"] == [{"nodes": "0"}]  # the NodePool CRD accepted it
    prov = KarpenterProvider(api, pool, NODE_CLASS)
    claims = prov.create("g2", 2)
    assert prov.counts() == {"g2": 2} and prov.list() == []  # not launched yet
    obj = custom.get_cluster_custom_object("karpenter.sh", "v1", "nodeclaims", claims[0])
    assert obj["spec"]["nodeClassRef"] == NODE_CLASS
    assert {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": ["g2"]} in obj["spec"]["requirements"]
    assert obj["spec"]["expireAfter"] == "720h"  # defaulted by Karpenter's CRD: it really applied
    labels = obj["metadata"]["labels"]
    assert labels["karpenter.sh/nodepool"] == pool.name and labels[GPU_MODEL_LABEL] == "A10G"
    with pytest.raises(ValueError, match="maxCount 2"):
        prov.create("g2", 1)

    # stand-in for Karpenter: launch the first claim as a KWOK node with the claim's labels
    node = f"ip-10-0-0-{uuid.uuid4().hex[:4]}"
    kwok = KwokProvider(api, pool)
    body = kwok.body(node, pool.type("g2"))
    body["metadata"]["labels"] = {**labels, "kubernetes.io/hostname": node}
    client.CoreV1Api(api).create_node(body)
    custom.patch_cluster_custom_object_status("karpenter.sh", "v1", "nodeclaims", claims[0],
                                              {"status": {"nodeName": node}})
    listed = until(lambda: prov.list(), what="launched node listed")
    assert [n.name for n in listed] == [node] and listed[0].labels[INSTANCE_TYPE_LABEL] == "g2"
    prov.delete(node)  # by node name: its claim goes
    assert prov.counts() == {"g2": 1} and prov.list() == []
    prov.delete(claims[1])  # by claim name
    assert prov.counts() == {}
    with pytest.raises(KeyError, match="no NodeClaim"):
        prov.delete(claims[1])


def test_karpenter_crd_validation_is_live(karpenter_crds: Any) -> None:
    """Karpenter's CEL rules run on our API server: a restricted requirement key is refused."""
    from kubernetes.client.exceptions import ApiException

    pool = make_pool(f"k{uuid.uuid4().hex[:6]}")
    prov = KarpenterProvider(karpenter_crds, pool, NODE_CLASS)
    body = prov.body("bad-claim", pool.type("c4"))
    body["spec"]["requirements"].append({"key": "karpenter.sh/unknown", "operator": "Exists"})
    with pytest.raises(ApiException) as e:
        prov.custom.create_cluster_custom_object("karpenter.sh", "v1", "nodeclaims", body)
    assert e.value.status == 422 and 'label domain \\"karpenter.sh\\" is restricted' in e.value.body


def test_autoscaler_provisions_once_then_removes_idle_nodes(api: Any) -> None:
    """The controller's two calls: provision for waiting gangs (not again while the planned nodes
    are not Ready), and scale_down, which keeps busy nodes and deletes empty ones after the TTL."""
    from jobsched.backends.kubernetes.providers import Autoscaler
    from jobsched.core.gang import Assignment
    from jobsched.core.snapshot import RunningGang

    pool = make_pool(f"a{uuid.uuid4().hex[:6]}").model_copy(update={"empty_ttl_seconds": 300.0})
    auto = Autoscaler(KwokProvider(api, pool))
    assert {s.name: s.max_count for s in auto.shapes()} == {"c4": 4, "g2": 2}
    gang = PodGroup("default/etl", Resources(3000, 8 * GiB), replicas=3, node_selector={"pool": pool.name})
    p = auto.provision([gang])
    assert p is not None and p.nodes == [("c4", 3)]
    nodes = until(lambda: len(ns := auto.provider.list()) == 3 and ns, what="nodes Ready")
    assert auto.provider.counts() == {"c4": 3} and {s.name: s.max_count for s in auto.shapes()}["c4"] == 1
    from kubernetes import client

    core = client.CoreV1Api(api)
    core.patch_node(nodes[2].name, {"spec": {"unschedulable": True}})  # as if still starting
    assert auto.provision([gang]) is None and auto.provider.counts() == {"c4": 3}  # in flight: no second set
    core.patch_node(nodes[2].name, {"spec": {"unschedulable": False}})
    until(lambda: len(auto.provider.list()) == 3, what="node back")
    p = auto.provision([gang], current=NodeTable.from_nodes(auto.provider.list()))
    assert p is not None and p.nodes == [] and auto.provider.counts() == {"c4": 3}  # fits on what is there
    busy = nodes[0].name
    running = [RunningGang("default/etl", Resources(3000, 8 * GiB), (Assignment(0, busy, -1, ()),))]
    assert auto.scale_down(running, now=1000.0) == []  # empty since 1000
    assert auto.scale_down(running, now=1200.0) == []  # TTL not reached
    gone = auto.scale_down(running, now=1301.0)
    assert sorted(gone) == sorted(n.name for n in nodes[1:])
    until(lambda: [n.name for n in auto.provider.list()] == [busy], what="idle nodes deleted")
    assert auto.scale_down([], now=1400.0) == []  # freed at 1400: its TTL starts now
    assert auto.scale_down([], now=1701.0) == [busy]
