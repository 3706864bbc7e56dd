"""Kueue pod groups → one gang TrainingJob. Pure.

Kueue gangs plain Pods that share the label ``kueue.x-k8s.io/pod-group-name`` and carry the
annotation ``kueue.x-k8s.io/pod-group-total-count``: the group is admitted once all its Pods exist,
all at once. In a file of several documents jobsched does the same with one gang: the group's Pods
become one TrainingJob named after the group (in the first Pod's namespace and queue), one role per
Pod (its command, args, env and image; identical Pods make a single role of several replicas), ranks
in document order. jobsched's replicas share one request, so each gets the largest of every resource
any Pod asks for (warned when they differ). A group whose file holds fewer or more Pods than its
total count, or Pods that disagree on the count, the queue or the namespace, is refused, naming it.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from jobsched.spec.batchjob import _restart_policy
from jobsched.spec.errors import SpecError, format_validation_error
from jobsched.spec.job import TrainingJob
from jobsched.spec.kubeflow import (
    _container,
    _mapping,
    _max_resources,
    _optional_mapping,
    _pod_fields,
    queue_label,
)

GROUP_LABEL = "kueue.x-k8s.io/pod-group-name"
COUNT_ANNOTATION = "kueue.x-k8s.io/pod-group-total-count"


def group_name(doc: Any) -> str | None:
    """The pod group a ``v1`` Pod document belongs to, or None."""
    if not isinstance(doc, dict) or doc.get("kind") != "Pod" or doc.get("apiVersion") != "v1":
        return None
    meta = doc.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    name = labels.get(GROUP_LABEL) if isinstance(labels, dict) else None
    return str(name) if name else None


def merge_pod_groups(docs: list[Any]) -> tuple[list[Any], list[str]]:
    """``docs`` with each pod group's Pods replaced by one TrainingJob manifest (where its first Pod
    was), and the conversion's warnings. Documents outside groups are returned as they are."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, doc in enumerate(docs):
        name = group_name(doc)
        if name is not None:
            ns = str((doc.get("metadata") or {}).get("namespace") or "default")
            groups.setdefault((ns, name), []).append(i)
    if not groups:
        return list(docs), []
    warnings: list[str] = []
    merged: dict[int, dict[str, Any]] = {}
    for (_ns, name), idx in groups.items():
        merged[idx[0]] = _gang(name, [(i, docs[i]) for i in idx], warnings)
    grouped = {i for idx in groups.values() for i in idx}
    out = [merged.get(i, doc) for i, doc in enumerate(docs) if i in merged or i not in grouped]
    return out, warnings


def _gang(name: str, pods: list[tuple[int, dict[str, Any]]], warnings: list[str]) -> dict[str, Any]:
    where = f"pod group {name!r}"
    counts, queues = set(), set()
    layout: list[tuple[str, int, dict[str, Any]]] = []
    resources: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = []
    policies = set()
    for i, doc in pods:
        path = f"documents[{i}]"
        meta = _mapping(doc.get("metadata"), f"{path}.metadata")
        annotations = _optional_mapping(meta.get("annotations"), f"{path}.metadata.annotations")
        counts.add(annotations.get(COUNT_ANNOTATION))
        queues.add(queue_label(_optional_mapping(meta.get("labels"), f"{path}.metadata.labels")))
        spec = _mapping(doc.get("spec"), f"{path}.spec")
        found: list[str] = []
        c = _container({"template": {"spec": spec}}, path, "", found)
        warnings += [w.replace(".template.spec.", ".spec.", 1) for w in found]
        policies.add(_restart_policy({"spec": spec}, f"{path}.spec.restartPolicy"))
        pod_name = str(meta.get("name") or str(meta.get("generateName") or "").rstrip("-") or f"pod{i}")
        layout.append((pod_name, 1, c))
        resources.append(c["resources"])
        role = {"command": c["command"], "args": c["args"], "env": dict(c["env"]),
                **({"image": c["image"]} if c["image"] else {})}
        if roles and {k: v for k, v in roles[-1].items() if k not in ("name", "replicas")} == role:
            roles[-1]["replicas"] += 1  # identical to the Pod before it: one more replica of that role
        else:
            roles.append({"name": pod_name[:63], "replicas": 1, **role})
    total = _total(counts, where)
    if total != len(pods):
        raise SpecError(f"{where}: {len(pods)} Pod(s) in this file, but {COUNT_ANNOTATION} says {total}; "
                        "jobsched gangs a group whose Pods are submitted together in one file",
                        f"metadata.annotations.{COUNT_ANNOTATION}")
    if len(queues) > 1:
        raise SpecError(f"{where}: its Pods name different queues ({', '.join(sorted(map(str, queues)))})",
                        "metadata.labels.kueue.x-k8s.io/queue-name")
    policy = policies.pop() if len(policies) == 1 else "OnFailure"
    retries = 0 if policy == "Never" else 3
    first = layout[0][2]
    meta0 = pods[0][1]["metadata"]
    queue = queues.pop()
    out: dict[str, Any] = {
        "apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": meta0.get("namespace", "default"),
                     "labels": {**(meta0.get("labels") or {}), "jobsched.io/source-kind": "PodGroup"},
                     "annotations": {str(k): str(v) for k, v in (meta0.get("annotations") or {}).items()}},
        "spec": {"replicas": len(pods), "maxRetries": retries, **({"queue": queue} if queue else {}),
                 **({"roles": roles} if len(roles) > 1 else {}),
                 "template": {"command": first["command"], "args": first["args"], "env": dict(first["env"]),
                              "resources": _max_resources(resources, warnings, where),
                              "nodeSelector": first["nodeSelector"], **_pod_fields(layout, "", warnings),
                              **({"image": first["image"]} if first["image"] else {}),
                              **({"workingDir": first["workingDir"]} if first["workingDir"] else {})}},
    }
    try:
        TrainingJob.model_validate(out)
    except ValidationError as e:
        raise SpecError(f"{where}: {format_validation_error(e)}") from None
    return out


def _total(counts: set[Any], where: str) -> int:
    if len(counts) != 1:
        raise SpecError(f"{where}: its Pods disagree on the total count ({', '.join(sorted(map(str, counts)))})",
                        f"metadata.annotations.{COUNT_ANNOTATION}")
    raw = counts.pop()
    try:
        total = int(str(raw))
    except ValueError:
        total = 0
    if raw is None or total < 1 or total > 10_000:
        raise SpecError(f"{where}: must be a whole number from 1 to 10000 on every Pod of the group (got {raw!r})",
                        f"metadata.annotations.{COUNT_ANNOTATION}")
    return total
