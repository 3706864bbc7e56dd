"""Canonical integer resource vectors used by the scheduling core.

cpu in millicores, memory in bytes, whole GPUs, and ``gpu_milli``: the share of each GPU a replica
needs in thousandths (1000 for whole GPUs; < 1000 only with ``gpus == 1``, i.e. GPU sharing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobsched.spec import quantity as q


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_milli: int = 0
    memory: int = 0
    gpus: int = 0
    gpu_milli: int = 0  # per-GPU share; 1000 for whole GPUs, 0 when gpus == 0

    def __post_init__(self) -> None:
        if min(self.cpu_milli, self.memory, self.gpus, self.gpu_milli) < 0:
            raise ValueError(f"negative resources: {self}")

    @property
    def gpu_total_milli(self) -> int:
        return self.gpus * self.gpu_milli

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_milli + other.cpu_milli,
            self.memory + other.memory,
            self.gpus + other.gpus,
            max(self.gpu_milli, other.gpu_milli),
        )

    def scaled(self, n: int) -> Resources:
        """Totals for ``n`` replicas, for quota accounting (gpus counts GPU-equivalents)."""
        return Resources(self.cpu_milli * n, self.memory * n, self.gpus * n, self.gpu_milli)

    def with_memory(self, memory: int) -> Resources:
        return Resources(self.cpu_milli, memory, self.gpus, self.gpu_milli)

    def as_quantities(self) -> dict[str, Any]:
        out: dict[str, Any] = {q.CPU: q.format_cpu(self.cpu_milli), q.MEMORY: self.memory}
        if self.gpus:
            out[q.GPU] = self.gpus
            if self.gpu_milli and self.gpu_milli < 1000:
                out[q.GPU_MILLI] = self.gpu_milli
        return out

    def as_dict(self) -> dict[str, int]:
        return {"cpu_milli": self.cpu_milli, "memory": self.memory, "gpus": self.gpus,
                "gpu_milli": self.gpu_milli}

    @classmethod
    def from_dict(cls, d: Mapping[str, int]) -> Resources:
        return cls(int(d.get("cpu_milli", 0)), int(d.get("memory", 0)), int(d.get("gpus", 0)),
                   int(d.get("gpu_milli", 0)))

    @classmethod
    def from_quantities(cls, values: Mapping[str, Any]) -> Resources:
        """From a Kubernetes-style resource list (``{"cpu": "500m", "memory": "1Gi"}``)."""
        cpu = q.cpu_milli(values[q.CPU]) if q.CPU in values else 0
        mem = q.memory_bytes(values[q.MEMORY]) if q.MEMORY in values else 0
        gpus = q.whole(values[q.GPU], q.GPU) if q.GPU in values else 0
        milli = q.whole(values[q.GPU_MILLI], q.GPU_MILLI) if q.GPU_MILLI in values else 0
        if milli and (gpus != 1 or milli > 1000):
            raise ValueError(f"{q.GPU_MILLI} (GPU sharing) needs {q.GPU}: 1 and a value of 1..1000")
        return cls(cpu, mem, gpus, (milli or 1000) if gpus else 0)


ZERO = Resources()
