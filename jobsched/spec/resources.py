"""Canonical integer resource vectors used by the scheduling core.

cpu in millicores, memory in bytes, whole GPUs, and ``gpu_milli``: the share of each GPU a replica
needs in thousandths (1000 for whole GPUs; < 1000 only with ``gpus == 1``, i.e. GPU sharing).

``gpu_memory`` is the device memory (bytes) each GPU, or GPU share, must offer; 0: not asked.
``gpu_share`` marks a memory-sized share: one GPU whose share is not fixed but sized on the node it
lands on, ``ceil(gpu_memory / memory of that GPU * 1000)`` (see :meth:`Resources.on_gpu`). Such a
request carries ``gpu_milli`` only as its quota figure (1000 while pending: the most it may take).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from jobsched.spec import quantity as q


def share_milli(gpu_memory: int, gpu_capacity: int) -> int:
    """The share (thousandths) of a GPU of ``gpu_capacity`` bytes that holds ``gpu_memory`` bytes:
    ``ceil(gpu_memory / gpu_capacity * 1000)``, at least 1; above 1000 when it does not fit; 1000
    when the GPU's memory is unknown (0): a whole GPU."""
    if gpu_capacity <= 0:
        return 1000
    return max(1, -(-gpu_memory * 1000 // gpu_capacity))


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_milli: int = 0
    memory: int = 0
    gpus: int = 0
    gpu_milli: int = 0  # per-GPU share; 1000 for whole GPUs, 0 when gpus == 0
    gpu_memory: int = 0  # bytes each GPU (or share) must offer; 0: no GPU-memory request
    gpu_share: bool = False  # share sized from gpu_memory on the node (needs gpus == 1, gpu_memory > 0)

    def __post_init__(self) -> None:
        if min(self.cpu_milli, self.memory, self.gpus, self.gpu_milli, self.gpu_memory) < 0:
            raise ValueError(f"negative resources: {self}")
        if self.gpu_share and (self.gpus != 1 or not self.gpu_memory):
            raise ValueError(f"a memory-sized GPU share needs gpus == 1 and gpu_memory: {self}")

    @property
    def gpu_total_milli(self) -> int:
        return self.gpus * self.gpu_milli

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_milli + other.cpu_milli,
            self.memory + other.memory,
            self.gpus + other.gpus,
            max(self.gpu_milli, other.gpu_milli),
            max(self.gpu_memory, other.gpu_memory),
        )

    def scaled(self, n: int) -> Resources:
        """Totals for ``n`` replicas, for quota accounting (gpus counts GPU-equivalents)."""
        return Resources(self.cpu_milli * n, self.memory * n, self.gpus * n, self.gpu_milli, self.gpu_memory)

    def with_memory(self, memory: int) -> Resources:
        return replace(self, memory=memory)

    def with_gpu_memory(self, gpu_memory: int, share: bool) -> Resources:
        """The request with ``gpu_memory`` bytes per GPU; a memory-sized share when ``share`` (the job
        allows sharing) and it asks for one whole GPU without a fixed ``gpu-milli``."""
        if not self.gpus:
            return self
        sharing = share and gpu_memory > 0 and self.gpus == 1 and (self.gpu_milli >= 1000 or self.gpu_share)
        milli = 1000 if sharing else self.gpu_milli
        return replace(self, gpu_memory=gpu_memory, gpu_share=sharing, gpu_milli=milli)

    def on_gpu(self, gpu_capacity: int) -> Resources:
        """The concrete request on a GPU of ``gpu_capacity`` bytes (0: unknown): a memory-sized share
        becomes a fixed ``gpu_milli`` (above 1000 when it cannot fit); anything else is unchanged."""
        if not self.gpu_share:
            return self
        return replace(self, gpu_milli=share_milli(self.gpu_memory, gpu_capacity), gpu_share=False)

    def device_bytes(self, gpu_capacity: int) -> int:
        """Device memory one GPU (or share) of this concrete request gets on a GPU of ``gpu_capacity``
        bytes; 0 when unknown."""
        return gpu_capacity * min(self.on_gpu(gpu_capacity).gpu_milli, 1000) // 1000 if self.gpus else 0

    def as_quantities(self) -> dict[str, Any]:
        out: dict[str, Any] = {q.CPU: q.format_cpu(self.cpu_milli), q.MEMORY: self.memory}
        if self.gpus:
            out[q.GPU] = self.gpus
            if self.gpu_milli and self.gpu_milli < 1000 and not self.gpu_share:
                out[q.GPU_MILLI] = self.gpu_milli
            if self.gpu_memory:
                out[q.GPU_MEMORY] = self.gpu_memory
        return out

    def as_dict(self) -> dict[str, int]:
        out = {"cpu_milli": self.cpu_milli, "memory": self.memory, "gpus": self.gpus,
               "gpu_milli": self.gpu_milli}
        if self.gpu_memory:
            out["gpu_memory"] = self.gpu_memory
        if self.gpu_share:
            out["gpu_share"] = 1
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, int]) -> Resources:
        return cls(int(d.get("cpu_milli", 0)), int(d.get("memory", 0)), int(d.get("gpus", 0)),
                   int(d.get("gpu_milli", 0)), int(d.get("gpu_memory", 0)), bool(d.get("gpu_share", 0)))

    @classmethod
    def from_quantities(cls, values: Mapping[str, Any]) -> Resources:
        """From a Kubernetes-style resource list (``{"cpu": "500m", "memory": "1Gi"}``)."""
        cpu = q.cpu_milli(values[q.CPU]) if q.CPU in values else 0
        mem = q.memory_bytes(values[q.MEMORY]) if q.MEMORY in values else 0
        gpus = q.whole(values[q.GPU], q.GPU) if q.GPU in values else 0
        milli = q.whole(values[q.GPU_MILLI], q.GPU_MILLI) if q.GPU_MILLI in values else 0
        gmem = q.memory_bytes(values[q.GPU_MEMORY]) if q.GPU_MEMORY in values else 0
        if milli and (gpus != 1 or milli > 1000):
            raise ValueError(f"{q.GPU_MILLI} (GPU sharing) needs {q.GPU}: 1 and a value of 1..1000")
        if gmem and not gpus:
            raise ValueError(f"{q.GPU_MEMORY} needs {q.GPU} (memory per GPU of the GPUs asked for)")
        return cls(cpu, mem, gpus, (milli or 1000) if gpus else 0, gmem)


ZERO = Resources()

