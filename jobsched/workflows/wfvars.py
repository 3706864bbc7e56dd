"""The ``{{workflow.*}}`` variables Argo defines (besides parameters and outputs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from jobsched.workflows.model import Workflow
from jobsched.workflows.state import FAILED, WorkflowState


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def workflow_variables(st: WorkflowState, wf: Workflow, now: float) -> dict[str, str]:
    started = st.started_at if st.started_at is not None else now
    created = datetime.fromtimestamp(st.created_at, UTC)
    out = {
        "workflow.name": st.name, "workflow.namespace": st.namespace, "workflow.uid": st.uid,
        "workflow.creationTimestamp": rfc3339(st.created_at),
        "workflow.creationTimestamp.RFC3339": rfc3339(st.created_at),
        "workflow.creationTimestamp.s": str(int(st.created_at)),
        "workflow.status": st.phase, "workflow.duration": f"{max(0.0, now - started):.6f}",
        "workflow.mainEntrypoint": wf.spec.entrypoint or "",
        "workflow.serviceAccountName": str(wf.spec.service_account_name or ""),
        "workflow.priority": str(wf.spec.priority or 0),
        "workflow.labels.json": json.dumps(wf.metadata.labels),
        "workflow.labels": json.dumps(wf.metadata.labels),
        "workflow.annotations.json": json.dumps(wf.metadata.annotations),
        "workflow.annotations": json.dumps(wf.metadata.annotations),
        **({"workflow.scheduledTime": wf.metadata.annotations["workflows.argoproj.io/scheduled-time"]}
           if "workflows.argoproj.io/scheduled-time" in wf.metadata.annotations else {}),
        **{f"workflow.labels.{k}": v for k, v in wf.metadata.labels.items()},
        **{f"workflow.annotations.{k}": v for k, v in wf.metadata.annotations.items()},
    }
    # strftime letters, as Argo's {{workflow.creationTimestamp.<X>}}
    for letter in "aAbBcCdDeFgGhHIjklmMnpRStTuUVwWxXyYzZ":
        out[f"workflow.creationTimestamp.{letter}"] = created.strftime(f"%{letter}")
    return out


def failures(st: WorkflowState) -> str:
    """``{{workflow.failures}}``: a JSON list of the failed step nodes."""
    return json.dumps([
        {"displayName": n.display_name, "message": n.message or "", "templateName": n.template or "",
         "phase": n.phase, "podName": n.id,
         "finishedAt": rfc3339(n.finished_at) if n.finished_at is not None else ""}
        for n in st.nodes.values() if n.phase in FAILED and n.type == "Pod"])
