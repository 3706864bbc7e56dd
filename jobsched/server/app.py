"""The HTTP API (FastAPI): thin routes over :class:`JobServiceAPI`, bearer-token auth on every path.

Errors map to ``{"detail": "<field path>: <message>"}``: SpecError/Invalid 422, TooLarge 413,
NotFound 404, Conflict 409, a missing or wrong token 401. Routes are plain ``def``: FastAPI runs
them in its thread pool, so a slow one never blocks the event loop, and the store serves their
reads on connections of their own (never behind a controller transaction).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from jobsched.server.auth import token_matches
from jobsched.server.errors import Conflict, Invalid, NotFound, TooLarge
from jobsched.server.metrics import Metrics
from jobsched.server.paging import DEFAULT_PAGE, MAX_PAGE
from jobsched.server.service import JobServiceAPI
from jobsched.spec.api import EventInfo, JobList, JobStatus, NodeStatus, QueueStatus, ServerInfo
from jobsched.spec.errors import SpecError
from jobsched.version import __version__

# Documents the scheme in the OpenAPI spec; the middleware below enforces it on every path.
_bearer = HTTPBearer(auto_error=False, description="The token in $JOBSCHED_HOME/token")


class BearerAuth:
    """Pure ASGI middleware: 401 unless ``Authorization: Bearer <token>`` matches."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not token_matches(header, self.token):
                detail = "missing bearer token" if not header else "invalid bearer token"
                resp = JSONResponse({"detail": detail}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


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


def _routes(service: JobServiceAPI, metrics: Metrics) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/jobs", status_code=201, response_model=JobStatus, tags=["jobs"])
    def submit(manifest: dict[str, Any] = Body(..., description="TrainingJob manifest")) -> JobStatus:
        return service.submit(manifest)

    @r.get("/v1/jobs", response_model=JobList, tags=["jobs"])
    def list_jobs(namespace: str | None = None, phase: str | None = None, queue: str | None = None,
                  limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="jobs per page"),
                  continue_: str | None = Query(None, alias="continue", max_length=2048,
                                                description="the previous page's continue token")) -> JobList:
        return service.list_page(namespace=namespace, phase=phase, queue=queue, limit=limit, continue_=continue_)

    @r.get("/v1/jobs/{namespace}/{name}", response_model=JobStatus, tags=["jobs"])
    def get_job(namespace: str, name: str) -> JobStatus:
        return service.get(namespace, name)

    @r.post("/v1/jobs/{namespace}/{name}/cancel", response_model=JobStatus, tags=["jobs"])
    def cancel(namespace: str, name: str) -> JobStatus:
        return service.cancel(namespace, name)

    @r.get("/v1/jobs/{namespace}/{name}/events", response_model=list[EventInfo], tags=["jobs"])
    def events(namespace: str, name: str) -> list[EventInfo]:
        return service.events(namespace, name)

    @r.get("/v1/jobs/{namespace}/{name}/logs", response_class=PlainTextResponse, tags=["jobs"],
           responses={200: {"headers": {"X-Next-Offset": {"description": "offset to ask for next"},
                                        "X-Job-Terminal": {"description": "true once finished"}}}})
    def logs(namespace: str, name: str, replica: int | None = Query(None, ge=0),
             attempt: int | None = Query(None, ge=0), offset: int = Query(0, ge=0)) -> Response:
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

    @r.get("/healthz", tags=["server"])
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @r.get("/metrics", response_class=PlainTextResponse, tags=["server"])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return r


def create_app(service: JobServiceAPI, metrics: Metrics, token: str,
               extra_routers: Iterable[APIRouter] = ()) -> FastAPI:
    """The API app over ``service``; ``extra_routers`` (e.g. workflow routes) share the auth."""
    if not token:
        raise ValueError("token: must not be empty")
    app = FastAPI(title="jobsched", version=__version__,
                  description="Gang scheduler for ML training jobs. Every path needs the bearer token.")
    _install_error_handlers(app)
    deps = [Depends(_bearer)]  # documentation only (security scheme in /openapi.json)
    app.include_router(_routes(service, metrics), dependencies=deps)
    for router in extra_routers:
        app.include_router(router, dependencies=deps)
    app.add_middleware(BearerAuth, token=token)
    return app
