"""Who is calling, and what they may do: tokens per user with a role (RBAC-lite, see docs/security.md).

* :class:`TokenRegistry` turns an ``Authorization: Bearer`` header into a :class:`Principal`. The
  home's token file is the ``admin`` principal; the other tokens live hashed (SHA-256) in the store
  and are cached in memory, so a request never waits on SQLite to authenticate.
* :func:`rule_for` says what a path needs (open, any token, read or write a namespace, admin);
  :func:`denial` says why a principal may not. Routes whose namespace is in the body (submit) or
  that list several namespaces call :func:`authorize_namespace` / :func:`scoped_list`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import HTTPException, Request

from jobsched.server.errors import Conflict, Invalid, NotFound
from jobsched.spec.access import Role, TokenCreated, TokenInfo, TokenRequest
from jobsched.store.tokens import TokenRow, TokenTable

ADMIN_NAME = "admin"  # the principal of $JOBSCHED_HOME/token
T = TypeVar("T")


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    namespaces: frozenset[str] = frozenset()  # empty: every namespace (admin; unscoped viewer)

    def can_read(self, ns: str) -> bool:
        return self.role is Role.admin or not self.namespaces or ns in self.namespaces

    def can_write(self, ns: str) -> bool:
        return self.role is Role.admin or (self.role is Role.user and ns in self.namespaces)

    def __str__(self) -> str:
        spaces = f", namespaces {', '.join(sorted(self.namespaces))}" if self.namespaces else ""
        return f"token {self.name!r} (role {self.role.value}{spaces})"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRegistry:
    """The admin token plus, with a store, the issued tokens."""

    def __init__(self, admin_token: str, table: TokenTable | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if not admin_token:
            raise ValueError("token: must not be empty")
        self._admin = digest(admin_token)
        self.table, self.clock = table, clock
        self._lock = threading.Lock()
        self._active = {r.digest: _principal(r) for r in (table.all() if table else []) if r.revoked_at is None}

    def authenticate(self, header: str | None) -> Principal | None:
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        d = digest(given.strip())
        if hmac.compare_digest(d, self._admin):
            return Principal(ADMIN_NAME, Role.admin)
        return self._active.get(d)  # keyed by digest: timing can tell nothing about the token

    def create(self, req: TokenRequest) -> TokenCreated:
        if self.table is None:
            raise NotFound("tokens: this server keeps no token store")
        if req.name == ADMIN_NAME:
            raise Conflict(f"name: {ADMIN_NAME!r} is the home token's name")
        token = "jst_" + secrets.token_urlsafe(32)
        row = TokenRow(req.name, digest(token), req.role.value, tuple(req.namespaces), self.clock())
        with self._lock:
            if not self.table.insert(row):
                raise Conflict(f"name: token {req.name!r} already exists (names of revoked tokens stay taken)")
            self._active[row.digest] = _principal(row)
        return TokenCreated(**_info(row).model_dump(), token=token)

    def revoke(self, name: str) -> TokenInfo:
        if name == ADMIN_NAME:
            raise Invalid(f"name: {ADMIN_NAME!r} is the home token; to replace it, delete "
                          "$JOBSCHED_HOME/token and restart the server")
        if self.table is None or not self.table.revoke(name, self.clock()):
            raise NotFound(f"token {name!r} not found")
        with self._lock:
            self._active = {d: p for d, p in self._active.items() if p.name != name}
        return next(t for t in self.list() if t.name == name)

    def list(self) -> list[TokenInfo]:
        home = TokenInfo(name=ADMIN_NAME, role=Role.admin, source="home")
        return [home, *(_info(r) for r in (self.table.all() if self.table else []))]


def _principal(r: TokenRow) -> Principal:
    return Principal(r.name, Role(r.role), frozenset(r.namespaces))


def _info(r: TokenRow) -> TokenInfo:
    return TokenInfo(name=r.name, role=Role(r.role), namespaces=list(r.namespaces),
                     created_at=r.created_at, revoked_at=r.revoked_at)


# -- what a path needs --------------------------------------------------------------------------
OPEN, ANY, WRITE_ANY, ADMIN = "open", "any", "write", "admin"
_SCOPED = re.compile(r"^/v1/(?:jobs|workflows)/([^/]+)/([^/]+)(?:/.*)?$")
_READ_METHODS = ("GET", "HEAD")


def rule_for(method: str, path: str) -> tuple[str, str | None]:
    """(need, namespace): ``open``; ``any`` token; ``read``/``write`` of ``namespace``; ``write``
    somewhere (the route checks the body's namespace); ``admin``. Unknown writes need admin."""
    read = method in _READ_METHODS
    if path == "/healthz" and read:
        return OPEN, None
    if path.startswith(("/v1/tokens", "/v1/audit")):
        return ADMIN, None
    if m := _SCOPED.match(path):
        return ("read" if read else "write"), m.group(1)
    if read:
        return ANY, None
    if path in ("/v1/jobs", "/v1/workflows"):
        return WRITE_ANY, None
    if path == "/v1/workflows/lint":
        return ANY, None
    return ADMIN, None  # queue apply, node operations, anything new


def denial(p: Principal, need: str, ns: str | None) -> str | None:
    """Why ``p`` may not do it (a 403 message), or None."""
    if need in (OPEN, ANY) or p.role is Role.admin:
        return None
    if need == ADMIN:
        return f"forbidden: {p} may not do this: it needs role admin"
    if p.role is Role.viewer and need != "read":
        return f"forbidden: {p} is read-only"
    if need == "read" and ns is not None and not p.can_read(ns):
        return f"forbidden: {p} may not read namespace {ns!r}"
    if need == "write" and ns is not None and not p.can_write(ns):
        return f"forbidden: {p} may not write namespace {ns!r}"
    return None


def principal(request: Request) -> Principal | None:
    return request.scope.get("state", {}).get("principal")  # type: ignore[no-any-return]


def authorize_namespace(request: Request, manifest: Any) -> None:
    """For a submit: 403 unless the caller may write the manifest's namespace; notes the object
    (namespace/name) for the audit log."""
    meta = manifest.get("metadata") if isinstance(manifest, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    ns = meta.get("namespace", "default")
    request.scope.setdefault("state", {})["audit_object"] = f"{ns}/{meta.get('name', '')}"
    p = principal(request)
    if p is not None and not p.can_write(str(ns)):
        raise HTTPException(403, f"forbidden: {p} may not write namespace {ns!r}")


def scoped_list(request: Request, namespace: str | None, fetch: Callable[[str | None], list[T]],
                key: Callable[[T], Any]) -> list[T]:
    """``fetch`` for the namespaces the caller may read: 403 for an explicit other namespace."""
    p = principal(request)
    if p is None or not p.namespaces or p.role is Role.admin:
        return fetch(namespace)
    if namespace is not None:
        if not p.can_read(namespace):
            raise HTTPException(403, f"forbidden: {p} may not read namespace {namespace!r}")
        return fetch(namespace)
    spaces = sorted(p.namespaces)
    return fetch(spaces[0]) if len(spaces) == 1 else sorted((x for ns in spaces for x in fetch(ns)), key=key)


def readable_namespaces(request: Request, namespace: str | None) -> list[str] | None:
    """The namespaces a listing covers for the caller: None for every one (admin, unscoped viewer,
    or no principal), else the explicit ``namespace`` (403 if the caller may not read it) or the
    caller's own."""
    p = principal(request)
    if p is None or not p.namespaces or p.role is Role.admin:
        return None if namespace is None else [namespace]
    if namespace is not None:
        if not p.can_read(namespace):
            raise HTTPException(403, f"forbidden: {p} may not read namespace {namespace!r}")
        return [namespace]
    return sorted(p.namespaces)
