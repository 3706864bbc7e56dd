"""HTTP routes for Argo Workflows (``/v1/workflows``), included by the app when this module exists.

``make_router(runtime)`` also starts the :class:`WorkflowController` over the runtime (resuming the
workflows stored in the runtime's SQLite file) and stops it when the app shuts down.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import PlainTextResponse, Response

from jobsched.server import tenancy
from jobsched.server.errors import Conflict, NotFound
from jobsched.workflows.controller import NotSuspended, WorkflowController, WorkflowExists, WorkflowNotFound
from jobsched.workflows.state import WorkflowSummary, describe


def make_router(runtime: Any, controller: WorkflowController | None = None) -> APIRouter:
    ctl = controller or WorkflowController.for_runtime(runtime)
    ctl.start()
    r = APIRouter(prefix="/v1/workflows", tags=["workflows"], on_shutdown=[ctl.stop])
    r.workflow_controller = ctl  # type: ignore[attr-defined]

    def call(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except WorkflowNotFound as e:
            raise NotFound(str(e)) from None
        except (WorkflowExists, NotSuspended) as e:
            raise Conflict(str(e)) from None

    @r.post("/lint")
    def lint(manifest: dict[str, Any] = Body(..., embed=True),
             parameters: dict[str, str] = Body(default_factory=dict, embed=True)) -> dict[str, Any]:
        return {"warnings": ctl.lint(manifest, parameters)}

    @r.post("", status_code=201)
    def submit(request: Request,
               manifest: dict[str, Any] = Body(..., embed=True, description="Argo Workflow manifest"),
               parameters: dict[str, str] = Body(default_factory=dict, embed=True)) -> dict[str, Any]:
        tenancy.authorize_namespace(request, manifest)
        return describe(call(ctl.submit, manifest, parameters))

    @r.post("/documents", status_code=201)
    def submit_documents(request: Request,
                         manifests: list[dict[str, Any]] = Body(..., embed=True, description=(
                             "the documents of one file: Workflows, WorkflowTemplates, "
                             "ClusterWorkflowTemplates, CronWorkflows")),
                         parameters: dict[str, str] = Body(default_factory=dict, embed=True)) -> dict[str, Any]:
        for m in manifests:
            tenancy.authorize_namespace(request, m)
        return {"items": call(ctl.submit_documents, manifests, parameters)}

    @r.get("/crons")
    def list_crons() -> list[dict[str, Any]]:
        return ctl.crons.describe_all()

    @r.get("", response_model=list[WorkflowSummary])
    def list_workflows(request: Request, namespace: str | None = Query(None)) -> list[WorkflowSummary]:
        return tenancy.scoped_list(request, namespace, ctl.list,
                                   key=lambda w: (w.created_at, w.namespace, w.name))

    @r.get("/{namespace}/{name}")
    def get(namespace: str, name: str) -> dict[str, Any]:
        return call(ctl.status, namespace, name)

    @r.post("/{namespace}/{name}/cancel")
    def cancel(namespace: str, name: str) -> dict[str, Any]:
        return describe(call(ctl.cancel, namespace, name))

    @r.post("/{namespace}/{name}/resume")
    def resume(namespace: str, name: str,
               node: str | None = Body(None, embed=True, max_length=253,
                                       description="only the suspended node of this name or display name"),
               parameters: dict[str, str] = Body(default_factory=dict, embed=True,
                                                 description="outputs.parameters with valueFrom.supplied")
               ) -> dict[str, Any]:
        return describe(call(ctl.resume, namespace, name, node, parameters))

    @r.get("/{namespace}/{name}/logs", response_class=PlainTextResponse)
    def logs(namespace: str, name: str) -> Response:
        return PlainTextResponse(call(ctl.logs, namespace, name))

    return r
