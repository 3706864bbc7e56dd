"""A node as the scheduler sees it: capacity, allocatable, labels, and its GPUs' model and memory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, model_validator

from jobsched.spec import limits as lim
from jobsched.spec import quantity as q
from jobsched.spec.base import Model
from jobsched.spec.resources import Resources

GPU_MODEL_LABEL = "jobsched.io/gpu-model"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# Set by NVIDIA GPU Feature Discovery on Kubernetes nodes.
GFD_PRODUCT_LABEL = "nvidia.com/gpu.product"
GFD_MEMORY_LABEL = "nvidia.com/gpu.memory"  # MiB per GPU


class NodeTaint(Model):
    """A node taint (``spec.taints`` of a Kubernetes node)."""

    key: lim.ShortStr = Field(min_length=1)
    value: lim.ShortStr = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class Node(Model):
    name: lim.ShortStr = Field(min_length=1)
    capacity: dict[str, q.Quantity] = Field(default_factory=dict)
    allocatable: dict[str, q.Quantity] = Field(default_factory=dict)
    labels: dict[lim.LabelKey, lim.LabelValue] = Field(default_factory=dict)
    unschedulable: bool = False
    price_per_hour: float = Field(0.0, ge=0, le=1e9, allow_inf_nan=False)
    gpu_memory: q.Quantity | None = None  # memory of each GPU; None: unknown
    taints: list[NodeTaint] = Field(default_factory=list, max_length=lim.MAX_LIST)
    # Requests of pods jobsched does not account for itself (other schedulers' pods, and its own pods
    # of ended attempts until they are gone): taken from the free room, but not from ``allocatable``,
    # so that "can never fit" is judged against what is there for good.
    held: dict[str, q.Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bounds(self) -> Node:
        q.check_bounds(self.capacity, "capacity")
        q.check_bounds(self.allocatable, "allocatable")
        q.check_bounds(self.held, "held")
        if self.gpu_memory is not None and q.parse_quantity(self.gpu_memory) > lim.MAX_MEMORY:
            raise ValueError(f"gpuMemory: must be at most 1Pi, got {self.gpu_memory!r}")
        return self

    def allocatable_vector(self) -> Resources:
        src = self.allocatable or self.capacity
        return Resources.from_quantities({k: v for k, v in src.items() if k in (q.CPU, q.MEMORY, q.GPU)})

    def held_vector(self) -> Resources:
        return Resources.from_quantities({k: v for k, v in self.held.items() if k in (q.CPU, q.MEMORY, q.GPU)})

    @property
    def gpu_model(self) -> str:
        return self.labels.get(GPU_MODEL_LABEL, "")

    @property
    def gpu_memory_bytes(self) -> int:
        """Memory of each GPU in bytes; 0 when unknown."""
        return q.memory_bytes(self.gpu_memory) if self.gpu_memory is not None else 0


def gfd_gpu(labels: Mapping[str, str]) -> tuple[str, int]:
    """(GPU model, bytes per GPU) from the labels of NVIDIA GPU Feature Discovery
    (``nvidia.com/gpu.product``, ``nvidia.com/gpu.memory`` in MiB); ("", 0) for what is missing or
    malformed. A ``jobsched.io/gpu-model`` label set by the administrator wins over the product."""
    model = labels.get(GPU_MODEL_LABEL) or labels.get(GFD_PRODUCT_LABEL, "")
    raw = labels.get(GFD_MEMORY_LABEL, "").strip()
    mib = int(raw) if raw.isdigit() else 0
    return model, mib * 2**20
