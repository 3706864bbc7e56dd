"""Memory right-sizing: the pre-launch peak-memory estimator (docs/estimator.md).

Import-light: names resolve lazily, and torch is imported only when an estimate runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from jobsched.rightsizing.estimator import (
        Estimate,
        EstimateError,
        estimate_factory,
        estimate_factory_dict,
        estimate_in_subprocess,
        estimate_job,
        estimate_manifest,
    )

__all__ = [
    "Estimate",
    "EstimateError",
    "estimate_factory",
    "estimate_factory_dict",
    "estimate_in_subprocess",
    "estimate_job",
    "estimate_manifest",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from jobsched.rightsizing import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'jobsched.rightsizing' has no attribute {name!r}")
