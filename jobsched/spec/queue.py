"""Queues: a quota per resource and a weight for fair sharing among queues."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from jobsched.spec import limits as lim
from jobsched.spec import quantity as q
from jobsched.spec.base import DNSLabel, Model
from jobsched.spec.resources import Resources


class QueueMeta(Model):
    name: DNSLabel
    labels: dict[lim.LabelKey, lim.LabelValue] = Field(default_factory=dict, max_length=lim.MAX_LABELS)
    uid: lim.ShortStr | None = None
    resource_version: lim.ShortStr | None = None
    generation: lim.Int64 | None = None
    creation_timestamp: lim.ShortStr | None = None
    annotations: dict[lim.LabelKey, str] = Field(default_factory=dict)

    @field_validator("annotations")
    @classmethod
    def _annotations_size(cls, v: dict[str, str]) -> dict[str, str]:
        return lim.check_annotations(v)


class QueueSpec(Model):
    # Missing resource: unlimited. Quota is on the sum of requests of all admitted replicas.
    quota: dict[str, q.Quantity] = Field(default_factory=dict)
    weight: float = Field(1.0, gt=0, le=1e6, allow_inf_nan=False)
    # BestEffortFIFO lets a smaller job behind a blocked head go first; StrictFIFO never does.
    strategy: Literal["BestEffortFIFO", "StrictFIFO"] = "BestEffortFIFO"
    # Memory request and limit of a replica that declares none (like a LimitRange default).
    default_memory: q.Quantity = "1Gi"

    @field_validator("quota")
    @classmethod
    def _known(cls, v: dict[str, object]) -> dict[str, object]:
        for key in v:
            if key not in (q.CPU, q.MEMORY, q.GPU):
                raise ValueError(f"unknown quota resource {key!r} (known: cpu, memory, {q.GPU})")
        return v

    @field_validator("default_memory")
    @classmethod
    def _at_least_1mi(cls, v: str | int | float) -> str | int | float:
        if q.memory_bytes(v) < q.MIN_MEMORY:
            raise ValueError(f"must be at least 1Mi, got {v!r}")
        if q.memory_bytes(v) > lim.MAX_MEMORY:
            raise ValueError(f"must be at most 1Pi, got {v!r}")
        return v

    @model_validator(mode="after")
    def _quota_bounds(self) -> QueueSpec:
        q.check_bounds(self.quota, "quota", factor=lim.QUOTA_FACTOR)
        return self


class Queue(Model):
    api_version: Literal["jobsched.io/v1alpha1"] = "jobsched.io/v1alpha1"
    kind: Literal["Queue"] = "Queue"
    metadata: QueueMeta
    spec: QueueSpec = Field(default_factory=lambda: QueueSpec())

    @property
    def name(self) -> str:
        return self.metadata.name

    def quota_limits(self) -> tuple[int | None, int | None, int | None]:
        """(cpu_milli, memory, gpus) limits; None means unlimited."""
        qt = self.spec.quota
        return (
            q.cpu_milli(qt[q.CPU]) if q.CPU in qt else None,
            q.memory_bytes(qt[q.MEMORY]) if q.MEMORY in qt else None,
            q.whole(qt[q.GPU], q.GPU) if q.GPU in qt else None,
        )

    def default_memory_bytes(self) -> int:
        return q.memory_bytes(self.spec.default_memory)

    @classmethod
    def make(cls, name: str, quota: dict[str, object] | None = None, weight: float = 1.0) -> Queue:
        return cls.model_validate({"metadata": {"name": name},
                                   "spec": {"quota": quota or {}, "weight": weight}})


def default_queue() -> Queue:
    return Queue.make("default")


__all__ = ["Queue", "QueueSpec", "Resources", "default_queue"]
