"""Jobs, job detail (with cancel), queues and nodes: pages over :class:`JobServiceAPI`.

Live parts are fragments that htmx polls (``/dashboard/fragments/...``); a finished job's fragment
stops asking.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from jobsched.dashboard import views, web
from jobsched.dashboard.sessions import Session, Sessions
from jobsched.server.errors import Invalid, NotFound
from jobsched.server.service import JobServiceAPI
from jobsched.spec.api import JobStatus
from jobsched.spec.status import JobPhase

MAX_ROWS = 500  # the jobs table shows the newest this many
LOG_TAIL_BYTES = 16384
LOG_TAIL_LINES = 100


def _filters(namespace: str | None, queue: str | None, phase: str | None) -> dict[str, str]:
    return {k: v for k, v in (("namespace", namespace), ("queue", queue), ("phase", phase)) if v}


def _log_tail(service: JobServiceAPI, job: JobStatus) -> str:
    if not job.attempts:
        return ""
    try:
        text, _, _ = service.logs(job.namespace, job.name)
    except NotFound:
        return ""
    lines = text[-LOG_TAIL_BYTES:].splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def add_routes(r: APIRouter, service: JobServiceAPI, sessions: Sessions) -> None:
    auth = web.guard(sessions)

    def jobs_ctx(namespace: str | None, queue: str | None, phase: str | None) -> dict[str, Any]:
        jobs = service.list(namespace=namespace, phase=phase, queue=queue)
        jobs.sort(key=lambda j: j.created_at or 0, reverse=True)
        return {"jobs": jobs[:MAX_ROWS], "total": len(jobs), "max_rows": MAX_ROWS,
                "filters": _filters(namespace, queue, phase)}

    @r.get("/", include_in_schema=False)
    def home(_: Session = Depends(auth)) -> Response:
        return RedirectResponse(f"{web.PREFIX}/jobs", status_code=303)

    @r.get("/jobs", response_class=HTMLResponse)
    def jobs_page(request: Request, namespace: str | None = None, queue: str | None = None,
                  phase: str | None = None, session: Session = Depends(auth)) -> HTMLResponse:
        namespace, queue, phase = namespace or None, queue or None, phase or None
        try:
            ctx = jobs_ctx(namespace, queue, phase)
        except Invalid as e:
            return web.render(request, "error.html", 400, session, title="Bad filter", message=str(e))
        all_jobs = service.list()
        ctx.update(namespaces=sorted({j.namespace for j in all_jobs}),
                   queues=[qs.name for qs in service.queues()], phases=[p.value for p in JobPhase])
        return web.render(request, "jobs.html", 200, session, **ctx)

    @r.get("/fragments/jobs", response_class=HTMLResponse)
    def jobs_fragment(request: Request, namespace: str | None = None, queue: str | None = None,
                      phase: str | None = None, session: Session = Depends(auth)) -> HTMLResponse:
        try:
            ctx = jobs_ctx(namespace or None, queue or None, phase or None)
        except Invalid as e:
            return web.render(request, "error_fragment.html", 400, session, message=str(e))
        return web.render(request, "jobs_table.html", 200, session, **ctx)

    def detail_ctx(namespace: str, name: str) -> dict[str, Any]:
        job = service.get(namespace, name)
        return {"job": job, "attempts": views.attempt_rows(job), "sizing": views.sizing_rows(job),
                "log_tail": _log_tail(service, job), "terminal": job.phase.is_terminal(),
                "events": list(reversed(job.events))}

    @r.get("/jobs/{namespace}/{name}", response_class=HTMLResponse)
    def job_page(request: Request, namespace: str, name: str,
                 session: Session = Depends(auth)) -> HTMLResponse:
        try:
            return web.render(request, "job.html", 200, session, **detail_ctx(namespace, name))
        except NotFound:
            return web.not_found(request, session, f"There is no job {namespace}/{name}.")

    @r.get("/fragments/jobs/{namespace}/{name}", response_class=HTMLResponse)
    def job_fragment(request: Request, namespace: str, name: str,
                     session: Session = Depends(auth)) -> HTMLResponse:
        try:
            return web.render(request, "job_live.html", 200, session, **detail_ctx(namespace, name))
        except NotFound:
            return web.render(request, "error_fragment.html", 404, session,
                              message=f"There is no job {namespace}/{name}.")

    @r.post("/jobs/{namespace}/{name}/cancel")
    async def cancel(request: Request, namespace: str, name: str,
                     session: Session = Depends(auth)) -> Response:
        data = await web.form(request)
        if not web.same_origin(request) or not sessions.csrf_ok(session, data.get("csrf")):
            return web.render(request, "error.html", 403, session, title="Forbidden",
                              message="The form's CSRF token does not match this session; reload the page.")
        try:
            await run_in_threadpool(service.cancel, namespace, name)
        except NotFound:
            return web.not_found(request, session, f"There is no job {namespace}/{name}.")
        return RedirectResponse(request.url_for("job_page", namespace=namespace, name=name).path,
                                status_code=303)

    @r.get("/queues", response_class=HTMLResponse)
    def queues_page(request: Request, session: Session = Depends(auth)) -> HTMLResponse:
        return web.render(request, "queues.html", 200, session, queues=views.queue_rows(service.queues()))

    @r.get("/fragments/queues", response_class=HTMLResponse)
    def queues_fragment(request: Request, session: Session = Depends(auth)) -> HTMLResponse:
        return web.render(request, "queues_table.html", 200, session,
                          queues=views.queue_rows(service.queues()))

    @r.get("/nodes", response_class=HTMLResponse)
    def nodes_page(request: Request, session: Session = Depends(auth)) -> HTMLResponse:
        return web.render(request, "nodes.html", 200, session, nodes=views.node_rows(service.nodes()))

    @r.get("/fragments/nodes", response_class=HTMLResponse)
    def nodes_fragment(request: Request, session: Session = Depends(auth)) -> HTMLResponse:
        return web.render(request, "nodes_table.html", 200, session, nodes=views.node_rows(service.nodes()))
