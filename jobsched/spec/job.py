"""The TrainingJob manifest (``apiVersion: jobsched.io/v1alpha1``, ``kind: TrainingJob``)."""

from __future__ import annotations

import math
import os
import re
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, Field, field_validator, model_validator

from jobsched.spec import limits as lim
from jobsched.spec import quantity as q
from jobsched.spec.base import DNSLabel, Model, _dns_label
from jobsched.spec.duration import Duration, parse_duration
from jobsched.spec.podtemplate import PodTemplateFields
from jobsched.spec.queuelabel import apply_queue_label
from jobsched.spec.resources import Resources

API_VERSION = "jobsched.io/v1alpha1"
_FACTORY = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


GENERATED_SUFFIX = 5  # metadata.generateName: the server appends this many random characters


class ObjectMeta(Model):
    name: DNSLabel = ""  # empty only with generateName: the server then picks the name
    generate_name: str | None = None  # a prefix; the server appends 5 random characters (as Kubernetes)
    namespace: DNSLabel = "default"
    labels: dict[lim.LabelKey, lim.LabelValue] = Field(default_factory=dict, max_length=lim.MAX_LABELS)
    annotations: dict[lim.LabelKey, str] = Field(default_factory=dict)
    # Set by a Kubernetes API server; accepted so that `kubectl get -o yaml` output round-trips.
    uid: lim.ShortStr | None = None
    resource_version: lim.ShortStr | None = None
    generation: lim.Int64 | None = None
    creation_timestamp: lim.ShortStr | None = None

    @field_validator("annotations")
    @classmethod
    def _annotations_size(cls, v: dict[str, str]) -> dict[str, str]:
        return lim.check_annotations(v)

    @model_validator(mode="after")
    def _name_or_generate_name(self) -> ObjectMeta:
        if self.generate_name is not None:
            try:  # the prefix plus any suffix must make a valid name
                _dns_label(self.generate_name[:63 - GENERATED_SUFFIX] + "x" * GENERATED_SUFFIX)
            except ValueError as e:
                raise ValueError(f"generateName: {e}") from None
        elif not self.name:
            raise ValueError("name: required (or generateName, a prefix the server completes)")
        return self


def _env_name(value: str) -> str:
    if "=" in value:
        raise ValueError(f"{value[:40]!r} is not a valid environment variable name: contains '='")
    return value


class EnvVar(Model):
    """One environment variable: a non-empty name without '=' or NUL, a value without NUL (neither
    can be passed to ``execve``)."""

    name: Annotated[str, Field(min_length=1, max_length=lim.MAX_ENV_NAME),
                    AfterValidator(lim.no_nul), AfterValidator(_env_name)]
    value: Annotated[str, Field(max_length=lim.MAX_ENV_VALUE), AfterValidator(lim.no_nul)] = ""


class ResourceRequirements(Model):
    requests: dict[str, q.Quantity] = Field(default_factory=dict)
    limits: dict[str, q.Quantity] = Field(default_factory=dict)

    @field_validator("requests", "limits")
    @classmethod
    def _known(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if key not in q.KNOWN_RESOURCES and "/" not in key:
                raise ValueError(f"unknown resource {key!r} (known: {', '.join(q.KNOWN_RESOURCES)})")
        return v

    @model_validator(mode="after")
    def _memory_at_least_1mi(self) -> ResourceRequirements:
        for where, values in (("requests", self.requests), ("limits", self.limits)):
            q.check_bounds(values, where)
            if q.MEMORY in values and q.memory_bytes(values[q.MEMORY]) < q.MIN_MEMORY:
                raise ValueError(f"{where}.memory: must be at least 1Mi, got {values[q.MEMORY]!r} "
                                 "(omit it to use the queue's defaultMemory)")
        return self

    def request_vector(self) -> Resources:
        """Requests, defaulting each missing request to its limit (as Kubernetes does)."""
        merged = {**self.limits, **self.requests}
        return Resources.from_quantities(merged)

    def memory_limit(self) -> int | None:
        return q.memory_bytes(self.limits[q.MEMORY]) if q.MEMORY in self.limits else None


class MemoryPolicy(StrEnum):
    FIXED = "Fixed"  # run at the declared size; resize only after an OOM
    AUTO = "Auto"  # size from the estimator and history before launch, and after an OOM


class RightSizing(Model):
    """Tunables of the right-sizing policy (defaults documented in docs/rightsizing.md)."""

    margin: float = Field(0.15, ge=0, le=10)  # headroom over estimate / observed peak
    growth: float = Field(1.5, gt=1, le=10)  # at least this factor over the previous size after OOM
    max_memory: q.Quantity | None = None  # never size above this (else: the largest node)
    min_memory: q.Quantity | None = None  # floor for history-based shrinking
    family: lim.ShortStr | None = None  # history key; default the job name
    factory: lim.ShortStr | None = None  # "module:function" returning (model, optimizer, batch, loss_fn)
    factory_kwargs: dict[str, Any] = Field(default_factory=dict)
    # After an OOM, Auto retries with a limit above the request (a measuring retry, up to the node's
    # free memory); Never keeps limit == request (docs/rightsizing.md, "OOM recovery").
    burst: Literal["Auto", "Never"] = "Auto"

    @field_validator("factory")
    @classmethod
    def _module_function(cls, v: str | None) -> str | None:
        if v is not None and not _FACTORY.match(v):
            raise ValueError(f"expected 'module:function' (e.g. 'train:factory'), got {v!r}")
        return v

    @field_validator("factory_kwargs")
    @classmethod
    def _plain_json(cls, v: dict[str, Any]) -> dict[str, Any]:
        lim.check_json(v)
        return v

    @field_validator("max_memory", "min_memory")
    @classmethod
    def _at_most_1pi(cls, v: str | int | float | None) -> str | int | float | None:
        if v is not None and q.parse_quantity(v) > lim.MAX_MEMORY:
            raise ValueError(f"must be at most 1Pi, got {v!r}")
        return v


class Backoff(Model):
    """Wait before retrying a failed attempt (like Argo's ``retryStrategy.backoff``): retry n waits
    ``duration * factor**(n-1)``, at most ``maxDuration`` (a cap on each wait, not on the total)."""

    duration: Duration = "1s"
    factor: float = Field(2.0, ge=1, le=100)
    max_duration: Duration = "5m"

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        base, cap = parse_duration(self.duration), parse_duration(self.max_duration)
        exponent = max(retry - 1, 0)
        if base == 0 or cap == 0:
            return 0.0
        if exponent * math.log(self.factor) > math.log(cap / base):  # overflow-safe cap
            return cap
        return min(base * self.factor ** exponent, cap)


class JobTemplate(PodTemplateFields):  # + tolerations, affinity, volumes... (spec/podtemplate.py)
    # Empty: the image's entrypoint runs (with ``args``), on Kubernetes only; the local and Ray
    # backends refuse such a job at submit.
    command: list[lim.ArgStr] = Field(default_factory=list, max_length=lim.MAX_ARGS)
    args: list[lim.ArgStr] = Field(default_factory=list, max_length=lim.MAX_ARGS)
    env: list[EnvVar] = Field(default_factory=list, max_length=lim.MAX_ENV_VARS)
    working_dir: lim.PathStr | None = None  # absolute (the SDK resolves a manifest file's relative one)
    image: lim.ShortStr | None = None
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    node_selector: dict[lim.LabelKey, lim.LabelValue] = Field(default_factory=dict, max_length=lim.MAX_LABELS)

    @field_validator("working_dir")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v and not os.path.isabs(v):
            raise ValueError(f"must be an absolute path, got {v[:80]!r} (a manifest file's relative "
                             "workingDir is resolved against the file's directory by the CLI and SDK)")
        return v

    @model_validator(mode="after")
    def _totals(self) -> JobTemplate:
        argv = sum(len(a) for a in (*self.command, *self.args))
        if argv > lim.MAX_ARGV_TOTAL:
            raise ValueError(f"args: command and args total {argv} characters, at most "
                             f"{lim.MAX_ARGV_TOTAL} (1 MiB) allowed")
        env = sum(len(e.name) + len(e.value) + 2 for e in self.env)
        if env > lim.MAX_ENV_TOTAL:
            raise ValueError(f"env: the environment totals {env} characters, at most "
                             f"{lim.MAX_ENV_TOTAL} (1 MiB) allowed")
        return self

    @field_validator("env", mode="before")
    @classmethod
    def _env_mapping(cls, v: Any) -> Any:
        # Accept the Kubernetes list form and a plain mapping for convenience.
        if isinstance(v, dict):
            return [{"name": k, "value": str(val)} for k, val in v.items()]
        return v

    def argv(self) -> list[str]:
        return [*self.command, *self.args]

    def env_dict(self) -> dict[str, str]:
        return {e.name: e.value for e in self.env}


class Role(Model):
    """Replicas of one role (a Kubeflow replica type, a Volcano task): ranks are given to roles in
    list order. A field set here replaces the template's for these replicas (``env`` is merged
    over the template's). All roles share one gang and one per-replica resource request."""

    name: Annotated[str, Field(min_length=1, max_length=63)]
    replicas: int = Field(1, ge=0, le=10_000)
    command: list[lim.ArgStr] | None = Field(None, max_length=lim.MAX_ARGS)
    args: list[lim.ArgStr] | None = Field(None, max_length=lim.MAX_ARGS)
    env: list[EnvVar] = Field(default_factory=list, max_length=lim.MAX_ENV_VARS)
    image: lim.ShortStr | None = None

    @field_validator("env", mode="before")
    @classmethod
    def _env_mapping(cls, v: Any) -> Any:
        return JobTemplate._env_mapping(v)


class TrainingJobSpec(Model):
    queue: lim.ShortStr = "default"
    priority: lim.Priority = 0  # within ±10^9, like a Kubernetes PriorityClass value
    replicas: int = Field(1, ge=1, le=10_000)
    template: JobTemplate
    # Per-role command/args/env/image (docs/migrating.md); their replicas add up to ``replicas``.
    roles: list[Role] = Field(default_factory=list, max_length=64)
    # TF_CONFIG / MX_CONFIG: each replica gets TensorFlow's / MXNet's cluster spec, its role as the
    # task type (spec/roles.py).
    cluster_env: Literal["TF_CONFIG", "MX_CONFIG"] | None = None
    # Roles whose replicas' success is the job's: once each of them exited 0, the other roles'
    # replicas (parameter servers, schedulers that serve until stopped) are stopped and the job
    # succeeds. Empty: every replica must exit 0.
    success_roles: list[Annotated[str, Field(max_length=63)]] = Field(default_factory=list, max_length=64)
    max_retries: int = Field(3, ge=0, le=100)
    backoff: Backoff = Field(default_factory=lambda: Backoff())
    memory_policy: MemoryPolicy = MemoryPolicy.FIXED
    # Absolute, or relative to template.workingDir (resolved at validation, never the server's cwd).
    checkpoint_dir: lim.PathStr | None = None
    right_sizing: RightSizing = Field(default_factory=lambda: RightSizing())
    placement: Literal["Pack", "Spread", "StrictSpread"] = "Pack"
    # GPU models the job accepts (node label jobsched.io/gpu-model); empty: any.
    gpu_models: list[lim.ShortStr] = Field(default_factory=list, max_length=lim.MAX_LIST)
    # Auto: a 1-GPU replica whose GPU-memory request (declared or estimated) is below a GPU's memory
    # shares that GPU, sized from the request. Never: whole GPUs only. Unset: share only when
    # jobsched.io/gpu-milli is given (a fixed share). See docs/gpu.md.
    gpu_sharing: Literal["Auto", "Never"] | None = None
    # Delete the job's pods and Service this long after it finishes (like a Kubernetes Job's field);
    # unset: the server's default (--ttl-after-finished; none: kept until the job is deleted).
    ttl_seconds_after_finished: int | None = Field(None, ge=0, le=lim.MAX_TTL_SECONDS)

    @model_validator(mode="after")
    def _resources_valid(self) -> TrainingJobSpec:
        try:
            self.template.resources.request_vector()
        except ValueError as e:
            raise ValueError(f"template.resources: {e}") from None
        res = self.template.resources
        for key in (q.CPU, q.MEMORY):
            if key in res.requests and key in res.limits:
                lim, req = q.parse_quantity(res.limits[key]), q.parse_quantity(res.requests[key])
                if req > lim:
                    raise ValueError(f"template.resources.requests.{key} must not exceed the limit")
        if self.gpu_sharing == "Never" and q.GPU_MILLI in {**res.limits, **res.requests}:
            raise ValueError(f"gpuSharing: Never contradicts template.resources {q.GPU_MILLI} (a GPU share)")
        self.checkpoint_dir = _resolve_checkpoint_dir(self.checkpoint_dir, self.template.working_dir)
        if self.roles:
            total = sum(r.replicas for r in self.roles)
            if total != self.replicas:
                raise ValueError(f"roles: their replicas add up to {total}, spec.replicas is {self.replicas}")
            names = [r.name for r in self.roles]
            if len(set(names)) != len(names):
                raise ValueError("roles: role names must be unique")
        unknown = [r for r in self.success_roles if r not in {x.name for x in self.roles}]
        if unknown:
            raise ValueError(f"successRoles: {unknown[0]!r} is not a role (spec.roles)")
        return self

    def role_of(self, rank: int) -> Role | None:
        """The role replica ``rank`` belongs to (None without roles)."""
        first = 0
        for role in self.roles:
            if rank < first + role.replicas:
                return role
            first += role.replicas
        return None

    def success_ranks(self) -> set[int]:
        """The ranks whose success ends the job (``successRoles``); empty: all of them."""
        out: set[int] = set()
        first = 0
        for role in self.roles:
            if role.name in self.success_roles:
                out.update(range(first, first + role.replicas))
            first += role.replicas
        return out

    def replica(self, rank: int) -> ReplicaTemplate:
        """What replica ``rank`` runs: its role's command, args, env and image over the template's."""
        t, role = self.template, self.role_of(rank)
        env = t.env_dict()
        if role is None:
            return ReplicaTemplate(t.command, t.args, env, t.image, None)
        env.update({e.name: e.value for e in role.env})
        command = t.command if role.command is None else role.command
        args = t.args if role.args is None else role.args
        return ReplicaTemplate(command, args, env, role.image or t.image, role.name)

    def without_command(self) -> list[str]:
        """Where no command is given (the image's entrypoint would run): ``spec.template``, or a role."""
        if not self.roles:
            return [] if self.template.command else ["spec.template.command"]
        return [f"spec.roles[{i}] ({r.name})" for i, r in enumerate(self.roles)
                if r.replicas and not (self.template.command if r.command is None else r.command)]

    def requests(self) -> Resources:
        """The per-replica request; with a GPU-memory request and gpuSharing Auto, a memory-sized
        share of one GPU."""
        vec = self.template.resources.request_vector()
        return vec.with_gpu_memory(vec.gpu_memory, self.sharing()) if vec.gpu_memory else vec

    def sharing(self) -> bool:
        """May a replica's GPU be sized as a share of one GPU from its GPU-memory request?"""
        return self.gpu_sharing == "Auto"


class ReplicaTemplate(NamedTuple):
    command: list[str]
    args: list[str]
    env: dict[str, str]
    image: str | None
    role: str | None

    def argv(self) -> list[str]:
        return [*self.command, *self.args]


def _resolve_checkpoint_dir(path: str | None, working_dir: str | None) -> str | None:
    """An absolute checkpointDir as given (normalised); a relative one under workingDir, which it must
    not leave; a relative one without a workingDir is an error (it would resolve against the
    server's working directory)."""
    if not path or os.path.isabs(path):
        return os.path.normpath(path) if path else path
    if not working_dir:
        raise ValueError(f"checkpointDir: {path[:80]!r} is relative and template.workingDir is not set: "
                         "give an absolute path, or a workingDir to resolve it under")
    rel = os.path.normpath(path)
    if rel == ".." or rel.startswith("../"):
        raise ValueError(f"checkpointDir: {path[:80]!r} leaves template.workingDir")
    return os.path.join(working_dir, rel) if rel != "." else working_dir


class TrainingJob(Model):
    api_version: Literal["jobsched.io/v1alpha1"] = "jobsched.io/v1alpha1"
    kind: Literal["TrainingJob"] = "TrainingJob"
    metadata: ObjectMeta
    spec: TrainingJobSpec
    status: dict[str, Any] | None = Field(None, exclude=True)  # ignored on submit

    @model_validator(mode="before")
    @classmethod
    def _kueue_queue(cls, data: Any) -> Any:
        # spec.queue unset or empty: Kueue's label kueue.x-k8s.io/queue-name names the queue.
        return apply_queue_label(data)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def requests(self) -> Resources:
        return self.spec.requests()

    def family(self) -> str:
        return self.spec.right_sizing.family or self.metadata.labels.get(
            "jobsched.io/family", self.metadata.name)
