"""A Kubernetes ``batch/v1`` Job or a ``v1`` Pod (as Kueue users write them) → a gang TrainingJob. Pure.

A Job's ``parallelism`` pods become the gang's replicas; its ``completions`` must not exceed
``parallelism`` (jobsched runs every replica once, together, not in waves). The
``kueue.x-k8s.io/queue-name`` label names the queue. ``suspend: true`` is how Kueue holds a Job
until it is admitted: with the queue label the job waits in that queue for jobsched's admission;
without one it would wait for someone to unsuspend it, which jobsched cannot express, so it is
refused. Every field jobsched does not act on is named in a warning.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from jobsched.spec.errors import SpecError, format_validation_error
from jobsched.spec.job import TrainingJob
from jobsched.spec.kubeflow import _container, _mapping, _optional_mapping, queue_label

K8S_DEFAULT_BACKOFF_LIMIT = 6
# managedBy: jobsched.io/scheduler is what a cluster's Job opts in with (kubeflow_watch.py)
_JOB_FIELDS = {"parallelism", "completions", "completionMode", "suspend", "backoffLimit", "template", "managedBy"}


def convert_job(manifest: dict[str, Any]) -> tuple[TrainingJob, list[str]]:
    """A ``batch/v1`` Job as a TrainingJob, and warnings for what jobsched does not honour."""
    warnings: list[str] = []
    spec = _mapping(manifest.get("spec"), "spec")
    meta = _mapping(manifest.get("metadata"), "metadata")
    labels = _optional_mapping(meta.get("labels"), "metadata.labels")
    parallelism = _count(spec.get("parallelism", 1), "spec.parallelism")
    completions = spec.get("completions")
    if completions is not None:
        completions = _count(completions, "spec.completions")
        if completions > parallelism:
            raise SpecError(f"{completions} completions with parallelism {parallelism}: jobsched runs one "
                            "gang whose replicas all start together and each run once, not pods in waves; "
                            f"set parallelism to {completions} (or completions to {parallelism})",
                            "spec.completions")
        if completions < parallelism:
            warnings.append(f"spec.parallelism: {parallelism} capped at completions ({completions}), as "
                            "Kubernetes runs no more pods than completions")
            parallelism = completions
    else:
        warnings.append("spec.completions: unset (a work queue: Kubernetes ends the Job when any pod "
                        "succeeds); jobsched's job succeeds when every replica exits 0")
    if parallelism < 1:
        raise SpecError("must be at least 1 (a Job with no pods has nothing to run)", "spec.parallelism")
    queue = queue_label(labels)
    if spec.get("suspend") is True and not queue:
        raise SpecError("true without a kueue.x-k8s.io/queue-name label: the Job would wait until someone "
                        "unsuspends it, and jobsched has no suspended jobs; remove suspend to queue it now, "
                        "or add the label to queue it there", "spec.suspend")
    for key in spec:
        if key not in _JOB_FIELDS:
            warnings.append(f"spec.{key}: not acted on by jobsched (ignored)")
    c = _container({"template": spec.get("template")}, "spec", "", warnings)
    env = dict(c["env"])
    if spec.get("completionMode") == "Indexed":
        env["JOB_COMPLETION_INDEX"] = "$(RANK)"  # as Kubernetes sets it for an Indexed Job's pods
    elif spec.get("completionMode") not in (None, "NonIndexed"):
        raise SpecError("must be Indexed or NonIndexed", "spec.completionMode")
    _restart_policy(spec.get("template"), "spec.template.spec.restartPolicy")
    retries = spec.get("backoffLimit", K8S_DEFAULT_BACKOFF_LIMIT)
    return _job(manifest, "Job", parallelism, c, env, queue, _count(retries, "spec.backoffLimit"), warnings)


def convert_pod(manifest: dict[str, Any]) -> tuple[TrainingJob, list[str]]:
    """A ``v1`` Pod as a one-replica TrainingJob (``restartPolicy: Never``: no retries)."""
    warnings: list[str] = []
    meta = _mapping(manifest.get("metadata"), "metadata")
    labels = _optional_mapping(meta.get("labels"), "metadata.labels")
    if "kueue.x-k8s.io/pod-group-name" in labels:
        warnings.append("metadata.labels.kueue.x-k8s.io/pod-group-name: this Pod, submitted alone, is its own "
                        "job; submit the group's Pods together in one file (`jobsched submit`) to gang them")
    pod = _mapping(manifest.get("spec"), "spec")
    found: list[str] = []
    try:
        c = _container({"template": {"spec": pod}}, "", "", found)
    except SpecError as e:
        raise SpecError(str(e).replace(".template.spec.", "spec.", 1)) from None
    warnings += [w.replace(".template.spec.", "spec.", 1) for w in found]
    policy = _restart_policy({"spec": pod}, "spec.restartPolicy")
    retries = 0 if policy == "Never" else 3
    if policy == "Always":
        warnings.append("spec.restartPolicy: Always: jobsched's job ends when the pod exits 0; a failure is "
                        "retried up to 3 times")
    return _job(manifest, "Pod", 1, c, dict(c["env"]), queue_label(labels), retries, warnings)


def _job(manifest: dict[str, Any], kind: str, replicas: int, c: dict[str, Any], env: dict[str, str],
         queue: str | None, retries: int, warnings: list[str]) -> tuple[TrainingJob, list[str]]:
    meta = manifest["metadata"]
    name_key = {"name": meta.get("name")} if meta.get("name") or not meta.get("generateName") else {
        "generateName": meta.get("generateName")}
    out: dict[str, Any] = {
        "apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
        "metadata": {**name_key, "namespace": meta.get("namespace", "default"),
                     "labels": {**(meta.get("labels") or {}), "jobsched.io/source-kind": kind},
                     "annotations": {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}},
        "spec": {"replicas": replicas, "maxRetries": min(retries, 100),
                 **({"queue": queue} if queue else {}),
                 "template": {"command": c["command"], "args": c["args"], "env": env,
                              "resources": c["resources"], "nodeSelector": c["nodeSelector"], **c["pod"],
                              **({"image": c["image"]} if c["image"] else {}),
                              **({"workingDir": c["workingDir"]} if c["workingDir"] else {})}},
    }
    try:
        return TrainingJob.model_validate(out), warnings
    except ValidationError as e:
        raise SpecError(format_validation_error(e)) from None


def _count(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10_000:
        raise SpecError("must be a whole number from 0 to 10000", path)
    return value


def _restart_policy(template: Any, path: str) -> str:
    pod = template.get("spec") if isinstance(template, dict) else None
    policy = pod.get("restartPolicy", "Always") if isinstance(pod, dict) else "Always"
    if policy not in ("Never", "OnFailure", "Always"):
        raise SpecError("must be Never, OnFailure or Always", path)
    return str(policy)
