"""The pod-spec fields of a TrainingJob's ``spec.template`` that real GPU clusters need:
tolerations, affinity, volumes and volumeMounts, imagePullSecrets, serviceAccountName, the pod's and
the container's securityContext, priorityClassName, runtimeClassName, and ``shmSize`` (an emptyDir of
medium Memory on ``/dev/shm``). Kept as camelCase dicts, checked by the Kubernetes client's models
(spec/podspec.py). See docs/kubernetes.md, "Pod template"."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from jobsched.spec import limits as lim
from jobsched.spec import podspec
from jobsched.spec import quantity as q
from jobsched.spec.base import Model

SHM_VOLUME = "jobsched-shm"
SHM_PATH = "/dev/shm"
RESERVED_VOLUMES = ("checkpoints", SHM_VOLUME)  # jobsched's own: the checkpoint claim, shmSize
RESERVED_PATHS = ("/checkpoints",)
Obj = dict[str, Any]
# field name -> (Kubernetes model, alias in messages)
_KINDS = {
    "tolerations": ("list[V1Toleration]", "tolerations"),
    "affinity": ("V1Affinity", "affinity"),
    "volumes": ("list[V1Volume]", "volumes"),
    "volume_mounts": ("list[V1VolumeMount]", "volumeMounts"),
    "image_pull_secrets": ("list[V1LocalObjectReference]", "imagePullSecrets"),
    "security_context": ("V1PodSecurityContext", "securityContext"),
    "container_security_context": ("V1SecurityContext", "containerSecurityContext"),
}
# Fields only a pod acts on: the local and Ray backends warn once at submit when one is set.
# (tolerations and affinity are not among them: placement honours them on every backend, against
# the nodes' taints and labels.)
KUBERNETES_ONLY = ("volumes", "volumeMounts", "imagePullSecrets",
                   "serviceAccountName", "securityContext", "containerSecurityContext",
                   "priorityClassName", "runtimeClassName", "shmSize")


class PodTemplateFields(Model):
    tolerations: list[Obj] = Field(default_factory=list, max_length=lim.MAX_LIST)
    affinity: Obj | None = None
    volumes: list[Obj] = Field(default_factory=list, max_length=lim.MAX_LIST)
    volume_mounts: list[Obj] = Field(default_factory=list, max_length=lim.MAX_LIST)
    image_pull_secrets: list[Obj] = Field(default_factory=list, max_length=lim.MAX_LIST)
    service_account_name: lim.ShortStr | None = None
    security_context: Obj | None = None  # the pod's (runAsUser, fsGroup...)
    container_security_context: Obj | None = None  # the container's (capabilities, privileged...)
    priority_class_name: lim.ShortStr | None = None
    runtime_class_name: lim.ShortStr | None = None  # e.g. "nvidia"
    shm_size: q.Quantity | None = None  # an emptyDir (medium Memory, this sizeLimit) on /dev/shm

    @model_validator(mode="after")
    def _kubernetes_models(self) -> PodTemplateFields:
        for name, (kind, alias) in _KINDS.items():
            value = getattr(self, name)
            if value:
                lim.check_json(value)
                setattr(self, name, podspec.normalise(value, kind, alias))
        podspec.check_tolerations(self.tolerations)
        if self.affinity:
            podspec.check_affinity(self.affinity)
        for name in ("service_account_name", "priority_class_name", "runtime_class_name"):
            value = getattr(self, name)
            if value is not None and not _dns_subdomain(value):
                alias = "".join(w.capitalize() if i else w for i, w in enumerate(name.split("_")))
                raise ValueError(f"{alias}: {value[:80]!r} is not a valid name (lowercase DNS subdomain)")
        if self.shm_size is not None and q.parse_quantity(self.shm_size) <= 0:
            raise ValueError(f"shmSize: must be positive, got {self.shm_size!r}")
        self._check_mounts()
        return self

    def _check_mounts(self) -> None:
        names = [v.get("name") for v in self.volumes]
        for i, n in enumerate(names):
            if n in RESERVED_VOLUMES:
                raise ValueError(f"volumes[{i}].name: {n!r} is reserved by jobsched (checkpoints, shmSize)")
            if n in names[:i]:
                raise ValueError(f"volumes[{i}].name: {n!r} is given twice")
        paths: set[str] = set(RESERVED_PATHS) | ({SHM_PATH} if self.shm_size is not None else set())
        for i, m in enumerate(self.volume_mounts):
            if m.get("name") not in names:
                raise ValueError(f"volumeMounts[{i}].name: no volume named {m.get('name')!r} in template.volumes")
            path = str(m.get("mountPath", "")).rstrip("/") or "/"
            if path in paths:
                why = " (shmSize mounts it)" if path == SHM_PATH else ""
                raise ValueError(f"volumeMounts[{i}].mountPath: {path!r} is mounted twice{why}")
            paths.add(path)

    def kubernetes_only(self) -> list[str]:
        """The fields given that only a Kubernetes cluster acts on (camelCase)."""
        given = self.model_dump(by_alias=True, exclude_defaults=True)
        return [k for k in KUBERNETES_ONLY if given.get(k)]

    def pod_fields(self) -> tuple[Obj, Obj]:
        """(pod spec fields, container fields) for the pod, camelCase; shmSize as a volume and mount."""
        pod: Obj = {}
        container: Obj = {}
        for name, key in (("tolerations", "tolerations"), ("affinity", "affinity"),
                          ("image_pull_secrets", "imagePullSecrets"),
                          ("service_account_name", "serviceAccountName"),
                          ("security_context", "securityContext"),
                          ("priority_class_name", "priorityClassName"),
                          ("runtime_class_name", "runtimeClassName")):
            value = getattr(self, name)
            if value:
                pod[key] = value
        volumes, mounts = list(self.volumes), list(self.volume_mounts)
        if self.shm_size is not None:
            volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": str(self.shm_size)}})
            mounts.append({"name": SHM_VOLUME, "mountPath": SHM_PATH})
        if volumes:
            pod["volumes"] = volumes
        if mounts:
            container["volumeMounts"] = mounts
        if self.container_security_context:
            container["securityContext"] = self.container_security_context
        return pod, container


def _dns_subdomain(value: str) -> bool:
    import re

    return len(value) <= 253 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                                              value) is not None
