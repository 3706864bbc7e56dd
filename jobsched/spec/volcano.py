"""Volcano ``Job`` (batch.volcano.sh) → a gang TrainingJob, and Volcano ``Queue`` → a Queue. Pure.

Each task is a role (its own command, env and image); the gang is every replica of every task, in
task order. ``minAvailable`` below the total is warned about: jobsched starts all replicas together
or none. ``policies`` map onto jobsched's retry of the whole gang: RestartJob on PodFailed (or
``*``) retries up to ``maxRetry``; AbortJob/TerminateJob on PodFailed fails the job on its first
failure; PodEvicted → RestartJob is what jobsched does to a preempted gang anyway. The ``env``
plugin's ``VK_TASK_INDEX``/``VC_TASK_INDEX`` and the ``svc`` plugin's ``VC_<TASK>_NUM`` are set on
every replica; whatever else is named in a warning.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from jobsched.spec.errors import SpecError, format_validation_error
from jobsched.spec.job import TrainingJob
from jobsched.spec.kubeflow import (
    PRIORITY_CLASSES,
    _container,
    _mapping,
    _max_resources,
    _optional_list,
    _optional_mapping,
    _pod_fields,
    queue_label,
)
from jobsched.spec.queue import Queue

VOLCANO_DEFAULT_MAX_RETRY = 3
_JOB_FIELDS = {"tasks", "minAvailable", "queue", "maxRetry", "policies", "plugins", "priorityClassName",
               "schedulerName"}
_FAIL_ACTIONS = ("AbortJob", "TerminateJob")


def convert_job(manifest: dict[str, Any]) -> tuple[TrainingJob, list[str]]:
    """A Volcano Job as a TrainingJob, and warnings for what jobsched does not honour."""
    warnings: list[str] = []
    spec = _mapping(manifest.get("spec"), "spec")
    meta = _mapping(manifest.get("metadata"), "metadata")
    labels = _optional_mapping(meta.get("labels"), "metadata.labels")
    tasks = _optional_list(spec.get("tasks"), "spec.tasks")
    if not tasks:
        raise SpecError("at least one task is required", "spec.tasks")
    roles: list[dict[str, Any]] = []
    layout: list[tuple[str, int, dict[str, Any]]] = []  # for the pod fields: one template serves all
    resources = []
    first: dict[str, Any] | None = None
    success: list[str] = []
    for i, task in enumerate(tasks):
        path = f"spec.tasks[{i}]"
        task = _mapping(task, path)
        name = str(task.get("name") or f"task{i}")
        replicas = task.get("replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or not 0 <= replicas <= 10_000:
            raise SpecError("must be a whole number from 0 to 10000", f"{path}.replicas")
        for key in task:
            if key not in ("name", "replicas", "template", "policies"):
                warnings.append(f"{path}.{key}: not acted on by jobsched (ignored)")
        c = _container({"template": task.get("template")}, path, "", warnings)
        if _completes(task.get("policies")):
            success.append(name)  # TaskCompleted → CompleteJob: this task's success is the job's
        _policies(task.get("policies"), f"{path}.policies", warnings)
        first = first or c
        layout.append((name, 1, c))
        resources.append(c["resources"])
        roles.append({"name": name, "replicas": replicas, "command": c["command"], "args": c["args"],
                      "env": c["env"], **({"image": c["image"]} if c["image"] else {})})
    if len({r["name"] for r in roles}) != len(roles):
        raise SpecError("task names must be unique", "spec.tasks")
    total = sum(r["replicas"] for r in roles)
    if total < 1:
        raise SpecError("no replicas", "spec.tasks")
    min_available = spec.get("minAvailable", total)
    if min_available != total:
        warnings.append(f"spec.minAvailable: {min_available} of {total}: jobsched starts all {total} "
                        "replicas together or none")
    for key in spec:
        if key not in _JOB_FIELDS:
            warnings.append(f"spec.{key}: not acted on by jobsched (ignored)")
    if spec.get("schedulerName") not in (None, "volcano", "jobsched"):
        warnings.append(f"spec.schedulerName: {spec['schedulerName']!r} ignored; jobsched schedules it")
    fail_fast = _policies(spec.get("policies"), "spec.policies", warnings)
    max_retry = spec.get("maxRetry", VOLCANO_DEFAULT_MAX_RETRY)
    if not isinstance(max_retry, int) or isinstance(max_retry, bool) or max_retry < 0:
        raise SpecError("must be a whole number, at least 0", "spec.maxRetry")
    env = _plugins(_optional_mapping(spec.get("plugins"), "spec.plugins"), roles, warnings)
    assert first is not None
    out: dict[str, Any] = {
        "apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace", "default"),
                     "labels": {**labels, "jobsched.io/source-kind": "VolcanoJob"},
                     "annotations": {str(k): str(v) for k, v in
                                     _optional_mapping(meta.get("annotations"), "metadata.annotations").items()}},
        "spec": {"replicas": total, "roles": roles, "maxRetries": 0 if fail_fast else min(max_retry, 100),
                 **({"successRoles": success} if success else {}),
                 "queue": spec.get("queue") or queue_label(labels) or "default",
                 "template": {"command": first["command"], "env": env,
                              "resources": _max_resources(resources, warnings, "Job"),
                              "nodeSelector": first["nodeSelector"], **_pod_fields(layout, "", warnings),
                              **({"workingDir": first["workingDir"]} if first["workingDir"] else {})}},
    }
    pc = spec.get("priorityClassName")
    if pc and str(pc) in PRIORITY_CLASSES:
        out["spec"]["priority"] = PRIORITY_CLASSES[str(pc)]
    elif pc:
        warnings.append(f"spec.priorityClassName: {pc!r} has no known value; priority 0 "
                        f"(known: {', '.join(PRIORITY_CLASSES)})")
    try:
        return TrainingJob.model_validate(out), warnings
    except ValidationError as e:
        raise SpecError(format_validation_error(e)) from None


def _policies(value: Any, path: str, warnings: list[str]) -> bool:
    """True when a pod failure aborts the job (no retries)."""
    fail_fast = False
    for i, p in enumerate(_optional_list(value, path)):
        p = _mapping(p, f"{path}[{i}]")
        events = [p["event"]] if "event" in p else [str(e) for e in _optional_list(p.get("events"), f"{path}[{i}].events")]
        action = p.get("action")
        for event in events or ["*"]:
            if event in ("PodFailed", "*") and action == "RestartJob":
                continue  # jobsched's retry: the whole gang, up to maxRetries
            if event in ("PodFailed", "*") and action in _FAIL_ACTIONS:
                fail_fast = True
            elif event == "PodEvicted" and action == "RestartJob":
                continue  # a preempted or evicted gang is requeued whole
            elif event == "TaskCompleted" and action == "CompleteJob" and ".tasks[" in path:
                continue  # spec.successRoles
            elif event == "PodFailed" and action in ("RestartTask", "RestartPod"):
                warnings.append(f"{path}[{i}]: {action} on {event}: jobsched restarts the whole gang")
            else:
                warnings.append(f"{path}[{i}]: {action} on {event} is not supported (ignored); jobsched's job "
                                "succeeds when every replica exits 0 and retries the whole gang on a failure")
        if "exitCode" in p or "timeout" in p:
            warnings.append(f"{path}[{i}]: exitCode/timeout not acted on by jobsched (ignored)")
    return fail_fast


def _completes(value: Any) -> bool:
    """A task policy TaskCompleted → CompleteJob (Volcano completes the job when the task completes)."""
    return any(isinstance(p, dict) and p.get("action") == "CompleteJob"
               and "TaskCompleted" in ([p.get("event")] if "event" in p else list(p.get("events") or []))
               for p in (value if isinstance(value, list) else []))


def _plugins(plugins: dict[str, Any], roles: list[dict[str, Any]], warnings: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in plugins:
        if name == "env":
            env.update({"VK_TASK_INDEX": "$(JOBSCHED_ROLE_INDEX)", "VC_TASK_INDEX": "$(JOBSCHED_ROLE_INDEX)"})
        elif name == "svc":
            for r in roles:
                env[f"VC_{re.sub(r'[^A-Za-z0-9]', '_', r['name']).upper()}_NUM"] = str(r["replicas"])
            warnings.append("spec.plugins.svc: /etc/volcano/<task>.host files and VC_<TASK>_HOSTS are not "
                            "written; replicas find rank 0 at MASTER_ADDR:MASTER_PORT (VC_<TASK>_NUM is set)")
        else:
            warnings.append(f"spec.plugins.{name}: not supported by jobsched (ignored)")
    return env


def convert_queue(manifest: dict[str, Any]) -> tuple[Queue, list[str]]:
    """A Volcano Queue: ``capability`` → quota, ``weight`` → weight."""
    warnings: list[str] = []
    meta = _mapping(manifest.get("metadata"), "metadata")
    spec = _optional_mapping(manifest.get("spec"), "spec")
    quota: dict[str, Any] = {}
    for key, value in _optional_mapping(spec.get("capability"), "spec.capability").items():
        if key in ("cpu", "memory", "nvidia.com/gpu"):
            quota[key] = value
        else:
            warnings.append(f"spec.capability.{key}: jobsched has no quota for it (ignored)")
    for key in spec:
        if key not in ("capability", "weight"):
            warnings.append(f"spec.{key}: not acted on by jobsched (ignored)")
    out = {"apiVersion": "jobsched.io/v1alpha1", "kind": "Queue", "metadata": {"name": meta.get("name")},
           "spec": {"quota": quota, **({"weight": spec["weight"]} if "weight" in spec else {})}}
    try:
        return Queue.model_validate(out), warnings
    except ValidationError as e:
        raise SpecError(format_validation_error(e)) from None
