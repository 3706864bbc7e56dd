"""Models of the HTTP API, shared by the server and the SDK (and printed by the CLI as JSON).

On the wire the fields are camelCase, as in the manifests (``peakMemoryBytes``, ``createdAt``);
snake_case input is read too (``populate_by_name``), so an SDK parses both an older server's and
this one's answers. ``peak_memory_bytes`` is still written next to ``peakMemoryBytes`` for one
release (deprecated), so scripts reading it keep working."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from jobsched.spec.status import JobPhase


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True,
                              serialize_by_alias=True)


class _LegacyPeak(ApiModel):
    """``peak_memory_bytes`` (deprecated, removed in the next release): the same as
    ``peakMemoryBytes``, for readers of the old snake_case JSON."""

    peak_memory_bytes: int | None = None
    legacy_peak_memory_bytes: int | None = Field(None, alias="peak_memory_bytes",
                                                 description="deprecated: use peakMemoryBytes")

    @model_validator(mode="after")
    def _same_peak(self) -> _LegacyPeak:
        if self.peak_memory_bytes is None:
            self.peak_memory_bytes = self.legacy_peak_memory_bytes
        self.legacy_peak_memory_bytes = self.peak_memory_bytes
        return self


class AttemptResources(ApiModel):
    requests: dict[str, int] = Field(default_factory=dict)  # cpu (milli), memory (bytes), nvidia.com/gpu
    limits: dict[str, int] = Field(default_factory=dict)


class ReplicaInfo(_LegacyPeak):
    rank: int
    node: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None


class MemoryTimeline(ApiModel):
    """The memory timeline of an attempt's peak replica (sampled by the local backend's shim):
    its shape (plateau | growing | spike | irregular | short), when the limit was hit, and the
    points themselves (seconds since start, usage in bytes)."""

    rank: int
    shape: str
    peak: int
    duration: float
    growth_rate: float  # bytes/s over the second half of the run
    plateau: int | None = None
    limit_hit_at: float | None = None
    samples: int = 0
    sparkline: str = ""
    text: str = ""
    source: str | None = None  # cgroup-v2 | cgroup-v1 | watchdog
    t: list[float] = Field(default_factory=list)
    usage: list[int] = Field(default_factory=list)


class AttemptInfo(_LegacyPeak):
    index: int
    resources: AttemptResources = Field(default_factory=AttemptResources)
    exit_code: int | None = None
    reason: str | None = None  # AttemptReason value once ended
    message: str | None = None
    node: str | None = None  # node of rank 0 (all nodes in ``nodes``)
    nodes: list[str] = Field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    enforcement: str | None = None  # cgroup-v2 | cgroup-v1 | watchdog | kubernetes | ray
    resumed_from_checkpoint: bool = False
    replicas: list[ReplicaInfo] = Field(default_factory=list)
    # fixed: limit == request; burst: a measuring retry whose limit sits above its request
    memory_mode: str | None = None
    memory_timeline: MemoryTimeline | None = None


class EventInfo(ApiModel):
    time: float
    type: str  # Normal | Warning
    reason: str
    message: str


class SizingInfo(ApiModel):
    """Right-sizing decisions for the next/current attempt (declared, estimated, chosen, why)."""

    declared_memory: int | None = None
    estimated_memory: int | None = None
    recommended_memory: int | None = None
    chosen_memory: int | None = None
    default_memory: int | None = None  # no memory declared: the queue's default was used
    gpu_memory: int | None = None  # GPU memory per GPU the next attempt asks for after a CUDA OOM
    device_estimate: int | None = None  # estimated GPU memory per GPU of a CUDA job (bytes)
    suggested_memory: int | None = None  # failed OOM-killed with no retry left: what the next try needs
    why: str | None = None
    breakdown: dict[str, Any] = Field(default_factory=dict)


class JobHeader(ApiModel):
    """What every view of a job starts with: who it is, where it queues, its phase and times."""

    name: str
    namespace: str = "default"
    uid: str | None = None
    queue: str = "default"
    priority: int = 0
    phase: JobPhase = JobPhase.PENDING
    reason: str | None = None
    message: str | None = None
    created_at: float | None = None
    admitted_at: float | None = None
    finished_at: float | None = None
    cost: float = 0.0


class JobStatus(JobHeader):
    replicas: int = 1
    attempts: list[AttemptInfo] = Field(default_factory=list)
    events: list[EventInfo] = Field(default_factory=list)
    sizing: SizingInfo = Field(default_factory=SizingInfo)
    labels: dict[str, str] = Field(default_factory=dict)
    manifest: dict[str, Any] | None = None


class DryRunResult(ApiModel):
    """What ``POST /v1/jobs?dryRun=true`` found; nothing was stored."""

    name: str  # with generateName: the prefix and '?????' (the name is picked at submit)
    namespace: str = "default"
    queue: str = "default"
    name_generated: bool = False
    fits: bool = True  # False: it can never run as specified (cluster or quota too small)
    admit_now: bool = False
    verdict: str = ""  # would start now on ... | would wait: ... | never fits: ...
    quota: str | None = None
    memory: int | None = None  # per-replica request admission sizing would choose
    memory_reason: str = ""
    skipped: list[str] = Field(default_factory=list)  # checks not run, and why
    warnings: list[str] = Field(default_factory=list)
class JobSummary(JobHeader):
    """A job as a listing shows it: no manifest, attempts or events (``status`` has those).
    ``attempts`` is their number; ``memory`` the latest attempt's memory request (bytes)."""

    attempts: int = 0
    memory: int | None = None
    memory_limit: int | None = None  # the latest attempt's memory limit (bytes)
    nodes: list[str] = Field(default_factory=list)  # the latest attempt's nodes


class JobList(ApiModel):
    """One page of a listing, as kubectl pages: pass ``continue`` back (same filters) for the
    next page; ``remaining`` jobs are after this page (0 on the last one, where ``continue`` is
    null)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    items: list[JobSummary]
    continue_: str | None = Field(None, alias="continue")
    remaining: int = 0


class QueueStatus(ApiModel):
    name: str
    weight: float = 1.0
    quota: dict[str, Any] = Field(default_factory=dict)
    default_memory: int | None = None  # bytes: request and limit of a replica that declares none
    usage: dict[str, int] = Field(default_factory=dict)
    pending: int = 0
    running: int = 0


class NodeStatus(ApiModel):
    name: str
    gpu_model: str | None = None
    gpu_memory: int | None = None  # bytes per GPU; None: unknown
    gpu_note: str | None = None  # why no GPU was found (local backend: NVML)
    allocatable: dict[str, Any] = Field(default_factory=dict)
    allocated: dict[str, int] = Field(default_factory=dict)
    held: dict[str, Any] = Field(default_factory=dict)  # by other schedulers' pods (Kubernetes), for now
    labels: dict[str, str] = Field(default_factory=dict)
    unschedulable: bool = False
    enforcement: str | None = None


class ServerInfo(ApiModel):
    version: str
    backend: str
    home: str
    pid: int
    enforcement: str | None = None


class ErrorBody(ApiModel):
    detail: str
