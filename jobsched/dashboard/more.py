"""Workflows (the DAG drawn with each node's phase) and simulator results (the allocation plots).

Simulator plots are the PNG/SVG files in ``$JOBSCHED_HOME/sim/`` and in ``$JOBSCHED_SIM_DIR`` (write
them there with ``jobsched simulate ... --plot $JOBSCHED_HOME/sim/allocation.png``). Only files
listed here are served, by name, never a path the client chose.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from jobsched.dashboard import dag, views, web
from jobsched.dashboard.sessions import Session, Sessions

IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def sim_dirs(home: str | None) -> list[Path]:
    dirs = [Path(home) / "sim"] if home else []
    extra = os.environ.get("JOBSCHED_SIM_DIR")
    if extra:
        dirs.append(Path(extra).expanduser())
    return dirs


def sim_images(dirs: list[Path]) -> dict[str, Path]:
    """{name shown and served: file}, newest first; the first directory wins a name clash."""
    found: dict[str, Path] = {}
    for d in dirs:
        try:
            files = sorted((p for p in d.iterdir() if p.suffix.lower() in IMAGE_TYPES and p.is_file()),
                           key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            continue
        for p in files:
            found.setdefault(p.name, p)
    return found


def add_routes(r: APIRouter, sessions: Sessions, workflows: Any, dirs: list[Path]) -> None:
    auth = web.guard(sessions)

    @r.get("/workflows", response_class=HTMLResponse)
    def workflows_page(request: Request, session: Session = Depends(auth)) -> HTMLResponse:
        items = workflows.list(None) if workflows is not None else []
        return web.render(request, "workflows.html", 200, session, enabled=workflows is not None,
                          workflows=sorted(items, key=lambda w: w.created_at, reverse=True))

    def workflow_ctx(namespace: str, name: str) -> dict[str, Any] | None:
        if workflows is None:
            return None
        try:
            st = workflows.get(namespace, name)
        except LookupError:
            return None
        nodes = sorted(st.nodes.values(), key=lambda n: (n.started_at or 0, n.name))
        return {"wf": st, "graph": dag.layout(st), "nodes": nodes, "done": st.done}

    @r.get("/workflows/{namespace}/{name}", response_class=HTMLResponse)
    def workflow_page(request: Request, namespace: str, name: str,
                      session: Session = Depends(auth)) -> HTMLResponse:
        ctx = workflow_ctx(namespace, name)
        if ctx is None:
            return web.not_found(request, session, f"There is no workflow {namespace}/{name}.")
        return web.render(request, "workflow.html", 200, session, **ctx)

    @r.get("/fragments/workflows/{namespace}/{name}", response_class=HTMLResponse)
    def workflow_fragment(request: Request, namespace: str, name: str,
                          session: Session = Depends(auth)) -> HTMLResponse:
        ctx = workflow_ctx(namespace, name)
        if ctx is None:
            return web.render(request, "error_fragment.html", 404, session,
                              message=f"There is no workflow {namespace}/{name}.")
        return web.render(request, "workflow_live.html", 200, session, **ctx)

    @r.get("/sim", response_class=HTMLResponse)
    def sim_page(request: Request, session: Session = Depends(auth)) -> HTMLResponse:
        images = [{"name": n, "dir": str(p.parent), "time": views.fmt_time(p.stat().st_mtime)}
                  for n, p in sim_images(dirs).items()]
        return web.render(request, "sim.html", 200, session, images=images, dirs=[str(d) for d in dirs])

    @r.get("/sim/files/{filename}")
    def sim_file(request: Request, filename: str, session: Session = Depends(auth)) -> Response:
        path = sim_images(dirs).get(filename)
        if path is None:
            return web.not_found(request, session, f"There is no simulator plot named {filename}.")
        return FileResponse(path, media_type=IMAGE_TYPES[path.suffix.lower()],
                            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                                     "X-Content-Type-Options": "nosniff"})

    @r.get("/{rest:path}", include_in_schema=False)
    def unknown(request: Request, rest: str, session: Session = Depends(auth)) -> HTMLResponse:
        return web.not_found(request, session, "There is no such dashboard page.")
