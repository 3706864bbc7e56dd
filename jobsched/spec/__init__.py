"""Specs: the pydantic models that are the single source of truth for the HTTP API,
the SDK, the CLI and the CRD schemas.

The names below are imported on first use (``from jobsched.spec import TrainingJob`` works as
always): importing one submodule, e.g. ``jobsched.spec.api`` for the CLI, must not build every
manifest model first."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from jobsched.spec.errors import SpecError
    from jobsched.spec.job import (
        API_VERSION,
        JobTemplate,
        MemoryPolicy,
        ObjectMeta,
        ResourceRequirements,
        RightSizing,
        TrainingJob,
        TrainingJobSpec,
    )
    from jobsched.spec.node import Node
    from jobsched.spec.queue import Queue
    from jobsched.spec.resources import Resources
    from jobsched.spec.status import AttemptReason, JobPhase

_WHERE = {
    "SpecError": "errors", "API_VERSION": "job", "JobTemplate": "job", "MemoryPolicy": "job",
    "ObjectMeta": "job", "ResourceRequirements": "job", "RightSizing": "job", "TrainingJob": "job",
    "TrainingJobSpec": "job", "Node": "node", "Queue": "queue", "Resources": "resources",
    "AttemptReason": "status", "JobPhase": "status",
}

__all__ = ["API_VERSION", "AttemptReason", "JobPhase", "JobTemplate", "MemoryPolicy", "Node", "ObjectMeta",
           "Queue", "ResourceRequirements", "Resources", "RightSizing", "SpecError", "TrainingJob",
           "TrainingJobSpec"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'jobsched.spec' has no attribute {name!r}")
    return getattr(importlib.import_module(f"jobsched.spec.{_WHERE[name]}"), name)
