"""The Python SDK (``Client``) and its exceptions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobsched.sdk.errors import (
    ConflictError,
    Forbidden,
    InvalidSpec,
    JobschedError,
    NotFoundError,
    ServerUnreachable,
    Unauthorized,
    WaitTimeout,
)

if TYPE_CHECKING:  # pragma: no cover
    from jobsched.sdk.client import Client

__all__ = ["Client", "ConflictError", "Forbidden", "InvalidSpec", "JobschedError", "NotFoundError",
           "ServerUnreachable", "Unauthorized", "WaitTimeout"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from jobsched.sdk.client import Client

        return Client
    raise AttributeError(name)
