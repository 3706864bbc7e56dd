"""The web dashboard, served by the jobsched server itself under ``/dashboard``.

Server-rendered HTML (Jinja2, autoescaped) over the same service layer as the HTTP API, with htmx
polling fragments for live updates and uPlot drawing the memory charts; both are vendored in
``static/`` so nothing is fetched from elsewhere at run time. Log-in: :mod:`.login`. See
docs/dashboard.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from jobsched.dashboard import login, more, pages, web
from jobsched.dashboard.sessions import Sessions
from jobsched.server.service import JobServiceAPI

PREFIX = web.PREFIX
STATIC = web.HERE / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def is_dashboard_path(path: str) -> bool:
    """Paths the dashboard guards itself (with its session cookie) instead of the bearer token."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def _static_routes(r: APIRouter) -> None:
    files = {p.name: p for p in STATIC.iterdir() if p.suffix in STATIC_TYPES}

    @r.get("/static/{filename}", include_in_schema=False)
    def static(filename: str) -> FileResponse:
        path = files.get(filename)
        if path is None:
            raise HTTPException(404, "no such file")
        return FileResponse(path, media_type=STATIC_TYPES[path.suffix],
                            headers={"Cache-Control": "public, max-age=3600",
                                     "X-Content-Type-Options": "nosniff"})


def make_routers(service: JobServiceAPI, token_ok: Callable[[str], bool], workflows: Any = None,
                 sim_dirs: list[Path] | None = None,
                 sessions: Sessions | None = None) -> tuple[APIRouter, APIRouter]:
    """(the API router that mints login codes, behind the bearer token; the dashboard's pages,
    behind the session cookie). ``workflows``: a WorkflowController, if workflows are enabled."""
    sessions = sessions or Sessions()
    pages_router = APIRouter(prefix=PREFIX, include_in_schema=False)
    _static_routes(pages_router)
    login.add_routes(pages_router, sessions, token_ok)
    pages.add_routes(pages_router, service, sessions)
    if sim_dirs is None:
        sim_dirs = more.sim_dirs(service.info().home)
    more.add_routes(pages_router, sessions, workflows, sim_dirs)  # last: it ends with the catch-all 404
    return login.api_router(sessions), pages_router


__all__ = ["PREFIX", "Sessions", "is_dashboard_path", "make_routers"]
