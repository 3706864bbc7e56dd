"""Kueue ``ClusterQueue`` + ``LocalQueue`` (+ ``ResourceFlavor``) → jobsched Queues. Pure.

Jobs name a LocalQueue (label ``kueue.x-k8s.io/queue-name``), so each LocalQueue becomes a jobsched
queue of that name, with its ClusterQueue's quota: the ``nominalQuota`` of each resource, summed
over the flavors (jobsched has no flavors). A ClusterQueue no LocalQueue points at becomes a queue
of its own name. ``queueingStrategy`` maps onto ``strategy``; cohorts (borrowing), preemption
settings, flavors' node labels and the rest are named in warnings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from jobsched.spec import quantity as q
from jobsched.spec.errors import SpecError, format_validation_error
from jobsched.spec.kubeflow import _mapping, _optional_list, _optional_mapping
from jobsched.spec.queue import Queue

QUOTA_RESOURCES = ("cpu", "memory", "nvidia.com/gpu")
_CQ_FIELDS = {"resourceGroups", "queueingStrategy"}


def convert_queues(docs: list[dict[str, Any]]) -> tuple[list[Queue], list[str]]:
    """The Kueue objects of one file (ClusterQueues, LocalQueues, ResourceFlavors) as Queues."""
    warnings: list[str] = []
    cluster: dict[str, dict[str, Any]] = {}
    local: list[tuple[str, str, str]] = []  # (where, name, clusterQueue)
    for i, doc in enumerate(docs):
        kind, where = doc.get("kind"), f"document {i + 1} ({doc.get('kind')})"
        meta = _mapping(doc.get("metadata"), f"{where}: metadata")
        spec = _optional_mapping(doc.get("spec"), f"{where}: spec")
        if kind == "ClusterQueue":
            cluster[str(meta.get("name"))] = _cluster_queue(spec, f"ClusterQueue {meta.get('name')}", warnings)
        elif kind == "LocalQueue":
            cq = spec.get("clusterQueue")
            if not cq:
                raise SpecError("required (the ClusterQueue it submits to)", f"{where}: spec.clusterQueue")
            local.append((where, str(meta.get("name")), str(cq)))
            if meta.get("namespace") not in (None, "default"):
                warnings.append(f"LocalQueue {meta.get('name')}: metadata.namespace: jobsched queues are "
                                "cluster-wide; any namespace's jobs may use it")
        elif kind == "ResourceFlavor":
            for key in spec:
                warnings.append(f"ResourceFlavor {meta.get('name')}: spec.{key}: not acted on by jobsched "
                                "(ignored; flavors are merged)")
    queues: list[Queue] = []
    used: dict[str, int] = {}
    for where, name, cq in local:
        if cq not in cluster:
            raise SpecError(f"ClusterQueue {cq!r} is not in this file (known: {', '.join(cluster) or 'none'})",
                            f"{where}: spec.clusterQueue")
        used[cq] = used.get(cq, 0) + 1
        queues.append(_queue(name, cluster[cq]))
    for cq, n in used.items():
        if n > 1:
            warnings.append(f"ClusterQueue {cq}: {n} LocalQueues point at it; each gets the whole quota "
                            "(jobsched queues do not share one)")
    queues += [_queue(cq, spec) for cq, spec in cluster.items() if cq not in used]
    return queues, warnings


def _cluster_queue(spec: dict[str, Any], where: str, warnings: list[str]) -> dict[str, Any]:
    quota: dict[str, Decimal] = {}
    flavors: set[str] = set()
    for g, group in enumerate(_optional_list(spec.get("resourceGroups"), "spec.resourceGroups")):
        for f, flavor in enumerate(_optional_list(_mapping(group, f"{where}: spec.resourceGroups[{g}]").get("flavors"),
                                                  f"{where}: spec.resourceGroups[{g}].flavors")):
            flavor = _mapping(flavor, f"{where}: spec.resourceGroups[{g}].flavors[{f}]")
            flavors.add(str(flavor.get("name")))
            for r, res in enumerate(_optional_list(flavor.get("resources"), "resources")):
                path = f"{where}: spec.resourceGroups[{g}].flavors[{f}].resources[{r}]"
                res = _mapping(res, path)
                name = str(res.get("name"))
                for key in res:
                    if key not in ("name", "nominalQuota"):
                        warnings.append(f"{path}.{key}: not acted on by jobsched (ignored; no borrowing "
                                        "or lending)")
                if name not in QUOTA_RESOURCES:
                    warnings.append(f"{path}: jobsched has no quota for {name!r} (ignored)")
                    continue
                try:
                    quota[name] = quota.get(name, Decimal(0)) + q.parse_quantity(res.get("nominalQuota", 0))
                except ValueError as e:
                    raise SpecError(str(e), f"{path}.nominalQuota") from None
    if len(flavors) > 1:
        warnings.append(f"{where}: flavors {', '.join(sorted(flavors))} are merged; each resource's quota is "
                        "the sum of its nominalQuota")
    for key in spec:
        if key == "namespaceSelector" and not spec[key]:
            continue
        if key not in _CQ_FIELDS:
            hint = {"cohort": " (no borrowing between queues)",
                    "preemption": " (jobsched's own preemption by priority applies)"}.get(key, "")
            warnings.append(f"{where}: spec.{key}: not acted on by jobsched (ignored){hint}")
    strategy = spec.get("queueingStrategy", "BestEffortFIFO")
    return {"quota": {k: _fmt(k, v) for k, v in quota.items()}, "strategy": strategy}


def _fmt(resource: str, value: Decimal) -> str | int | float:
    if resource == "memory":
        return str(int(value))
    if resource == "cpu":
        return f"{round(value * 1000)}m"
    return int(value)


def _queue(name: str, spec: dict[str, Any]) -> Queue:
    try:
        return Queue.model_validate({"apiVersion": "jobsched.io/v1alpha1", "kind": "Queue",
                                     "metadata": {"name": name}, "spec": spec})
    except ValidationError as e:
        raise SpecError(f"queue {name}: {format_validation_error(e)}") from None
