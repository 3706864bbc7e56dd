"""Kubeflow Training Operator manifests (PyTorchJob, MXJob) → one gang TrainingJob. Pure.

The gang is every replica of every role, in rank order (PyTorchJob: Master then Workers; MXJob:
Scheduler, Servers, Workers). jobsched runs one command for all replicas, so the roles must share
it; per-role environment goes into the ``jobsched.io/rank-env`` annotation. Whatever cannot be
honoured is an error (differing commands) or a warning (everything else), never silently dropped.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from jobsched.spec import quantity as q
from jobsched.spec.errors import SpecError, format_validation_error
from jobsched.spec.job import TrainingJob
from jobsched.spec.podtemplate import PodTemplateFields

RANK_ENV_ANNOTATION = "jobsched.io/rank-env"
MAX_REPLICAS = 10_000  # as TrainingJob's spec.replicas
ROLES = {"PyTorchJob": ("pytorchReplicaSpecs", ("Master", "Worker"), "pytorch"),
         "MXJob": ("mxReplicaSpecs", ("Scheduler", "Server", "Worker"), "mxnet")}
# PriorityClass names have no numeric value outside Kubernetes; these common ones map to priorities.
PRIORITY_CLASSES = {"low": -100, "low-priority": -100, "default": 0, "normal": 0, "medium": 50,
                    "high": 100, "high-priority": 100, "critical": 1000}
_DMLC_WRAPPER = 'export DMLC_PS_ROOT_URI="$MASTER_ADDR" DMLC_PS_ROOT_PORT="$MASTER_PORT"; exec "$@"'
_IGNORED_POD = ("hostNetwork", "dnsPolicy", "schedulerName")
_IGNORED_CONTAINER = ("ports", "imagePullPolicy", "livenessProbe", "readinessProbe", "lifecycle", "envFrom")
# Pod-spec fields carried over to the TrainingJob's template (spec/podtemplate.py), and the
# container's, with the template field each becomes.
_POD_FIELDS = ("tolerations", "affinity", "volumes", "imagePullSecrets", "serviceAccountName",
               "securityContext", "priorityClassName", "runtimeClassName")
_CONTAINER_FIELDS = {"volumeMounts": "volumeMounts", "securityContext": "containerSecurityContext"}


def convert(manifest: dict[str, Any]) -> tuple[TrainingJob, list[str]]:
    """A PyTorchJob or MXJob as a TrainingJob, and warnings for what jobsched does not honour."""
    try:
        return _convert(manifest)
    except SpecError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, ArithmeticError) as e:
        # A value of an unexpected type somewhere not checked field by field: still a 422, never a 500.
        raise SpecError(f"malformed {manifest.get('kind')} manifest ({type(e).__name__}: {e})"[:300],
                        "spec") from None


def _convert(manifest: dict[str, Any]) -> tuple[TrainingJob, list[str]]:
    kind = manifest.get("kind")
    if kind not in ROLES:
        raise SpecError(f"expected PyTorchJob or MXJob, got {kind!r}", "kind")
    api = str(manifest.get("apiVersion", ""))
    if not api.startswith("kubeflow.org/"):
        raise SpecError(f"expected kubeflow.org/v1, got {api!r}", "apiVersion")
    warnings: list[str] = []
    field, roles, default_container = ROLES[kind]
    spec = _mapping(manifest.get("spec"), "spec")
    specs = _mapping(spec.get(field), f"spec.{field}")
    for role in specs:
        if role not in roles:
            raise SpecError(f"unknown replica type {role!r} (one of {', '.join(roles)})", f"spec.{field}")
    if kind == "PyTorchJob" and "Master" not in specs and "Worker" not in specs:
        raise SpecError("needs a Master or Worker replica spec", f"spec.{field}")
    layout: list[tuple[str, int, dict[str, Any]]] = []
    for role in roles:
        if role not in specs:
            continue
        path = f"spec.{field}.{role}"
        rs = _mapping(specs[role], path)
        replicas = rs.get("replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or not 0 <= replicas <= MAX_REPLICAS:
            raise SpecError(f"must be a whole number from 0 to {MAX_REPLICAS}", f"{path}.replicas")
        if kind == "PyTorchJob" and role == "Master" and replicas != 1:
            raise SpecError("a PyTorchJob has exactly one Master", f"{path}.replicas")
        c = _container(rs, path, default_container, warnings)
        layout.append((role, replicas, c))
    if kind == "PyTorchJob":
        layout = _elastic(spec, layout, warnings)
    total = sum(n for _, n, _ in layout)
    if total < 1:
        raise SpecError("no replicas", f"spec.{field}")
    first_role, _, first = next((r, n, c) for r, n, c in layout if n > 0)
    for role, n, c in layout:
        if n and (c["argv"], c.get("image")) != (first["argv"], first.get("image")):
            raise SpecError(f"{role} runs a different command or image than {first_role}; jobsched runs "
                            "one command for every replica of a gang", f"spec.{field}.{role}")
    resources = _max_resources([c["resources"] for _, n, c in layout if n], warnings, kind)
    env = dict(first["env"])
    for role, n, c in layout:
        if n and c["env"] != first["env"]:
            warnings.append(f"spec.{field}.{role}: env differs from {first_role}; per-role values "
                            "are set per rank")
    rank_env: dict[str, dict[str, str]] = {}
    rank = 0
    for role, n, c in layout:
        for _ in range(n):
            extra = {k: v for k, v in c["env"].items() if env.get(k) != v}
            if kind == "MXJob":
                extra["DMLC_ROLE"] = role.lower()
            if extra:
                rank_env[str(rank)] = extra
            rank += 1
    argv = first["argv"]
    if kind == "MXJob":
        counts = {r: n for r, n, _ in layout}
        if counts.get("Scheduler", 0) != 1:
            raise SpecError("an MXJob needs exactly one Scheduler", f"spec.{field}.Scheduler")
        env.update({"DMLC_NUM_SERVER": str(counts.get("Server", 0)),
                    "DMLC_NUM_WORKER": str(counts.get("Worker", 0)), "DMLC_USE_KUBERNETES": "0"})
        argv = ["sh", "-c", _DMLC_WRAPPER, "dmlc-env", *argv]
        if spec.get("jobMode", "MXTrain") != "MXTrain":
            warnings.append(f"spec.jobMode: {spec['jobMode']!r} is run like MXTrain")
    meta = _mapping(manifest.get("metadata"), "metadata")
    annotations = {k: str(v) for k, v in _optional_mapping(meta.get("annotations"), "metadata.annotations").items()}
    if rank_env:
        annotations[RANK_ENV_ANNOTATION] = json.dumps(rank_env, sort_keys=True)
    out: dict[str, Any] = {
        "apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace", "default"),
                     "labels": {**_optional_mapping(meta.get("labels"), "metadata.labels"),
                                "jobsched.io/source-kind": kind},
                     "annotations": annotations},
        "spec": {"replicas": total,
                 "template": {"command": argv, "env": env, "resources": resources,
                              **({"image": first["image"]} if first.get("image") else {}),
                              **({"workingDir": first["workingDir"]} if first.get("workingDir") else {}),
                              "nodeSelector": first["nodeSelector"], **_pod_fields(layout, field, warnings)}},
    }
    _run_policy(spec, out["spec"], layout, warnings)
    try:
        return TrainingJob.model_validate(out), warnings
    except ValidationError as e:
        raise SpecError(format_validation_error(e)) from None


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError("required (a mapping)", path)
    return value


def _optional_mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError("must be a mapping", path)
    return value


def _optional_list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError("must be a list", path)
    return value


def _container(rs: dict[str, Any], path: str, default: str, warnings: list[str]) -> dict[str, Any]:
    for key in rs:
        if key not in ("replicas", "template", "restartPolicy"):
            warnings.append(f"{path}.{key}: not acted on by jobsched (ignored)")
    pod = _mapping(_mapping(rs.get("template"), f"{path}.template").get("spec"), f"{path}.template.spec")
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        raise SpecError("at least one container is required", f"{path}.template.spec.containers")
    for i, other in enumerate(containers):
        _mapping(other, f"{path}.template.spec.containers[{i}]")
    idx = next((i for i, c in enumerate(containers) if c.get("name") == default), 0)
    c = containers[idx]
    cpath = f"{path}.template.spec.containers[{idx}]"
    for i, other in enumerate(containers):
        if i != idx:
            warnings.append(f"{path}.template.spec.containers[{i}]: sidecar {other.get('name')!r} is not run")
    for key in pod:
        if key in _IGNORED_POD or key == "initContainers":
            warnings.append(f"{path}.template.spec.{key}: not acted on by jobsched (ignored)")
    for key in c:
        if key in _IGNORED_CONTAINER:
            warnings.append(f"{cpath}.{key}: not acted on by jobsched (ignored)")
    argv = [str(a) for a in [*_optional_list(c.get("command"), f"{cpath}.command"),
                             *_optional_list(c.get("args"), f"{cpath}.args")]]
    if not c.get("command"):
        raise SpecError("required by jobsched (the image's entrypoint is not known)", f"{cpath}.command")
    env: dict[str, str] = {}
    for j, e in enumerate(_optional_list(c.get("env"), f"{cpath}.env")):
        if not isinstance(e, dict) or "name" not in e:
            raise SpecError("must be a mapping with a name", f"{cpath}.env[{j}]")
        if "valueFrom" in e:
            warnings.append(f"{cpath}.env[{j}].valueFrom: not supported; {e.get('name')} is unset")
            continue
        env[str(e["name"])] = str(e.get("value", ""))
    resources = _optional_mapping(c.get("resources"), f"{cpath}.resources")
    for part in ("requests", "limits"):
        for key, value in _optional_mapping(resources.get(part), f"{cpath}.resources.{part}").items():
            try:
                q.parse_quantity(value)
            except ValueError as e:
                raise SpecError(str(e), f"{cpath}.resources.{part}.{key}") from None
    carried = {k: pod[k] for k in _POD_FIELDS if pod.get(k) is not None}
    carried.update({to: c[k] for k, to in _CONTAINER_FIELDS.items() if c.get(k) is not None})
    where = {k: f"{path}.template.spec.{k}" for k in _POD_FIELDS}
    where.update({to: f"{cpath}.{k}" for k, to in _CONTAINER_FIELDS.items()})
    _check_pod_fields(carried, where)
    return {"argv": argv, "env": env, "image": c.get("image"), "workingDir": c.get("workingDir"),
            "resources": resources, "nodeSelector": pod.get("nodeSelector") or {}, "pod": carried,
            "pod_where": where}


def _check_pod_fields(carried: dict[str, Any], where: dict[str, str]) -> None:
    """The role's pod fields as the TrainingJob template will check them, errors naming the
    PyTorchJob/MXJob path (``spec.pytorchReplicaSpecs.Worker.template.spec.tolerations[0].effect``)."""
    try:
        PodTemplateFields.model_validate(carried)
    except ValidationError as e:
        err = e.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        loc = [str(p) for p in err["loc"]]
        if loc:  # a field's own check: its path, then the message
            msg = f"{loc[0]}: {'unknown field' if err['type'] == 'extra_forbidden' else msg}"
        m = re.match(r"^([A-Za-z]+)(.*)$", msg, re.S)
        raise SpecError(f"{where.get(m.group(1), m.group(1))}{m.group(2)}" if m else msg) from None


def _pod_fields(layout: list[tuple[str, int, dict[str, Any]]], field: str, warnings: list[str]) -> dict[str, Any]:
    """The first role's pod-spec fields (tolerations, affinity, volumes...); one pod template serves
    every replica, so a role whose fields differ gets a warning."""
    live = [(role, c["pod"], c["pod_where"]) for role, n, c in layout if n]
    first_role, first = live[0][:2]
    for _, pod, where in live[1:]:
        for key in sorted(set(pod) | set(first)):
            if pod.get(key) != first.get(key):
                warnings.append(f"{where[key]}: differs from {first_role}'s; {first_role}'s is used for every "
                                "replica (one pod template)")
    return dict(first)


def _max_resources(all_res: list[dict[str, Any]], warnings: list[str], kind: str) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {"requests": {}, "limits": {}}
    for res in all_res:
        for part in ("requests", "limits"):
            for key, value in (res.get(part) or {}).items():
                cur = out[part].get(key)
                if cur is None or q.parse_quantity(value) > q.parse_quantity(cur):
                    out[part][key] = value
    if any(r != all_res[0] for r in all_res):
        warnings.append(f"{kind}: replica types request different resources; every replica gets the "
                        "largest of each")
    return {k: v for k, v in out.items() if v}


def _elastic(spec: dict[str, Any], layout: list[tuple[str, int, dict[str, Any]]],
             warnings: list[str]) -> list[tuple[str, int, dict[str, Any]]]:
    ep = _optional_mapping(spec.get("elasticPolicy"), "spec.elasticPolicy")
    if ep:
        lo, hi = ep.get("minReplicas"), ep.get("maxReplicas")
        for key, value in (("minReplicas", lo), ("maxReplicas", hi)):
            if value is not None and (not isinstance(value, int) or not 0 <= value <= MAX_REPLICAS):
                raise SpecError(f"must be a whole number from 0 to {MAX_REPLICAS}", f"spec.elasticPolicy.{key}")
        total = sum(n for _, n, _ in layout)
        want = min(max(total, lo or total), hi or total)
        if want != total:
            layout = [(r, n + (want - total if r == "Worker" else 0), c) for r, n, c in layout]
        warnings.append(f"spec.elasticPolicy: jobsched runs a fixed gang of {want} replicas "
                        f"(min {lo}, max {hi}); it does not scale it")
        for key in ep:
            if key not in ("minReplicas", "maxReplicas"):
                warnings.append(f"spec.elasticPolicy.{key}: not acted on by jobsched (ignored)")
        for _, _, c in layout:
            c["env"].setdefault("PET_NNODES", f"{lo or want}:{hi or want}")
    if "nprocPerNode" in spec:
        warnings.append("spec.nprocPerNode: jobsched starts one process per replica (set as "
                        "PET_NPROC_PER_NODE for torchrun)")
        for _, _, c in layout:
            c["env"].setdefault("PET_NPROC_PER_NODE", str(spec["nprocPerNode"]))
    return layout


def _run_policy(spec: dict[str, Any], out: dict[str, Any], layout: list[tuple[str, int, dict[str, Any]]],
                warnings: list[str]) -> None:
    rp = _optional_mapping(spec.get("runPolicy"), "spec.runPolicy")
    sp = _optional_mapping(rp.get("schedulingPolicy"), "spec.runPolicy.schedulingPolicy")
    if sp.get("queue"):
        out["queue"] = sp["queue"]
    if "minAvailable" in sp and sp["minAvailable"] != out["replicas"]:
        warnings.append(f"spec.runPolicy.schedulingPolicy.minAvailable: {sp['minAvailable']} ignored; "
                        f"jobsched starts all {out['replicas']} replicas together or none")
    pc = sp.get("priorityClass")
    if pc:
        if re.fullmatch(r"-?\d+", str(pc)):
            out["priority"] = int(pc)
        elif str(pc) in PRIORITY_CLASSES:
            out["priority"] = PRIORITY_CLASSES[str(pc)]
        else:
            warnings.append(f"spec.runPolicy.schedulingPolicy.priorityClass: {pc!r} has no known "
                            f"value; priority 0 (known: {', '.join(PRIORITY_CLASSES)})")
    for key in sp:
        if key not in ("queue", "minAvailable", "priorityClass"):
            warnings.append(f"spec.runPolicy.schedulingPolicy.{key}: not acted on by jobsched (ignored)")
    policies = {c.get("restartPolicy") for c in (spec.get("pytorchReplicaSpecs") or spec.get("mxReplicaSpecs") or {}).values()
                if isinstance(c, dict)}
    if "backoffLimit" in rp:
        out["maxRetries"] = min(int(rp["backoffLimit"]), 100)
    elif policies == {"Never"}:
        out["maxRetries"] = 0
    if "ExitCode" in policies:
        warnings.append("restartPolicy ExitCode: jobsched retries every failed attempt (up to maxRetries)")
    for key in rp:
        if key not in ("schedulingPolicy", "backoffLimit"):
            warnings.append(f"spec.runPolicy.{key}: not acted on by jobsched (ignored)")
    del layout
