"""Models of tokens, roles and the audit log, shared by the server and the SDK (see docs/security.md).

Roles: ``admin`` (everything), ``user`` (submit, see and cancel in its namespaces; read queues and
nodes), ``viewer`` (read only; in its namespaces, or everywhere when it has none).
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jobsched.spec.base import DNSLabel

_TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$")


class Role(StrEnum):
    admin = "admin"
    user = "user"
    viewer = "viewer"


class TokenRequest(BaseModel):
    """``POST /v1/tokens``: a new token for ``name`` with ``role`` in ``namespaces``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    role: Role = Role.user
    namespaces: list[DNSLabel] = Field(default_factory=list, max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TOKEN_NAME.match(v):
            raise ValueError(f"{v!r} is not a valid token name: letters, digits and '.', '_', '@', "
                             "'-', starting with a letter or digit, at most 63 characters")
        return v

    @model_validator(mode="after")
    def _scope(self) -> TokenRequest:
        if self.role is Role.user and not self.namespaces:
            raise ValueError("namespaces: a user token needs at least one namespace")
        if self.role is Role.admin and self.namespaces:
            raise ValueError("namespaces: an admin token is not scoped to namespaces")
        self.namespaces = sorted(set(self.namespaces))
        return self


class TokenInfo(BaseModel):
    """A token as listed: never the secret."""

    name: str
    role: Role
    namespaces: list[str] = Field(default_factory=list)
    created_at: float | None = None
    revoked_at: float | None = None
    source: str = "store"  # "store", or "home" for $JOBSCHED_HOME/token (the first-start admin)


class TokenCreated(TokenInfo):
    token: str  # shown once, at creation


class AuditEntry(BaseModel):
    """One line of ``$JOBSCHED_HOME/audit.log``."""

    model_config = ConfigDict(extra="allow")
    time: str
    who: str | None = None
    role: str | None = None
    method: str
    path: str
    object: str | None = None
    client: str | None = None
    status: int
