"""Workflow and node state: what the controller persists and ``workflow status`` shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

FULFILLED = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")
FAILED = ("Failed", "Error")


class AttemptRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job: str
    index: int = 0  # the retry number ({{retries}})
    phase: str = "Running"
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    memory_limit: int | None = None


class LoopState(BaseModel):
    """A loop (TaskGroup) expanded lazily: the item count, a cursor, and counters of the children
    that finished and were moved out of memory (``workflow_archive`` in the store)."""

    model_config = ConfigDict(extra="ignore")

    total: int
    next: int = 0  # index of the next item to materialise
    phases: dict[str, int] = Field(default_factory=dict)  # finished children by phase
    pods: int = 0  # Pod nodes in the finished children's subtrees
    pods_succeeded: int = 0
    failed: str | None = None  # the first child whose failure fails the loop
    failed_phase: str | None = None

    @property
    def finished(self) -> int:
        return sum(self.phases.values())


class NodeStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    display_name: str
    type: str  # Pod | DAG | Steps | StepGroup | TaskGroup | Skipped
    template: str | None = None
    phase: str = "Pending"
    parent: str | None = None
    children: list[str] = Field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    message: str | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)  # result, parameters, exitCode
    attempts: list[AttemptRecord] = Field(default_factory=list)
    job: str | None = None  # the job of the attempt in flight
    runtime_retries: bool = False  # the job's own maxRetries does the retrying
    next_retry_at: float | None = None
    deadline_s: float | None = None  # a podSpecPatch's activeDeadlineSeconds
    memory_floor: int | None = None  # after an OOM: at least this much memory next attempt
    notes: list[str] = Field(default_factory=list)
    loop: LoopState | None = None  # a TaskGroup's lazy expansion
    loop_index: int | None = None  # a loop child's item index
    resumed: bool = False  # a suspend node: `workflow resume` asked it to go on
    supplied: dict[str, str] = Field(default_factory=dict)  # its outputs.parameters given at resume
    resource: dict[str, str] | None = None  # a resource node's object (apiVersion, kind, name, namespace)
    polled_at: float | None = None  # when a resource node last read its object

    @property
    def fulfilled(self) -> bool:
        return self.phase in FULFILLED

    @property
    def failed(self) -> bool:
        return self.phase in FAILED


class WorkflowState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str = "default"
    uid: str
    manifest: dict[str, Any]
    parameters: dict[str, str] = Field(default_factory=dict)  # resolved workflow parameters
    outputs: dict[str, str] = Field(default_factory=dict)  # global outputs (globalName)
    phase: str = "Pending"  # Pending | Running | Succeeded | Failed | Error
    message: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    warnings: list[str] = Field(default_factory=list)
    nodes: dict[str, NodeStatus] = Field(default_factory=dict)  # by node name
    cancelled: bool = False
    # Finished loop children leaving memory: (group name, item index, the child's subtree); the
    # store moves them to workflow_archive in the same transaction as the rest of the state.
    _archive: list[tuple[str, int, list[NodeStatus]]] = PrivateAttr(default_factory=list)

    @property
    def done(self) -> bool:
        return self.phase in ("Succeeded", "Failed", "Error")


class WorkflowSummary(BaseModel):
    name: str
    namespace: str
    phase: str
    message: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    progress: str = "0/0"


def summary(st: WorkflowState) -> WorkflowSummary:
    pods = [n for n in st.nodes.values() if n.type == "Pod"]
    done = sum(1 for n in pods if n.phase == "Succeeded")
    total = len(pods)
    for n in st.nodes.values():  # loop children already moved out of memory
        if n.loop is not None:
            done, total = done + n.loop.pods_succeeded, total + n.loop.pods
    return WorkflowSummary(name=st.name, namespace=st.namespace, phase=st.phase, message=st.message,
                           created_at=st.created_at, started_at=st.started_at,
                           finished_at=st.finished_at, progress=f"{done}/{total}")


def describe(st: WorkflowState, omitted: int = 0) -> dict[str, Any]:
    """What ``workflow status`` shows: the workflow and every node, in start order (``omitted``:
    finished loop children left out of a large workflow's listing)."""
    nodes = sorted(st.nodes.values(), key=lambda n: (n.started_at or 0, n.name))
    return {
        "cancelRequested": st.cancelled, "nodesOmitted": omitted,
        "name": st.name, "namespace": st.namespace, "uid": st.uid, "phase": st.phase,
        "message": st.message, "createdAt": st.created_at, "startedAt": st.started_at,
        "finishedAt": st.finished_at, "parameters": st.parameters, "outputs": st.outputs, "warnings": st.warnings,
        "progress": summary(st).progress,
        "nodes": [{"id": n.id, "name": n.name, "displayName": n.display_name, "type": n.type,
                   "template": n.template, "phase": n.phase, "message": n.message,
                   "startedAt": n.started_at, "finishedAt": n.finished_at,
                   "attempts": len(n.attempts), "inputs": n.inputs, "outputs": n.outputs,
                   "jobs": [a.model_dump(mode="json") for a in n.attempts],
                   "children": n.children, "notes": n.notes,
                   **({"loop": n.loop.model_dump(mode="json")} if n.loop is not None else {})}
                  for n in nodes],
    }
