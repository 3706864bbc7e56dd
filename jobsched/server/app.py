"""The HTTP API (FastAPI): thin routes over :class:`JobServiceAPI`, bearer-token auth on every path
but ``/healthz``, roles and namespaces checked by :class:`jobsched.server.access.AccessControl`;
the web dashboard (``/dashboard``, :mod:`jobsched.dashboard`) checks its own session cookie.

Errors map to ``{"detail": "<field path>: <message>"}``: SpecError/Invalid 422, TooLarge 413,
NotFound 404, Conflict 409, a missing or wrong token 401, a role or namespace the token lacks 403, a
request body over the cap 413 (``bodylimit.py``); a full disk under the home 507 ("no space left on
HOME", nothing stored), a store that fails 503. Routes are plain ``def``: FastAPI runs them in its
thread pool, so a slow one never blocks the event loop, and the store serves their reads on
connections of their own (never behind a controller transaction).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jobsched.dashboard import is_dashboard_path, make_routers
from jobsched.server import tenancy
from jobsched.server.access import AccessControl
from jobsched.server.admin_routes import make_admin_router
from jobsched.server.audit import AuditLog
from jobsched.server.bodylimit import DEFAULT_MAX_BODY, BodyLimit
from jobsched.server.errors import Conflict, Invalid, NotFound, TooLarge
from jobsched.server.metrics import Metrics
from jobsched.server.paging import DEFAULT_PAGE, MAX_PAGE
from jobsched.server.service import JobServiceAPI
from jobsched.server.tenancy import Role
from jobsched.spec.api import DryRunResult, EventInfo, JobList, JobStatus, NodeStatus, QueueStatus, ServerInfo
from jobsched.spec.errors import SpecError
from jobsched.spec.limits import MAX_OFFSET
from jobsched.store.sqlite import StoreFull, is_disk_full
from jobsched.version import __version__

# Documents the scheme in the OpenAPI spec; the middleware below enforces it on every path.
_bearer = HTTPBearer(auto_error=False, description="The token in $JOBSCHED_HOME/token")


def _loc(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "<root>"


def _install_error_handlers(app: FastAPI) -> None:
    def handler(code: int) -> Callable[[Request, Exception], JSONResponse]:
        def handle(_: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=code)
        return handle

    for exc_type, code in ((SpecError, 422), (Invalid, 422), (TooLarge, 413), (NotFound, 404), (Conflict, 409)):
        app.add_exception_handler(exc_type, handler(code))

    def request_invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        lines = []
        for e in exc.errors():
            if e.get("type") == "json_invalid":
                err = (e.get("ctx") or {}).get("error", "")
                lines.append(f"body: invalid JSON at character {e['loc'][-1]}: {err}".rstrip(": "))
            elif tuple(e.get("loc", ())) == ("body",) and e.get("type") == "missing":
                lines.append("body: a JSON manifest is required")
            else:
                lines.append(f"{_loc(e.get('loc', ()))}: {e.get('msg', 'invalid')}")
        return JSONResponse({"detail": "\n".join(lines)}, status_code=422)

    app.add_exception_handler(RequestValidationError, request_invalid)

    def store_failed(_: Request, exc: Exception) -> JSONResponse:
        if is_disk_full(exc):  # nothing was stored: the client may retry once there is space
            detail = str(exc) if isinstance(exc, StoreFull) else f"no space left on HOME: {exc}"
            return JSONResponse({"detail": detail}, status_code=507)
        if isinstance(exc, sqlite3.DatabaseError):
            return JSONResponse({"detail": f"the store is unavailable: {exc} (see /healthz)"}, status_code=503)
        raise exc

    for exc_type in (sqlite3.DatabaseError, OSError):
        app.add_exception_handler(exc_type, store_failed)


def _routes(service: JobServiceAPI, metrics: Metrics) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/jobs", status_code=201, response_model=JobStatus, tags=["jobs"],
            responses={200: {"model": DryRunResult, "description": "dryRun=true: nothing stored"}})
    def submit(request: Request, manifest: dict[str, Any] = Body(..., description="TrainingJob manifest"),
               dry_run: bool = Query(False, alias="dryRun")) -> Any:
        tenancy.authorize_namespace(request, manifest)
        if dry_run:
            return JSONResponse(service.dry_run(manifest).model_dump(mode="json"), status_code=200)
        return service.submit(manifest)

    @r.get("/v1/jobs", response_model=JobList, tags=["jobs"])
    def list_jobs(request: Request, namespace: str | None = None, phase: str | None = None,
                  queue: str | None = None,
                  limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="jobs per page"),
                  continue_: str | None = Query(None, alias="continue", max_length=2048,
                                                description="the previous page's continue token")) -> JobList:
        spaces = tenancy.readable_namespaces(request, namespace)  # 403 for an explicit other one
        if spaces is not None and len(spaces) > 1:  # a user of several namespaces: each, merged
            return JobList(items=sorted((j for ns in spaces for j in service.list(namespace=ns, phase=phase,
                                                                                   queue=queue)),
                                        key=lambda j: (j.created_at or 0, j.namespace, j.name)))
        ns = spaces[0] if spaces else namespace
        return service.list_page(namespace=ns, phase=phase, queue=queue, limit=limit, continue_=continue_)

    @r.get("/v1/jobs/{namespace}/{name}", response_model=JobStatus, tags=["jobs"])
    def get_job(namespace: str, name: str) -> JobStatus:
        return service.get(namespace, name)

    @r.delete("/v1/jobs/{namespace}/{name}", response_model=JobStatus, tags=["jobs"])
    def delete(namespace: str, name: str) -> JobStatus:
        return service.delete(namespace, name)

    @r.post("/v1/jobs/{namespace}/{name}/cancel", response_model=JobStatus, tags=["jobs"])
    def cancel(namespace: str, name: str) -> JobStatus:
        return service.cancel(namespace, name)

    @r.get("/v1/jobs/{namespace}/{name}/events", response_model=list[EventInfo], tags=["jobs"])
    def events(namespace: str, name: str) -> list[EventInfo]:
        return service.events(namespace, name)

    @r.get("/v1/jobs/{namespace}/{name}/logs", response_class=PlainTextResponse, tags=["jobs"],
           responses={200: {"headers": {"X-Next-Offset": {"description": "offset to ask for next"},
                                        "X-Job-Terminal": {"description": "true once finished"}}}})
    def logs(namespace: str, name: str, replica: int | None = Query(None, ge=0, le=MAX_OFFSET),
             attempt: int | None = Query(None, ge=0, le=MAX_OFFSET), offset: int = Query(0, ge=0)) -> Response:
        # With a replica, a byte offset (a file position: below 2^63); without, X-Next-Offset's
        # cursor, 40 bits per rank, of which only the job's ranks are read.
        if replica is not None and offset > MAX_OFFSET:
            raise SpecError(f"a byte offset must be less than 2^63, got {offset}", "offset")
        text, next_offset, terminal = service.logs(namespace, name, rank=replica, attempt=attempt,
                                                   offset=offset)
        return PlainTextResponse(text, headers={"X-Next-Offset": str(next_offset),
                                                "X-Job-Terminal": "true" if terminal else "false"})

    @r.get("/v1/queues", response_model=list[QueueStatus], tags=["queues"])
    def queues() -> list[QueueStatus]:
        return service.queues()

    @r.put("/v1/queues", response_model=QueueStatus, tags=["queues"])
    def apply_queue(manifest: dict[str, Any] = Body(..., description="Queue manifest")) -> QueueStatus:
        return service.apply_queue(manifest)

    @r.get("/v1/nodes", response_model=list[NodeStatus], tags=["nodes"])
    def nodes() -> list[NodeStatus]:
        return service.nodes()

    @r.get("/v1/info", response_model=ServerInfo, tags=["server"])
    def info() -> ServerInfo:
        return service.info()

    @r.get("/healthz", tags=["server"], responses={503: {"description": "unhealthy, with the reason"}})
    def healthz() -> Response:
        health = getattr(service, "health", None)
        why = health() if health is not None else None
        if why:
            return JSONResponse({"ok": False, "reason": why}, status_code=503)
        return JSONResponse({"ok": True})

    @r.get("/metrics", response_class=PlainTextResponse, tags=["server"])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return r


def create_app(service: JobServiceAPI, metrics: Metrics, token: str,
               extra_routers: Iterable[APIRouter] = (), tokens: tenancy.TokenRegistry | None = None,
               audit: AuditLog | None = None, max_body: int = DEFAULT_MAX_BODY) -> FastAPI:
    """The API app over ``service``; ``extra_routers`` (e.g. workflow routes) share the auth.
    ``token`` is the admin token; ``tokens`` (over the store) adds the issued ones. Request bodies
    over ``max_body`` bytes get 413."""
    if not token:
        raise ValueError("token: must not be empty")
    if max_body < 1:
        raise ValueError(f"max_body: must be at least 1 byte, got {max_body}")
    registry = tokens or tenancy.TokenRegistry(token)
    extra_routers = list(extra_routers)
    app = FastAPI(title="jobsched", version=__version__,
                  description="Gang scheduler for ML training jobs. Every path but /healthz needs a "
                              "bearer token (docs/security.md).")
    _install_error_handlers(app)
    deps = [Depends(_bearer)]  # documentation only (security scheme in /openapi.json)
    app.include_router(_routes(service, metrics), dependencies=deps)
    for router in extra_routers:
        app.include_router(router, dependencies=deps)
    workflows = next((getattr(r, "workflow_controller", None) for r in extra_routers
                      if getattr(r, "workflow_controller", None) is not None), None)

    def admin_token(t: str) -> bool:  # the dashboard shows every namespace: admins only, for now
        who = registry.authenticate(f"Bearer {t}")
        return who is not None and who.role is Role.admin

    codes, dashboard = make_routers(service, admin_token, workflows)
    app.include_router(codes, dependencies=deps)
    app.include_router(dashboard)
    app.include_router(make_admin_router(registry, audit), dependencies=deps)
    app.add_middleware(BodyLimit, limit=max_body)
    # outermost: 401/403 before anything is read
    app.add_middleware(AccessControl, registry=registry, audit=audit, is_open=is_dashboard_path)
    return app
