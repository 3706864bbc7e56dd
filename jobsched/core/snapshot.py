"""The immutable input of one scheduling cycle: nodes, running gangs, queues, provisionable shapes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from jobsched.core.gang import Assignment
from jobsched.core.nodes import NodeTable
from jobsched.spec.queue import Queue
from jobsched.spec.resources import Resources


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    cpu_quota: int | None = None
    memory_quota: int | None = None
    gpu_quota: int | None = None
    weight: float = 1.0
    strict_fifo: bool = False

    @classmethod
    def from_spec(cls, q: Queue) -> QueueInfo:
        cpu, mem, gpu = q.quota_limits()
        return cls(q.name, cpu, mem, gpu, q.spec.weight, q.spec.strategy == "StrictFIFO")

    @property
    def has_quota(self) -> bool:
        """Whether any quota limits the queue (without one, usage need not be counted)."""
        return self.cpu_quota is not None or self.memory_quota is not None or self.gpu_quota is not None

    def exceeded(self, usage: Resources) -> list[str]:
        """Names of the resources over quota at ``usage`` (gpus counted in milli-GPU)."""
        out = []
        if self.cpu_quota is not None and usage.cpu_milli > self.cpu_quota:
            out.append("cpu")
        if self.memory_quota is not None and usage.memory > self.memory_quota:
            out.append("memory")
        if self.gpu_quota is not None and usage.gpus > self.gpu_quota * 1000:
            out.append("nvidia.com/gpu")
        return out

    def share(self, usage: Resources, total: Resources) -> float:
        """Dominant share of the cluster this queue uses, divided by its weight (for fairness)."""
        parts = [
            usage.cpu_milli / max(total.cpu_milli, 1),
            usage.memory / max(total.memory, 1),
            usage.gpus / max(total.gpus * 1000, 1),
        ]
        return max(parts) / self.weight


@dataclass(frozen=True, slots=True)
class RunningGang:
    """An admitted gang that holds resources. ``terminating_for`` names the preemptor it yields to."""

    key: str
    request: Resources
    assignments: tuple[Assignment, ...]
    queue: str = "default"
    priority: int = 0
    started: float = 0.0
    preemptible: bool = True
    terminating_for: str | None = None

    def usage(self) -> Resources:
        """Quota usage: GPUs as milli-GPU so that shares add up."""
        r = self.request
        n = len(self.assignments)
        return Resources(r.cpu_milli * n, r.memory * n, r.gpu_total_milli * n, 0)


@dataclass(frozen=True)
class NodeShape:
    """A node the provisioner could add (instance type) and how many more of it."""

    name: str
    resources: Resources
    max_count: int
    gpu_model: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    price_per_hour: float = 0.0
    gpu_memory: int = 0  # bytes per GPU; 0: unknown


@dataclass(frozen=True)
class Snapshot:
    table: NodeTable  # free columns already net of ``running``
    running: tuple[RunningGang, ...] = ()
    queues: Mapping[str, QueueInfo] = field(default_factory=dict)
    provisionable: tuple[NodeShape, ...] = ()

    @classmethod
    def build(
        cls,
        nodes: NodeTable,
        running: Iterable[RunningGang] = (),
        queues: Iterable[QueueInfo] = (),
        provisionable: Sequence[NodeShape] = (),
    ) -> Snapshot:
        """Subtract running allocations from the nodes' allocatable (nodes it names that are gone
        are ignored: the caller reports those gangs lost)."""
        table = nodes.copy()
        running_t = tuple(running)
        for g in running_t:
            for a in g.assignments:
                row = table.index.get(a.node)
                if row is not None:
                    table.allocate(row, g.request, a.gpus)
        qs = {q.name: q for q in queues}
        qs.setdefault("default", QueueInfo("default"))
        return cls(table, running_t, qs, tuple(provisionable))

    def queue_usage(self) -> dict[str, Resources]:
        usage: dict[str, Resources] = {}
        for g in self.running:
            usage[g.queue] = usage.get(g.queue, Resources()) + g.usage()
        return usage
