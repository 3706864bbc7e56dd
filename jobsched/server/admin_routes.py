"""Admin-only routes (the middleware enforces the role): ``/v1/tokens`` to issue, list and revoke
tokens, ``/v1/audit`` to read the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import ValidationError

from jobsched.server.audit import AuditLog
from jobsched.server.errors import NotFound
from jobsched.server.tenancy import TokenRegistry
from jobsched.spec.access import AuditEntry, TokenCreated, TokenInfo, TokenRequest
from jobsched.spec.errors import SpecError, format_validation_error


def make_admin_router(registry: TokenRegistry, audit: AuditLog | None) -> APIRouter:
    r = APIRouter(tags=["admin"])

    @r.post("/v1/tokens", status_code=201, response_model=TokenCreated)
    def create_token(request: Request, body: dict[str, Any] = Body(...)) -> TokenCreated:
        request.scope.setdefault("state", {})["audit_object"] = f"token/{body.get('name', '')}"
        try:
            req = TokenRequest.model_validate(body)
        except ValidationError as e:
            raise SpecError(format_validation_error(e).replace("<root>: ", "")) from None
        return registry.create(req)

    @r.get("/v1/tokens", response_model=list[TokenInfo])
    def list_tokens() -> list[TokenInfo]:
        return registry.list()

    @r.delete("/v1/tokens/{name}", response_model=TokenInfo)
    def revoke_token(name: str) -> TokenInfo:
        return registry.revoke(name)

    @r.get("/v1/audit", response_model=list[AuditEntry])
    def read_audit(limit: int = Query(50, ge=1, le=10000)) -> list[dict[str, Any]]:
        if audit is None:
            raise NotFound("audit: this server keeps no audit log")
        return audit.tail(limit)

    return r
