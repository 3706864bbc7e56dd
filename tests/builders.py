"""Small builders for table tests: ``make_job("a").gpus(4).replicas(2).build()``."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobsched.core import NodeTable, PodGroup, RunningGang, Snapshot
from jobsched.core.gang import Assignment
from jobsched.core.snapshot import QueueInfo
from jobsched.spec.resources import Resources

GiB = 2**30


@dataclass
class JobBuilder:
    key: str
    _cpu: int = 1000
    _mem: int = GiB
    _gpus: int = 0
    _milli: int = 0
    _replicas: int = 1
    _queue: str = "default"
    _priority: int = 0
    _created: float = 0.0
    _selector: dict[str, str] = field(default_factory=dict)
    _models: tuple[str, ...] = ()
    _placement: str = "Pack"
    _gpu_mem: int = 0
    _share: bool = False

    def cpu(self, milli: int) -> JobBuilder:
        self._cpu = milli
        return self

    def mem(self, gib: float) -> JobBuilder:
        self._mem = int(gib * GiB)
        return self

    def gpus(self, n: int, milli: int = 1000) -> JobBuilder:
        self._gpus, self._milli = n, milli
        return self

    def gpu_mem(self, gib: float, share: bool = False) -> JobBuilder:
        """Ask for ``gib`` GiB per GPU; ``share``: a memory-sized share of one GPU (gpuSharing Auto)."""
        self._gpu_mem, self._share = int(gib * GiB), share
        return self

    def replicas(self, n: int) -> JobBuilder:
        self._replicas = n
        return self

    def queue(self, q: str) -> JobBuilder:
        self._queue = q
        return self

    def priority(self, p: int) -> JobBuilder:
        self._priority = p
        return self

    def created(self, t: float) -> JobBuilder:
        self._created = t
        return self

    def selector(self, **kv: str) -> JobBuilder:
        self._selector = kv
        return self

    def models(self, *m: str) -> JobBuilder:
        self._models = m
        return self

    def placement(self, p: str) -> JobBuilder:
        self._placement = p
        return self

    def request(self) -> Resources:
        r = Resources(self._cpu, self._mem, self._gpus, self._milli if self._gpus else 0)
        return r.with_gpu_memory(self._gpu_mem, self._share) if self._gpu_mem else r

    def build(self) -> PodGroup:
        return PodGroup(self.key, self.request(), self._replicas, self._queue, self._priority, self._created,
                        self._selector, self._models, self._placement)

    def running_on(self, *nodes: str, started: float = 0.0, gpus: tuple[tuple[int, ...], ...] = ()) -> RunningGang:
        assigns = tuple(Assignment(i, n, -1, gpus[i] if gpus else tuple(range(self._gpus)))
                        for i, n in enumerate(nodes))
        return RunningGang(self.key, self.request(), assigns, self._queue, self._priority, started)


def make_job(key: str) -> JobBuilder:
    return JobBuilder(key)


def make_nodes(n: int, cpu: int = 8000, mem_gib: int = 32, gpus: int = 0, model: str = "A100",
               labels: list[dict[str, str]] | None = None) -> NodeTable:
    names = [f"n{i}" for i in range(n)]
    return NodeTable.from_arrays(names, [cpu] * n, [mem_gib * GiB] * n, [gpus] * n, [model] * n, labels)


def gpu_nodes(*specs: tuple[str, int, str, float]) -> NodeTable:
    """Virtual GPU nodes ``(name, gpus, model, GiB per GPU)`` with 32 cpus and 256 GiB each."""
    return NodeTable.from_arrays([s[0] for s in specs], [32000] * len(specs), [256 * GiB] * len(specs),
                                 [s[1] for s in specs], [s[2] for s in specs],
                                 gpu_memory=[int(s[3] * GiB) for s in specs])


def snapshot(table: NodeTable, running: list[RunningGang] | None = None,
             queues: list[QueueInfo] | None = None) -> Snapshot:
    return Snapshot.build(table, running or [], queues or [])
