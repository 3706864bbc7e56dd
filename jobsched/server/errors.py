"""Errors the service raises; the HTTP layer maps them to status codes."""

from __future__ import annotations


class NotFound(LookupError):
    """404"""


class Conflict(ValueError):
    """409: e.g. a job name already taken."""


class Invalid(ValueError):
    """422/400: bad input; the message names the field path."""


class TooLarge(Invalid):
    """413: an input over a size limit (e.g. a manifest); the message names it and the limit."""
