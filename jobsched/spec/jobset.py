"""A JobSet (``jobset.x-k8s.io``) → one gang TrainingJob. Pure.

Each replicated job becomes a role of ``replicas × parallelism`` replicas with its pod's command,
env and image; the gang is all of them, in order. ``successPolicy`` (operator All) names the roles
whose success is the job's (``spec.successRoles``); ``failurePolicy.maxRestarts`` → maxRetries (the
whole gang restarts, as JobSet recreates every job); the ``kueue.x-k8s.io/queue-name`` label → queue.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from jobsched.spec.batchjob import _count
from jobsched.spec.errors import SpecError, format_validation_error
from jobsched.spec.job import TrainingJob
from jobsched.spec.kubeflow import (
    _container,
    _mapping,
    _max_resources,
    _optional_list,
    _optional_mapping,
    _pod_fields,
    queue_label,
)

_FIELDS = {"replicatedJobs", "successPolicy", "failurePolicy", "suspend", "network"}


def convert(manifest: dict[str, Any]) -> tuple[TrainingJob, list[str]]:
    warnings: list[str] = []
    spec = _mapping(manifest.get("spec"), "spec")
    meta = _mapping(manifest.get("metadata"), "metadata")
    labels = _optional_mapping(meta.get("labels"), "metadata.labels")
    rjs = _optional_list(spec.get("replicatedJobs"), "spec.replicatedJobs")
    if not rjs:
        raise SpecError("at least one replicated job is required", "spec.replicatedJobs")
    roles: list[dict[str, Any]] = []
    layout: list[tuple[str, int, dict[str, Any]]] = []  # for the pod fields: one template serves all
    resources, first = [], None
    for i, rj in enumerate(rjs):
        path = f"spec.replicatedJobs[{i}]"
        rj = _mapping(rj, path)
        job = _mapping(_mapping(rj.get("template"), f"{path}.template").get("spec"), f"{path}.template.spec")
        parallelism = _count(job.get("parallelism", 1), f"{path}.template.spec.parallelism")
        completions = job.get("completions", parallelism)
        if completions is not None and _count(completions, f"{path}.template.spec.completions") > parallelism:
            raise SpecError(f"{completions} completions with parallelism {parallelism}: jobsched runs one gang "
                            "whose replicas all start together and each run once", f"{path}.template.spec.completions")
        for key in job:
            if key not in ("parallelism", "completions", "completionMode", "template", "backoffLimit"):
                warnings.append(f"{path}.template.spec.{key}: not acted on by jobsched (ignored)")
        c = _container({"template": job.get("template")}, f"{path}.template.spec", "", warnings)
        first = first or c
        layout.append((str(rj.get("name") or f"job{i}"), 1, c))
        resources.append(c["resources"])
        env = dict(c["env"])
        if job.get("completionMode") == "Indexed":
            env["JOB_COMPLETION_INDEX"] = "$(JOBSCHED_ROLE_INDEX)"
        roles.append({"name": str(rj.get("name") or f"job{i}"),
                      "replicas": _count(rj.get("replicas", 1), f"{path}.replicas") * parallelism,
                      "command": c["command"], "args": c["args"], "env": env,
                      **({"image": c["image"]} if c["image"] else {})})
    total = sum(r["replicas"] for r in roles)
    if total < 1 or first is None:
        raise SpecError("no replicas", "spec.replicatedJobs")
    queue = queue_label(labels)
    if spec.get("suspend") is True and not queue:
        raise SpecError("true without a kueue.x-k8s.io/queue-name label: jobsched has no suspended jobs; remove "
                        "suspend, or add the label to queue it", "spec.suspend")
    for key in spec:
        if key not in _FIELDS:
            warnings.append(f"spec.{key}: not acted on by jobsched (ignored)")
    sp = _optional_mapping(spec.get("successPolicy"), "spec.successPolicy")
    success = [str(t) for t in _optional_list(sp.get("targetReplicatedJobs"), "spec.successPolicy.targetReplicatedJobs")]
    if sp.get("operator", "All") != "All":
        warnings.append(f"spec.successPolicy.operator: {sp['operator']!r} is run as All: every replica of the "
                        "target jobs must exit 0")
    fp = _optional_mapping(spec.get("failurePolicy"), "spec.failurePolicy")
    for key in fp:
        if key != "maxRestarts":
            warnings.append(f"spec.failurePolicy.{key}: not acted on by jobsched (ignored)")
    out: dict[str, Any] = {
        "apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace", "default"),
                     "labels": {**labels, "jobsched.io/source-kind": "JobSet"},
                     "annotations": {str(k): str(v) for k, v in
                                     _optional_mapping(meta.get("annotations"), "metadata.annotations").items()}},
        "spec": {"replicas": total, "roles": roles,
                 "maxRetries": min(_count(fp.get("maxRestarts", 0), "spec.failurePolicy.maxRestarts"), 100),
                 **({"successRoles": success} if success else {}), **({"queue": queue} if queue else {}),
                 "template": {"command": first["command"], "resources": _max_resources(resources, warnings, "JobSet"),
                              "nodeSelector": first["nodeSelector"], **_pod_fields(layout, "", warnings),
                              **({"workingDir": first["workingDir"]} if first["workingDir"] else {})}},
    }
    try:
        return TrainingJob.model_validate(out), warnings
    except ValidationError as e:
        raise SpecError(format_validation_error(e)) from None
