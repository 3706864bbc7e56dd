"""Logging in and out of the dashboard, and the API route that mints one-time login codes.

``POST /v1/dashboard/login`` sits behind the API's bearer token like every ``/v1`` path: whoever holds
the token gets a code that opens one browser session. ``GET /dashboard/login?code=...`` spends it
and sets the session cookie; the log-in form also takes the token itself (pasted, never in a URL).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from jobsched.dashboard import web
from jobsched.dashboard.sessions import Session, Sessions


def api_router(sessions: Sessions) -> APIRouter:
    r = APIRouter(tags=["dashboard"])

    @r.post("/v1/dashboard/login")
    def login_code() -> dict[str, Any]:
        """A single-use login code for the dashboard; open ``path`` on this server within
        ``expiresIn`` seconds."""
        code = sessions.mint_code()
        return {"code": code, "path": f"{web.PREFIX}/login?code={code}", "expiresIn": int(sessions.code_ttl)}

    return r


def _logged_in(request: Request, sessions: Sessions, session: Session) -> HTMLResponse:
    # A page of our own that moves on (not a redirect): a SameSite=Strict cookie set by a navigation
    # that came from elsewhere (a terminal, a mail) is then sent by the same-site navigation that follows.
    resp = web.render(request, "logged_in.html", 200, session, target=f"{web.PREFIX}/jobs")
    resp.set_cookie(web.COOKIE, session.id, max_age=int(sessions.session_ttl), path=web.PREFIX,
                    httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return resp


def add_routes(r: APIRouter, sessions: Sessions, token_ok: Callable[[str], bool]) -> None:
    @r.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, code: str | None = None) -> HTMLResponse:
        if code is None:
            return web.render(request, "login.html", 200, None, error=None)
        session = sessions.redeem(code)
        if session is None:
            return web.render(request, "login.html", 401, None,
                              error="This login link was already used or has expired. "
                                    "Run `jobsched dashboard` for a new one, or paste the token below.")
        return _logged_in(request, sessions, session)

    @r.post("/login", response_class=HTMLResponse)
    async def login_with_token(request: Request) -> HTMLResponse:
        token = (await web.form(request)).get("token", "").strip()
        if not web.same_origin(request) or not token or not token_ok(token):
            return web.render(request, "login.html", 401, None, error="That token is not valid for this server.")
        return _logged_in(request, sessions, sessions.open())

    @r.post("/logout")
    async def logout(request: Request, session: Session = Depends(web.guard(sessions))) -> Response:
        data = await web.form(request)
        if not web.same_origin(request) or not sessions.csrf_ok(session, data.get("csrf")):
            return web.render(request, "error.html", 403, session, title="Forbidden",
                              message="The form's CSRF token does not match this session.")
        sessions.close(session.id)
        resp = RedirectResponse(f"{web.PREFIX}/login", status_code=303)
        resp.delete_cookie(web.COOKIE, path=web.PREFIX)
        return resp
