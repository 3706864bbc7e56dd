"""Specs: the pydantic models that are the single source of truth for the HTTP API,
the SDK, the CLI and the CRD schemas."""

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

__all__ = [
    "API_VERSION",
    "AttemptReason",
    "JobPhase",
    "JobTemplate",
    "MemoryPolicy",
    "Node",
    "ObjectMeta",
    "Queue",
    "ResourceRequirements",
    "Resources",
    "RightSizing",
    "SpecError",
    "TrainingJob",
    "TrainingJobSpec",
]
