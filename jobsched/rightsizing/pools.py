"""Node pools: the instance types the provisioner may add, and the provider that adds them.

A pool is configured in YAML (unknown keys rejected, camelCase or snake_case)::

    name: gpu
    emptyTtlSeconds: 300
    instanceTypes:
      - {name: g5.12xlarge, cpu: 48, memory: 192Gi, gpus: 4, gpuModel: A10G, gpuMemory: 24Gi,
         pricePerHour: 5.67, maxCount: 8}

:class:`NodeProvider` is the seam to a cloud; :class:`SimulatedProvider` is a pure stand-in whose
nodes appear ``delay`` seconds after ``create`` (time is driven by :meth:`SimulatedProvider.advance`).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Protocol

from pydantic import Field, ValidationError, field_validator

from jobsched.core.snapshot import NodeShape
from jobsched.spec import quantity as q
from jobsched.spec import yamlsafe
from jobsched.spec.base import Model
from jobsched.spec.errors import SpecError, spec_error_from
from jobsched.spec.node import GPU_MODEL_LABEL, INSTANCE_TYPE_LABEL, Node
from jobsched.spec.resources import Resources

POOL_LABEL = "jobsched.io/node-pool"


class InstanceType(Model):
    name: str = Field(min_length=1, max_length=63)
    cpu: q.Quantity
    memory: q.Quantity
    gpus: int = Field(0, ge=0, le=64)
    gpu_model: str = ""
    gpu_memory: q.Quantity | None = None  # memory of one GPU (placement of GPU-memory requests)
    price_per_hour: float = Field(ge=0)
    max_count: int = Field(ge=0)
    labels: dict[str, str] = Field(default_factory=dict)

    def resources(self) -> Resources:
        return Resources(q.cpu_milli(self.cpu), q.memory_bytes(self.memory), self.gpus,
                         1000 if self.gpus else 0)

    def gpu_memory_bytes(self) -> int:
        return q.memory_bytes(self.gpu_memory) if self.gpus and self.gpu_memory is not None else 0

    def node_labels(self, pool: str = "") -> dict[str, str]:
        out = {**self.labels, INSTANCE_TYPE_LABEL: self.name}
        if self.gpus and self.gpu_model:
            out[GPU_MODEL_LABEL] = self.gpu_model
        if pool:
            out[POOL_LABEL] = pool
        return out

    def node(self, name: str, pool: str = "") -> Node:
        res = self.resources()
        cap: dict[str, q.Quantity] = {q.CPU: self.cpu, q.MEMORY: self.memory}
        if res.gpus:
            cap[q.GPU] = res.gpus
        return Node(name=name, capacity=cap, labels=self.node_labels(pool), price_per_hour=self.price_per_hour,
                    gpu_memory=self.gpu_memory_bytes() or None)

    def shape(self, existing: int = 0) -> NodeShape:
        """The core's view (for the scheduler's never-fits check): how many more may be added."""
        return NodeShape(self.name, self.resources(), max(self.max_count - existing, 0), self.gpu_model,
                         self.node_labels(), self.price_per_hour, self.gpu_memory_bytes())


class NodePool(Model):
    name: str = Field("default", min_length=1)
    instance_types: list[InstanceType] = Field(min_length=1)
    empty_ttl_seconds: float = Field(300.0, ge=0)
    consolidate: bool = True  # repack under-used nodes when that lowers cost
    underused: float = Field(0.5, gt=0, le=1)  # a node is under-used below this dominant share

    @field_validator("instance_types")
    @classmethod
    def _unique(cls, v: list[InstanceType]) -> list[InstanceType]:
        names = [t.name for t in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate instance type names: {', '.join(dup)}")
        return v

    def type(self, name: str) -> InstanceType:
        for t in self.instance_types:
            if t.name == name:
                return t
        raise KeyError(f"unknown instance type {name!r} in pool {self.name!r}")


def load_pool(text: str | bytes, source: str = "node pool") -> NodePool:
    """Parse a pool from YAML text, safely and within bounds (:mod:`jobsched.spec.yamlsafe`); errors
    name the field (``instanceTypes[0].memory: ...``)."""
    data, _ = yamlsafe.loads(text, source)
    if not isinstance(data, dict):
        raise SpecError("expected a mapping with instanceTypes", source)
    try:
        return NodePool.model_validate(data)
    except ValidationError as e:
        raise spec_error_from(e) from None


class NodeProvider(Protocol):
    """Adds and removes nodes (a cloud's instance API, or the simulation)."""

    def create(self, instance_type: str, count: int) -> list[str]:
        """Ask for ``count`` nodes; returns their names (they may take a while to appear)."""
        ...

    def delete(self, name: str) -> None: ...

    def list(self) -> list[Node]:
        """The nodes that are ready to run replicas."""
        ...


class SimulatedProvider:
    """A pure provider: nodes become ready ``delay`` seconds after they were created."""

    def __init__(self, pool: NodePool | Sequence[InstanceType], delay: float = 0.0, now: float = 0.0) -> None:
        self.pool = pool if isinstance(pool, NodePool) else NodePool.model_validate({"instance_types": list(pool)})
        if delay < 0:
            raise ValueError(f"delay must not be negative, got {delay}")
        self.delay = delay
        self.now = now
        self._nodes: dict[str, tuple[str, float]] = {}  # name -> (instance type, ready at)
        self._seq = 0

    def advance(self, now: float) -> None:
        if now < self.now:
            raise ValueError(f"time went backwards: {now} < {self.now}")
        self.now = now

    def counts(self) -> dict[str, int]:
        """Nodes per instance type, ready or not (the provisioner's ``existing``)."""
        out: dict[str, int] = {}
        for t, _ in self._nodes.values():
            out[t] = out.get(t, 0) + 1
        return out

    def create(self, instance_type: str, count: int) -> builtins.list[str]:
        t = self.pool.type(instance_type)
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        have = self.counts().get(instance_type, 0)
        if have + count > t.max_count:
            raise ValueError(f"{instance_type}: {have} + {count} nodes exceeds maxCount {t.max_count}")
        names = []
        for _ in range(count):
            self._seq += 1
            name = f"{self.pool.name}-{instance_type}-{self._seq}".replace(".", "-").lower()
            self._nodes[name] = (instance_type, self.now + self.delay)
            names.append(name)
        return names

    def delete(self, name: str) -> None:
        if name not in self._nodes:
            raise KeyError(f"no node {name!r}")
        del self._nodes[name]

    def list(self) -> builtins.list[Node]:
        return [self.pool.type(t).node(n, self.pool.name) for n, (t, ready) in self._nodes.items()
                if ready <= self.now]

    def pending(self) -> builtins.list[str]:
        return [n for n, (_, ready) in self._nodes.items() if ready > self.now]
