"""Tokens and the audit log through the SDK (admin token needed): ``client.admin``.

>>> t = Client().admin.create_token("alice", role="user", namespaces=["team-a"])
>>> print(t.token)                                   # shown once; the server keeps only its hash
>>> Client().admin.revoke_token("alice")

Also :func:`tls_verify`: how the SDK checks an ``https://`` server (``JOBSCHED_CA_FILE``).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from jobsched.sdk.errors import InvalidSpec
from jobsched.spec.access import AuditEntry, TokenCreated, TokenInfo

if TYPE_CHECKING:  # pragma: no cover
    from jobsched.sdk.client import Client


def tls_verify(ca_file: str | Path | None = None) -> ssl.SSLContext | bool:
    """The system CAs, or those of ``ca_file`` (default ``JOBSCHED_CA_FILE``), e.g. the
    certificate of a server with a self-signed one."""
    ca = ca_file or os.environ.get("JOBSCHED_CA_FILE")
    if not ca:
        return True
    try:
        return ssl.create_default_context(cafile=str(Path(ca).expanduser()))
    except (OSError, ssl.SSLError) as e:
        what = "--ca" if ca_file else "JOBSCHED_CA_FILE"
        raise InvalidSpec(f"{what}: cannot load CA certificates from {ca}: {e}") from None


class AdminAPI:
    def __init__(self, client: Client) -> None:
        self.client = client

    def create_token(self, name: str, role: str = "user", namespaces: list[str] | None = None) -> TokenCreated:
        body = {"name": name, "role": role, "namespaces": list(namespaces or [])}
        return TokenCreated.model_validate(self.client._request("POST", "/v1/tokens", json=body).json())

    def tokens(self) -> list[TokenInfo]:
        return [TokenInfo.model_validate(t) for t in self.client._request("GET", "/v1/tokens").json()]

    def revoke_token(self, name: str) -> TokenInfo:
        resp = self.client._request("DELETE", f"/v1/tokens/{quote(name, safe='')}")
        return TokenInfo.model_validate(resp.json())

    def audit(self, limit: int = 50) -> list[AuditEntry]:
        data = self.client._request("GET", "/v1/audit", params={"limit": limit}).json()
        return [AuditEntry.model_validate(e) for e in data]
