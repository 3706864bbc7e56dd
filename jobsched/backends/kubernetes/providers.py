"""Node providers on Kubernetes (:class:`jobsched.rightsizing.pools.NodeProvider`).

* :class:`KwokProvider` creates ``Node`` objects that KWOK (``kwok.x-k8s.io/node: fake``) plays the
  kubelet of: tests, benchmarks and demos of the provisioner on a real API server.
* :class:`KarpenterProvider` creates Karpenter ``NodeClaim`` objects (``karpenter.sh/v1``), one per
  node, for the instance types :func:`jobsched.rightsizing.provisioner.plan` chose; Karpenter launches
  them and deleting a NodeClaim drains and terminates its node.

Both only touch the objects of their own pool (label ``jobsched.io/node-pool``) and provider
(label ``jobsched.io/provider``): ``delete`` refuses any other node.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jobsched.backends.kubernetes.pods import dns_name
from jobsched.core.gang import PodGroup
from jobsched.core.nodes import NodeTable
from jobsched.core.snapshot import NodeShape, RunningGang
from jobsched.rightsizing.consolidator import consolidate
from jobsched.rightsizing.pools import POOL_LABEL, InstanceType, NodePool, load_pool
from jobsched.rightsizing.provisioner import ProvisionPlan, plan
from jobsched.spec import quantity as q
from jobsched.spec.node import INSTANCE_TYPE_LABEL, Node

PROVIDER_LABEL = "jobsched.io/provider"
PRICE_ANNOTATION = "jobsched.io/price-per-hour"  # read back by KubernetesBackend.nodes()
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KARPENTER_POOL_LABEL = "karpenter.sh/nodepool"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
KARPENTER = ("karpenter.sh", "v1", "nodeclaims")
RESOURCES = ("cpu", "memory", "nvidia.com/gpu")


def capacity(t: InstanceType, pods: int = 110) -> dict[str, str]:
    out = {"cpu": str(t.cpu), "memory": str(t.memory), "pods": str(pods)}
    if t.gpus:
        out["nvidia.com/gpu"] = str(t.gpus)
    return out


def to_node(obj: Any) -> Node | None:
    """A ready, schedulable Kubernetes Node as jobsched's :class:`Node`; None otherwise."""
    st, md = obj.status, obj.metadata
    if (obj.spec and obj.spec.unschedulable) or md.deletion_timestamp is not None:
        return None
    if not any(c.type == "Ready" and c.status == "True" for c in (st.conditions or [])):
        return None

    def pick(d: dict[str, str] | None) -> dict[str, str]:
        return {k: v for k, v in (d or {}).items() if k in RESOURCES}

    return Node.model_validate({
        "name": md.name, "capacity": pick(st.capacity), "allocatable": pick(st.allocatable or st.capacity),
        "labels": dict(md.labels or {}),
        "price_per_hour": float((md.annotations or {}).get(PRICE_ANNOTATION, 0)),
    })


class _Provider:
    kind = ""

    def __init__(self, api_client: Any, pool: NodePool) -> None:
        from kubernetes import client

        self.pool = pool
        self.core: Any = client.CoreV1Api(api_client)
        self.selector = f"{POOL_LABEL}={pool.name},{PROVIDER_LABEL}={self.kind}"

    def labels(self, t: InstanceType) -> dict[str, str]:
        return {**t.node_labels(self.pool.name), PROVIDER_LABEL: self.kind}

    def _check(self, instance_type: str, count: int) -> InstanceType:
        t = self.pool.type(instance_type)  # KeyError names the type and the pool
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count: expected a positive integer, got {count!r}")
        have = self.counts().get(instance_type, 0)
        if have + count > t.max_count:
            raise ValueError(f"{instance_type}: {have} + {count} nodes exceeds maxCount {t.max_count}")
        return t

    def _name(self, t: InstanceType) -> str:
        return dns_name(self.pool.name, t.name, uuid.uuid4().hex[:8])

    def counts(self) -> dict[str, int]:
        raise NotImplementedError


class KwokProvider(_Provider):
    """Node objects managed by KWOK, with the instance type's capacity, labels and price."""

    kind = "kwok"

    def __init__(self, api_client: Any, pool: NodePool, workers: int = 16) -> None:
        super().__init__(api_client, pool)
        self.workers = workers

    def body(self, name: str, t: InstanceType) -> dict[str, Any]:
        labels = {**self.labels(t), "type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
        cap = capacity(t)
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": labels,
                             "annotations": {KWOK_ANNOTATION: "fake", PRICE_ANNOTATION: str(t.price_per_hour)}},
                "status": {"capacity": cap, "allocatable": cap}}

    def create(self, instance_type: str, count: int) -> builtins.list[str]:
        t = self._check(instance_type, count)
        names = [self._name(t) for _ in range(count)]
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, count))) as ex:
            list(ex.map(lambda n: self.core.create_node(self.body(n, t)), names))
        return names

    def _nodes(self) -> builtins.list[Any]:
        return list(self.core.list_node(label_selector=self.selector).items)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in self._nodes():
            if n.metadata.deletion_timestamp is None:
                t = (n.metadata.labels or {}).get(INSTANCE_TYPE_LABEL, "")
                out[t] = out.get(t, 0) + 1
        return out

    def list(self) -> builtins.list[Node]:
        return [x for x in map(to_node, self._nodes()) if x is not None]

    def delete(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            labels = self.core.read_node(name).metadata.labels or {}
        except ApiException as e:
            if e.status == 404:
                raise KeyError(f"no node {name!r}") from None
            raise
        if labels.get(POOL_LABEL) != self.pool.name or labels.get(PROVIDER_LABEL) != self.kind:
            raise KeyError(f"node {name!r} does not belong to the {self.kind} provider of pool {self.pool.name!r}")
        self.core.delete_node(name)


class KarpenterProvider(_Provider):
    """One ``karpenter.sh/v1`` NodeClaim per node, pinned to the instance type by its requirements.

    ``node_class``: the ``nodeClassRef`` (``group``, ``kind``, ``name``, e.g. karpenter.k8s.aws
    EC2NodeClass default). ``nodepool``: the Karpenter NodePool the claims count against (label
    ``karpenter.sh/nodepool``; default: the jobsched pool's name; see :func:`karpenter_nodepool`)."""

    kind = "karpenter"

    def __init__(self, api_client: Any, pool: NodePool, node_class: dict[str, str], nodepool: str | None = None,
                 capacity_type: str = "on-demand") -> None:
        from kubernetes import client

        super().__init__(api_client, pool)
        missing = [k for k in ("group", "kind", "name") if not node_class.get(k)]
        if missing:
            raise ValueError(f"node_class: missing {', '.join(missing)} (expected group, kind and name)")
        self.node_class = {k: node_class[k] for k in ("group", "kind", "name")}
        self.nodepool = nodepool or pool.name
        self.capacity_type = capacity_type
        self.custom: Any = client.CustomObjectsApi(api_client)

    def body(self, name: str, t: InstanceType) -> dict[str, Any]:
        labels = {**self.labels(t), KARPENTER_POOL_LABEL: self.nodepool}
        reqs = [{"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": [t.name]},
                {"key": KARPENTER_POOL_LABEL, "operator": "In", "values": [self.nodepool]},
                {"key": CAPACITY_TYPE_LABEL, "operator": "In", "values": [self.capacity_type]}]
        return {"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
                "metadata": {"name": name, "labels": labels, "annotations": {PRICE_ANNOTATION: str(t.price_per_hour)}},
                "spec": {"nodeClassRef": self.node_class, "requirements": reqs}}

    def create(self, instance_type: str, count: int) -> builtins.list[str]:
        """Returns the NodeClaim names; the node names appear in ``status.nodeName`` once launched."""
        t = self._check(instance_type, count)
        names = [self._name(t) for _ in range(count)]
        for n in names:
            self.custom.create_cluster_custom_object(*KARPENTER, self.body(n, t))
        return names

    def claims(self) -> builtins.list[dict[str, Any]]:
        resp = self.custom.list_cluster_custom_object(*KARPENTER, label_selector=self.selector)
        return [c for c in resp.get("items", []) if not c["metadata"].get("deletionTimestamp")]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.claims():
            t = c["metadata"].get("labels", {}).get(INSTANCE_TYPE_LABEL, "")
            out[t] = out.get(t, 0) + 1
        return out

    def list(self) -> builtins.list[Node]:
        launched = {c.get("status", {}).get("nodeName") for c in self.claims()} - {None, ""}
        if not launched:
            return []
        nodes = self.core.list_node(label_selector=f"{KARPENTER_POOL_LABEL}={self.nodepool}").items
        return [x for n in nodes if n.metadata.name in launched and (x := to_node(n)) is not None]

    def delete(self, name: str) -> None:
        """Delete the NodeClaim named ``name`` or launched as node ``name``; Karpenter drains the node."""
        for c in self.claims():
            if name in (c["metadata"]["name"], c.get("status", {}).get("nodeName")):
                self.custom.delete_cluster_custom_object(*KARPENTER, c["metadata"]["name"])
                return
        raise KeyError(f"no NodeClaim of pool {self.pool.name!r} for {name!r}")


def karpenter_nodepool(pool: NodePool, node_class: dict[str, str], name: str | None = None) -> dict[str, Any]:
    """The Karpenter NodePool the claims count against: the pool's instance types, limits from
    maxCount, and disruption left to jobsched (budget 0 nodes: Karpenter does not consolidate)."""
    types = pool.instance_types
    cpu = sum(q.cpu_milli(t.cpu) / 1000 * t.max_count for t in types)
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name or pool.name},
            "spec": {"template": {"metadata": {"labels": {POOL_LABEL: pool.name, PROVIDER_LABEL: "karpenter"}},
                                  "spec": {"nodeClassRef": dict(node_class),
                                           "requirements": [{"key": INSTANCE_TYPE_LABEL, "operator": "In",
                                                             "values": [t.name for t in types]}]}},
                     "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "Never",
                                    "budgets": [{"nodes": "0"}]},
                     "limits": {"cpu": f"{cpu:g}"}}}


def parse_node_class(text: str) -> dict[str, str]:
    """``group/kind/name`` (e.g. ``karpenter.k8s.aws/EC2NodeClass/default``) as a nodeClassRef."""
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"node_class: expected group/kind/name (e.g. karpenter.k8s.aws/EC2NodeClass/default), "
                         f"got {text!r}")
    return dict(zip(("group", "kind", "name"), parts, strict=True))


def make_provider(kind: str, api_client: Any, pool: NodePool | str | Path,
                  node_class: str | dict[str, str] | None = None, nodepool: str | None = None) -> _Provider:
    """The ``node_provider`` backend option: ``kwok`` or ``karpenter``, with the node pool YAML
    (``node_pool`` option: a path, see docs/rightsizing.md) and, for Karpenter, ``node_class``."""
    if not isinstance(pool, NodePool):
        path = Path(pool)
        try:
            text = path.read_text()
        except OSError as e:
            raise ValueError(f"node_pool: cannot read {path}: {e.strerror}") from None
        pool = load_pool(text, str(path))
    if kind == "kwok":
        return KwokProvider(api_client, pool)
    if kind == "karpenter":
        if not node_class:
            raise ValueError("node_class: required with node_provider karpenter (group/kind/name)")
        ref = parse_node_class(node_class) if isinstance(node_class, str) else node_class
        return KarpenterProvider(api_client, pool, ref, nodepool)
    raise ValueError(f"node_provider: unknown provider {kind!r} (known: kwok, karpenter)")


class Autoscaler:
    """What the controller does with a provider (docs/rightsizing.md "How the controller uses
    this"), in two calls: :meth:`provision` for the gangs that wait for capacity, and
    :meth:`scale_down` every few seconds. ``shapes()`` is the controller's ``provisionable``."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.pool: NodePool = provider.pool
        self.idle_since: dict[str, float] = {}

    def shapes(self) -> tuple[NodeShape, ...]:
        have = self.provider.counts()
        return tuple(t.shape(have.get(t.name, 0)) for t in self.pool.instance_types)

    def provision(self, waiting: Sequence[PodGroup], current: NodeTable | None = None) -> ProvisionPlan | None:
        """Create the cheapest nodes on which ``waiting`` (priority order) fits. Nothing while
        nodes created earlier are not Ready yet (they were planned for these gangs)."""
        have = self.provider.counts()
        if not waiting or sum(have.values()) > len(self.provider.list()):
            return None
        p = plan(waiting, self.pool.instance_types, have, current=current)
        for t, n in p.nodes:
            self.provider.create(t, n)
        return p

    def scale_down(self, running: Sequence[RunningGang], now: float) -> builtins.list[str]:
        """Delete the provider's nodes that have been empty for the pool's ``emptyTtlSeconds``."""
        nodes = self.provider.list()
        busy = {a.node for g in running for a in g.assignments}
        for n in nodes:
            if n.name in busy:
                self.idle_since.pop(n.name, None)
            else:
                self.idle_since.setdefault(n.name, now)
        table = NodeTable.from_nodes(nodes)
        mine = [g for g in running if any(a.node in table.index for a in g.assignments)]
        idle = {k: v for k, v in self.idle_since.items() if k in table.index}
        out = consolidate(table, mine, idle, now, self.pool.empty_ttl_seconds, repack=False)
        for name in out.delete:
            self.provider.delete(name)
            self.idle_since.pop(name, None)
        return list(out.delete)
