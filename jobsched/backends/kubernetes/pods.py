"""Pods for gang replicas, and replica events read back from pod status."""

from __future__ import annotations

import re
from typing import Any

from jobsched.backends.base import GangLaunch, ReplicaEvent, ReplicaLaunch
from jobsched.spec import roles

SCHEDULER_NAME = "jobsched"
L_JOB, L_UID, L_ATTEMPT, L_REPLICA = ("jobsched.io/job", "jobsched.io/job-uid", "jobsched.io/attempt",
                                      "jobsched.io/replica")
CKPT_MOUNT = "/checkpoints"


def dns_name(*parts: str, limit: int = 63) -> str:
    name = re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower()).strip("-")
    return name[:limit].rstrip("-")


def service_name(job_name: str) -> str:
    return dns_name(job_name, "js", limit=50)


def pod_name(job_name: str, attempt: int, rank: int) -> str:
    suffix = f"a{attempt}-{rank}"
    return dns_name(job_name[: 62 - len(suffix)], suffix)


def build_pod(gang: GangLaunch, rep: ReplicaLaunch, namespace: str, owner: dict[str, Any] | None,
              claim: str | None) -> dict[str, Any]:
    job_name = gang.job_key.split("/", 1)[1]
    svc = service_name(job_name)
    env = dict(rep.env)
    env["MASTER_ADDR"] = f"{pod_name(job_name, gang.attempt, 0)}.{svc}.{namespace}.svc"
    for var in roles.PORTS:  # a TFJob's / MXJob's cluster spec: the gang's pods' addresses
        if var in rep.env and "JOBSCHED_ROLE" in rep.env:
            env[var] = roles.readdress(var, rep.env[var], lambda r, v=var: (
                f"{pod_name(job_name, gang.attempt, r)}.{svc}.{namespace}.svc", roles.PORTS[v]))
    if "DMLC_PS_ROOT_URI" in rep.env and "DMLC_ROLE" in rep.env:  # an MXJob's: rank 0's pod
        env["DMLC_PS_ROOT_URI"] = env["MASTER_ADDR"]
    if claim:
        env["JOBSCHED_CHECKPOINT_DIR"] = CKPT_MOUNT
    for k in ("PATH", "HOME", "VIRTUAL_ENV", "PYENV_VERSION", "TMPDIR", "USER", "SHELL"):
        env.pop(k, None)  # the image brings its own
    if rep.requests.gpus:  # the device plugin gives the container its GPUs (numbered from 0);
        for k in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):  # without GPUs "void" stays,
            env.pop(k, None)  # against CUDA images' NVIDIA_VISIBLE_DEVICES=all
    req = rep.requests
    requests: dict[str, Any] = {"cpu": f"{req.cpu_milli}m", "memory": str(req.memory)}
    limits: dict[str, Any] = {}
    if rep.memory_limit:
        limits["memory"] = str(rep.memory_limit)
    if req.gpus:
        requests["nvidia.com/gpu"] = str(req.gpus)
        limits["nvidia.com/gpu"] = str(req.gpus)
    container: dict[str, Any] = {
        "name": "replica", "image": rep.image or "python:3.11-slim",
        **({"args": rep.argv} if rep.args_only else {"command": rep.argv[:1], "args": rep.argv[1:]}),
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": {"requests": requests, "limits": limits},
    }
    if rep.working_dir:
        container["workingDir"] = rep.working_dir
    spec: dict[str, Any] = {
        "schedulerName": SCHEDULER_NAME, "restartPolicy": "Never", "containers": [container],
        "hostname": pod_name(job_name, gang.attempt, rep.rank), "subdomain": svc,
        "terminationGracePeriodSeconds": 30,
    }
    extra_pod, extra_container = gang.pod_template.get("pod", {}), gang.pod_template.get("container", {})
    spec.update({k: v for k, v in extra_pod.items() if k != "volumes"})  # tolerations, affinity...
    container.update({k: v for k, v in extra_container.items() if k != "volumeMounts"})
    volumes, mounts = list(extra_pod.get("volumes", [])), list(extra_container.get("volumeMounts", []))
    if claim:
        volumes.append({"name": "checkpoints", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "checkpoints", "mountPath": CKPT_MOUNT})
    if volumes:
        spec["volumes"] = volumes
    if mounts:
        container["volumeMounts"] = mounts
    meta: dict[str, Any] = {
        "name": pod_name(job_name, gang.attempt, rep.rank), "namespace": namespace,
        "labels": {L_JOB: dns_name(job_name), L_UID: gang.job_uid, L_ATTEMPT: str(gang.attempt),
                   L_REPLICA: str(rep.rank)},
        "annotations": {"jobsched.io/node": rep.node},
    }
    if owner:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def replica_of(pod: Any) -> tuple[str, int, int] | None:
    """(job uid, attempt, rank) from a jobsched pod's labels."""
    labels = pod.metadata.labels or {}
    if L_UID not in labels:
        return None
    return labels[L_UID], int(labels[L_ATTEMPT]), int(labels[L_REPLICA])


def exit_event(pod: Any, job_key: str, attempt: int, rank: int, now: float,
               memory_limit: int | None) -> ReplicaEvent | None:
    """The 'exited' event for a pod that reached a terminal phase, else None."""
    st = pod.status
    phase = st.phase if st else None
    if phase == "Succeeded":
        return ReplicaEvent(job_key, attempt, rank, "exited", now, exit_code=0, reason="Completed")
    if phase != "Failed":
        return None
    if st.reason == "Evicted":
        return ReplicaEvent(job_key, attempt, rank, "exited", now, exit_code=None, reason="Evicted",
                            message=st.message)
    term = None
    for cs in st.container_statuses or []:
        if cs.state and cs.state.terminated:
            term = cs.state.terminated
    if term is not None and term.reason == "OOMKilled":
        return ReplicaEvent(job_key, attempt, rank, "exited", now, exit_code=term.exit_code or 137,
                            reason="OOMKilled", peak_memory_bytes=memory_limit,
                            message="container memory limit exceeded (OOMKilled)")
    code = term.exit_code if term is not None else None
    msg = (term.message if term is not None and term.message else None) or st.message or (
        f"exit code {code}" if code is not None else "pod failed")
    return ReplicaEvent(job_key, attempt, rank, "exited", now, exit_code=code, reason="Error", message=msg)
