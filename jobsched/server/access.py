"""The ASGI middleware in front of every route: authenticate the bearer token (401), check the
path's rule for the principal (403), and write the audit line of every mutating call.

The audit line is written when the response starts, before the client can read it, so a client
that got an answer finds its line in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobsched.server.audit import AuditLog
from jobsched.server.tenancy import OPEN, TokenRegistry, denial, rule_for

_QUIET = ("GET", "HEAD", "OPTIONS")


class AccessControl:
    def __init__(self, app: ASGIApp, registry: TokenRegistry, audit: AuditLog | None = None,
                 is_open: Callable[[str], bool] | None = None) -> None:
        """``is_open``: paths that authenticate themselves (the dashboard's session cookie)."""
        self.app, self.registry, self.audit, self.is_open = app, registry, audit, is_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        need, ns = (OPEN, None) if self.is_open is not None and self.is_open(path) else rule_for(method, path)
        state = scope.setdefault("state", {})
        who = None
        if need != OPEN:
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            who = self.registry.authenticate(header)
            state["principal"] = who
            if who is None:
                detail = "missing bearer token" if not header else "invalid bearer token"
                resp = JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await self._answer(scope, receive, send, resp)
                return
            reason = denial(who, need, ns)
            if reason is not None:
                await self._answer(scope, receive, send, JSONResponse({"detail": reason}, status_code=403))
                return
        if self.audit is None or method in _QUIET:
            await self.app(scope, receive, send)
            return
        started = False

        async def audited_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                self._log(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except BaseException:
            if not started:
                self._log(scope, 500)
            raise

    async def _answer(self, scope: Scope, receive: Receive, send: Send, resp: JSONResponse) -> None:
        if self.audit is not None and scope["method"] not in _QUIET:
            self._log(scope, resp.status_code)
        await resp(scope, receive, send)

    def _log(self, scope: Scope, status: int) -> None:
        assert self.audit is not None
        state: dict[str, Any] = scope.get("state", {})
        who = state.get("principal")
        client = scope.get("client")
        m = _object(scope["path"])
        self.audit.write(who=who.name if who else None, role=who.role.value if who else None,
                         method=scope["method"], path=scope["path"], object=state.get("audit_object") or m,
                         client=f"{client[0]}:{client[1]}" if client else None, status=status)


def _object(path: str) -> str | None:
    parts = path.strip("/").split("/")
    if len(parts) >= 4 and parts[1] in ("jobs", "workflows"):
        return f"{parts[2]}/{parts[3]}"
    if len(parts) >= 3 and parts[1] == "tokens":
        return f"token/{parts[2]}"
    return None
