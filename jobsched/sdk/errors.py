"""The SDK's exceptions: one hierarchy under :class:`JobschedError`."""

from __future__ import annotations


class JobschedError(Exception):
    """Base of every error the SDK raises."""


class InvalidSpec(JobschedError, ValueError):
    """Bad input (malformed YAML, unknown field, bad quantity, unknown queue...). The message names
    the field path (and the file and line for YAML)."""


class NotFoundError(JobschedError, LookupError):
    """No such job (or other object)."""


class ConflictError(JobschedError):
    """The request conflicts with what is stored, e.g. a job name already taken."""


class Unauthorized(JobschedError):
    """The server refused the token (or none was found)."""


class Forbidden(JobschedError, PermissionError):
    """The token is valid but its role or namespaces do not allow the call (HTTP 403)."""


class ServerUnreachable(JobschedError, ConnectionError):
    """No server answered at the URL (and none could be started)."""


class WaitTimeout(JobschedError, TimeoutError):
    """``Client.wait`` gave up before the job finished."""
