"""Argo Workflows through the SDK: ``WorkflowsAPI(client)`` (the Client may expose it as
``client.workflows``).

>>> wf = WorkflowsAPI(Client())
>>> st = wf.submit("pipeline.yaml", parameters={"lr": "0.1"})
>>> st = wf.wait(st["name"])                       # the status dict of ``jobsched workflow status``
>>> print(wf.logs(st["name"]))
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from jobsched.sdk.errors import InvalidSpec, WaitTimeout

if TYPE_CHECKING:  # pragma: no cover
    from jobsched.sdk.client import Client

WorkflowLike = dict[str, Any] | str | Path
T = TypeVar("T")
DONE = ("Succeeded", "Failed", "Error")


def load_workflow(source: WorkflowLike) -> dict[str, Any]:
    """A manifest dict from a dict, a YAML file path or YAML text; errors name the file and line."""
    if isinstance(source, dict):
        return source
    from jobsched.workflows.lint import parse_yaml

    return _parsed(source, parse_yaml)


def load_documents(source: WorkflowLike) -> list[dict[str, Any]]:
    """Every document of a file or YAML text (Workflows, WorkflowTemplates, CronWorkflows...)."""
    if isinstance(source, dict):
        return [source]
    from jobsched.workflows.documents import parse_all

    return _parsed(source, parse_all)


def _parsed(source: str | Path, parse: Callable[[str | bytes, str], T]) -> T:
    """``parse(text, name)`` of a file path (read safely, named in errors) or of YAML text."""
    from jobsched.spec import yamlsafe
    from jobsched.spec.errors import SpecError
    from jobsched.workflows.lint import LintError

    text: str | bytes = str(source)
    name = "<manifest>"
    try:
        if isinstance(source, Path) or "\n" not in str(source):
            name = str(Path(source))
            text = yamlsafe.load_file(name)
        return parse(text, name)
    except (LintError, SpecError) as e:
        raise InvalidSpec(str(e)) from None


def _single_workflow(docs: list[dict[str, Any]]) -> bool:
    return len(docs) == 1 and docs[0].get("kind") == "Workflow"


def lint(source: WorkflowLike, parameters: dict[str, str] | None = None,
         max_loop_items: int | None = -1) -> list[str]:
    """Check a workflow locally (no server) like ``argo lint``; returns warnings, raises InvalidSpec.
    Loops are checked against ``max_loop_items`` (-1: the default server limit; None: not at all,
    leaving it to the server, whose limit may differ)."""
    from jobsched.workflows.documents import lint_all
    from jobsched.workflows.lint import LintError, load
    from jobsched.workflows.loops import MAX_LOOP_ITEMS

    docs = load_documents(source)
    limit = MAX_LOOP_ITEMS if max_loop_items == -1 else (max_loop_items or sys.maxsize)
    try:
        if _single_workflow(docs):
            return load(docs[0], parameters, limit)[1]
        return [w for item in lint_all(docs, parameters, max_loop_items=limit) for w in item.warnings]
    except LintError as e:
        prefix = f"{source}: " if isinstance(source, (str, Path)) and "\n" not in str(source) else ""
        raise InvalidSpec("\n".join(prefix + line for line in e.errors)) from None


def _path(namespace: str, name: str, *rest: str) -> str:
    return "/".join(["/v1/workflows", quote(namespace, safe=""), quote(name, safe=""), *rest])


class WorkflowsAPI:
    def __init__(self, client: Client) -> None:
        self.client = client

    def lint(self, source: WorkflowLike, parameters: dict[str, str] | None = None) -> list[str]:
        return lint(source, parameters)

    def submit(self, source: WorkflowLike, parameters: dict[str, str] | None = None) -> dict[str, Any]:
        """One Workflow: its status. A multi-document file (or a WorkflowTemplate / CronWorkflow):
        ``{"items": [...]}``, one entry per document (a Workflow's entry is its status)."""
        docs = load_documents(source)
        if not _single_workflow(docs):
            body = {"manifests": docs, "parameters": parameters or {}}
            items: dict[str, Any] = self.client._request("POST", "/v1/workflows/documents", json=body).json()
            return items
        body = {"manifest": docs[0], "parameters": parameters or {}}
        result: dict[str, Any] = self.client._request("POST", "/v1/workflows", json=body).json()
        return result

    def get(self, name: str, namespace: str = "default") -> dict[str, Any]:
        result: dict[str, Any] = self.client._request("GET", _path(namespace, name)).json()
        return result

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        params = {"namespace": namespace} if namespace else {}
        result: list[dict[str, Any]] = self.client._request("GET", "/v1/workflows", params=params).json()
        return result

    def cancel(self, name: str, namespace: str = "default") -> dict[str, Any]:
        result: dict[str, Any] = self.client._request("POST", _path(namespace, name, "cancel")).json()
        return result

    def resume(self, name: str, namespace: str = "default", node: str | None = None,
               parameters: dict[str, str] | None = None) -> dict[str, Any]:
        """Resume the workflow's suspended nodes (only ``node``, by name or display name, when
        given), supplying their ``valueFrom.supplied`` output ``parameters``; Conflict when
        nothing is suspended."""
        body = {"node": node, "parameters": dict(parameters or {})}
        result: dict[str, Any] = self.client._request("POST", _path(namespace, name, "resume"), json=body).json()
        return result

    def logs(self, name: str, namespace: str = "default") -> str:
        return self.client._request("GET", _path(namespace, name, "logs")).text

    def wait(self, name: str, namespace: str = "default", timeout: float | None = None,
             poll: float = 0.5, on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll until the workflow is Succeeded, Failed or Error; raise WaitTimeout after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            st = self.get(name, namespace)
            key = (st["phase"], st["progress"])
            if on_update is not None and key != last:
                on_update(st)
                last = key
            if st["phase"] in DONE:
                return st
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"workflow {namespace}/{name} still {st['phase']} after {timeout}s")
            time.sleep(poll)
