"""Shared by the dashboard's routes: the Jinja2 environment (autoescape on for every template), the
session guard, and the response headers every page carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse

from jobsched.dashboard import views
from jobsched.dashboard.dag import phase_class
from jobsched.dashboard.sessions import Session, Sessions
from jobsched.spec.quantity import format_bytes

PREFIX = "/dashboard"
COOKIE = "jobsched_session"
HERE = Path(__file__).resolve().parent

# Scripts only from this origin (no inline script runs: chart data travels as application/json).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # a login link's code never leaves in a Referer
    "Cache-Control": "no-store",
}

env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                         undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
env.filters.update(bytes=format_bytes, time=views.fmt_time, cost=views.fmt_cost, phase=phase_class)


def render(request: Request, template: str, status: int = 200, session: Session | None = None,
           **ctx: Any) -> HTMLResponse:
    html = env.get_template(template).render(prefix=PREFIX, session=session, request_path=request.url.path,
                                             **ctx)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def not_found(request: Request, session: Session | None, what: str) -> HTMLResponse:
    return render(request, "error.html", 404, session, title="Not found", message=what)


def guard(sessions: Sessions):  # type: ignore[no-untyped-def]
    """A dependency: the request's session, else a redirect to the log-in page (a 401 that tells
    htmx to go there, for a fragment)."""

    def dependency(request: Request) -> Session:
        s = sessions.get(request.cookies.get(COOKIE))
        if s is not None:
            return s
        if request.headers.get("HX-Request"):
            raise HTTPException(401, "log in again", headers={"HX-Redirect": f"{PREFIX}/login"})
        if request.method != "GET":
            raise HTTPException(401, "not logged in to the dashboard")
        raise HTTPException(303, "log in first", headers={"Location": f"{PREFIX}/login"})

    return dependency


def same_origin(request: Request) -> bool:
    """Refuse a browser's cross-origin form post (defence in depth beside the SameSite=Strict cookie
    and the CSRF token): by ``Sec-Fetch-Site`` when the browser sends it, and by ``Origin``."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":  # not sent, or hidden by a referrer policy
        return site is not None or origin is None
    return origin.split("://", 1)[-1] == request.headers.get("host", "")


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form body (no multipart needed for the dashboard's small forms)."""
    from urllib.parse import parse_qs

    body = (await request.body())[:16384].decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body).items()}
