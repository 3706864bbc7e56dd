"""The backend seam: start a placed gang, stop it, report replica events.

The controller assumes a decision in its cache (the store) first, then calls ``start``. If
``start`` raises :class:`StartError`, the controller unreserves and requeues the job. Backends never
decide placement: the scheduling core does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from jobsched.spec.node import Node
from jobsched.spec.resources import Resources


class StartError(RuntimeError):
    """The gang could not be started; nothing of it is left running. ``permanent``: it would fail
    the same way again (missing binary or working directory, invalid environment), so the job
    fails at once instead of being retried."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class ReplicaLaunch:
    rank: int
    node: str
    argv: list[str]
    env: dict[str, str]  # the job's env plus the rendezvous variables
    requests: Resources
    memory_limit: int | None  # hard limit in bytes (cgroup / container limit)
    gpus: tuple[int, ...] = ()
    working_dir: str | None = None
    image: str | None = None
    gpu_memory_limit: int | None = None  # device memory per GPU this replica may use (shares); None: all
    args_only: bool = False  # argv are arguments to the image's entrypoint (no command given)


@dataclass(frozen=True)
class GangLaunch:
    job_key: str  # namespace/name
    job_uid: str
    attempt: int
    replicas: list[ReplicaLaunch]
    checkpoint_dir: str | None = None
    placement: str = "Pack"
    labels: dict[str, str] = field(default_factory=dict)
    # The template's pod-spec fields, camelCase: {"pod": {tolerations, affinity, volumes...},
    # "container": {volumeMounts, securityContext}} (spec/podtemplate.py; Kubernetes acts on them).
    pod_template: dict[str, Any] = field(default_factory=dict)
    ttl_seconds_after_finished: int | None = None  # spec.ttlSecondsAfterFinished (None: backend default)


@dataclass(frozen=True)
class ReplicaEvent:
    """A replica changed state. ``kind`` is 'running' or 'exited'. ``reason`` is an AttemptReason
    value for exits: Completed, Error, OOMKilled, InProgramOOM, CudaOOM, Evicted, Lost, Cancelled..."""

    job_key: str
    attempt: int
    rank: int
    kind: str
    time: float
    exit_code: int | None = None
    reason: str | None = None
    peak_memory_bytes: int | None = None
    message: str | None = None
    pid: int | None = None
    # The replica's memory timeline (see backends/local/sampler.py): {"t", "usage", "max", "failcnt",
    # "interval", "limit", "source"}; None where the backend does not sample memory.
    timeline: dict[str, Any] | None = None
    device_peak_bytes: int | None = None  # GPU memory it needed (CudaOOM)


class Backend(Protocol):
    name: str

    def nodes(self) -> list[Node]:
        """The nodes jobs may be placed on, with allocatable resources."""
        ...

    def start(self, gang: GangLaunch) -> dict[int, dict[str, object]]:
        """Start every replica. Returns per-rank handles (persisted for re-adoption)."""
        ...

    def stop(self, job_key: str, attempt: int, reason: str, grace_seconds: float = 10.0) -> None:
        """Stop every replica of the attempt (SIGTERM, then SIGKILL after the grace period)."""
        ...

    def poll(self) -> list[ReplicaEvent]:
        """Replica events since the last poll."""
        ...

    def adopt(self, gang: GangLaunch, handles: dict[int, dict[str, object]]) -> list[ReplicaEvent]:
        """After a restart: take over a gang started earlier. Replicas that are gone come back as
        'exited' events (their recorded exit, or reason Lost)."""
        ...

    def log_paths(self, job_key: str, attempt: int) -> dict[int, str]:
        """Per-rank log files (local backends); empty where logs are fetched another way."""
        ...

    def read_logs(self, job_key: str, attempt: int, rank: int) -> str:
        ...

    def enforcement(self) -> str:
        """How memory limits are enforced: cgroup-v2, cgroup-v1, watchdog, kubernetes, ray."""
        ...

    def close(self) -> None:
        ...
