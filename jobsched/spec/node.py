"""A node as the scheduler sees it: capacity, allocatable, labels."""

from __future__ import annotations

from pydantic import Field

from jobsched.spec import quantity as q
from jobsched.spec.base import Model
from jobsched.spec.resources import Resources

GPU_MODEL_LABEL = "jobsched.io/gpu-model"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


class Node(Model):
    name: str = Field(min_length=1)
    capacity: dict[str, q.Quantity] = Field(default_factory=dict)
    allocatable: dict[str, q.Quantity] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    unschedulable: bool = False
    price_per_hour: float = 0.0

    def allocatable_vector(self) -> Resources:
        src = self.allocatable or self.capacity
        return Resources.from_quantities({k: v for k, v in src.items() if k in (q.CPU, q.MEMORY, q.GPU)})

    @property
    def gpu_model(self) -> str:
        return self.labels.get(GPU_MODEL_LABEL, "")
