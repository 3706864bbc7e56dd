"""Steps that run no job of their own (Argo's agent and the controller run them): ``suspend``, ``http``
and ``resource``, and ``data`` (refused at submit; one stored before that rule ends in Error). Their
blocking calls (HTTP requests, Kubernetes API calls) run on :class:`Calls`, a small pool the
controller owns, so a slow endpoint never holds up a pass: a step starts a call on one pass and
reads its outcome on a later one.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import yaml

from jobsched.spec.duration import parse_duration
from jobsched.workflows.fanout import OperatorParts
from jobsched.workflows.model import Template
from jobsched.workflows.render import Unresolved, substitute, substitute_all
from jobsched.workflows.state import NodeStatus

if TYPE_CHECKING:
    pass

AGENT_KINDS = ("suspend", "http", "resource", "data")
RESOURCE_POLL_S = 1.0  # a resource step with conditions reads its object at most this often


class Calls:
    """Blocking calls in flight, by key (the node, and what it waits for), on ``workers`` threads."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="wf-agent")
        self._calls: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()

    def call(self, key: str, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` under ``key``, unless a call under it is in flight."""
        with self._lock:
            if key not in self._calls:
                self._calls[key] = self._pool.submit(fn, *args)

    def outcome(self, key: str) -> tuple[str, Any]:
        """("missing", None): never started here (a restart); ("running", None); ("done", result);
        ("error", message)."""
        with self._lock:
            f = self._calls.get(key)
            if f is None:
                return "missing", None
            if not f.done():
                return "running", None
            del self._calls[key]
        e = f.exception()
        if e is not None:
            return "error", f"{type(e).__name__}: {e}"
        return "done", f.result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class AgentMixin(OperatorParts):

    def set_phase(self, n: NodeStatus, phase: str, message: str | None = None) -> NodeStatus:
        raise NotImplementedError

    def export_globals(self, tmpl: Template, params: dict[str, str]) -> None:
        raise NotImplementedError

    def template_outputs(self, n: NodeStatus, tmpl: Template, scope: dict[str, str]) -> NodeStatus:
        raise NotImplementedError

    def run_agent(self, n: NodeStatus, tmpl: Template, local: dict[str, str]) -> NodeStatus:
        if tmpl.suspend is not None:
            return self.run_suspend(n, tmpl, local)
        if tmpl.http is not None:
            return self.run_http(n, tmpl, local)
        if tmpl.resource is not None:
            return self.run_resource(n, tmpl, local)
        from jobsched.workflows.lint import DATA_HINT

        return self.set_phase(n, "Error", DATA_HINT)

    def run_suspend(self, n: NodeStatus, tmpl: Template, local: dict[str, str]) -> NodeStatus:
        """Running until resumed, or until ``duration`` has passed since it started (Argo: "20" is
        seconds); then Succeeded, its ``valueFrom.supplied`` outputs from the resume, else their
        ``default`` (a supplied output with neither fails the node, as Argo's resume refuses it)."""
        if n.phase == "Pending":
            n.phase, n.started_at = "Running", n.started_at or self.now
        assert tmpl.suspend is not None
        duration = tmpl.suspend.duration
        if not n.resumed:
            if duration is None:
                return n
            try:
                seconds = parse_duration(substitute(duration, local))
            except (ValueError, Unresolved) as e:
                return self.set_phase(n, "Error", f"suspend.duration: {e}")
            if self.now - (n.started_at or self.now) < seconds:
                return n
        params: dict[str, str] = {}
        for p in tmpl.outputs.parameters:
            vf = p.value_from
            if vf is None or vf.supplied is None:
                continue
            value = n.supplied.get(p.name, vf.default)
            if value is None:
                return self.set_phase(n, "Failed", f"outputs.parameters.{p.name}: not supplied at resume "
                                                   "and no valueFrom.default")
            params[p.name] = value
        if params:
            n.outputs = {**n.outputs, "parameters": params}
        return self.set_phase(n, "Succeeded", "resumed" if n.resumed else None)

    def run_http(self, n: NodeStatus, tmpl: Template, local: dict[str, str]) -> NodeStatus:
        """Start the request (on the controller's call pool) and, on a later pass, judge its response
        (jobsched/workflows/httpstep.py): ``outputs.result`` is the body."""
        from jobsched.workflows import httpstep

        calls = self.hooks.calls
        if calls is None or not httpstep.enabled():
            return self.set_phase(n, "Error", "http steps are turned off on this server (JOBSCHED_WORKFLOW_HTTP=0)")
        try:
            sub = Template.model_validate(substitute_all(tmpl.model_dump(
                mode="json", by_alias=True, exclude_none=True, exclude={"metrics"}), {**local, "node.name": n.name}))
        except (Unresolved, ValueError) as e:
            return self.set_phase(n, "Error", str(e))
        h = sub.http
        assert h is not None
        req = {"url": h.url, "method": h.method.upper(), "body": h.body, "verify": not h.insecure_skip_verify,
               "headers": [(x.name, x.value or "") for x in h.headers],
               "timeout": float(h.timeout_seconds) if h.timeout_seconds else httpstep.DEFAULT_TIMEOUT}
        key = f"{self.st.namespace}/{self.st.name}/{n.id}"
        if n.phase == "Pending":
            n.phase, n.started_at = "Running", n.started_at or self.now
            calls.call(key, httpstep.perform, req)
            return n
        state, got = calls.outcome(key)
        if state == "missing":  # started before a restart: send it again
            calls.call(key, httpstep.perform, req)
            return n
        if state == "running":
            return n
        if state == "error":
            return self.set_phase(n, "Failed", f"{h.method.upper()} {h.url}: {got}")
        n.outputs = {"result": got["body"]}
        why = httpstep.verdict(h.success_condition, req, got)
        if why is not None:
            return self.set_phase(n, "Failed", why)
        if sub.outputs.parameters:  # e.g. valueFrom.expression over outputs.result
            self.template_outputs(n, sub, {**local, "outputs.result": got["body"]})
            n.outputs = {"result": got["body"], **n.outputs}
            return n
        return self.set_phase(n, "Succeeded")

    def run_resource(self, n: NodeStatus, tmpl: Template, local: dict[str, str]) -> NodeStatus:
        """Do the action on the object (on the controller's call pool), then, with conditions, read
        the object (at most every RESOURCE_POLL_S) until failureCondition or successCondition holds
        (jobsched/workflows/resource.py). An action in flight at a restart is done again."""
        from jobsched.workflows import resource

        client, calls = getattr(self.runner, "resources", None), self.hooks.calls
        if client is None or calls is None:
            return self.set_phase(n, "Error", "resource steps need the Kubernetes backend")
        try:
            sub = Template.model_validate(substitute_all(tmpl.model_dump(
                mode="json", by_alias=True, exclude_none=True, exclude={"metrics"}), {**local, "node.name": n.name}))
            r = sub.resource
            assert r is not None
            target = resource.parse_flags(r.flags)
            if target.type is None:
                obj = resource.load_manifest(r.manifest or "")
                body: Any = None
            else:  # kubectl's TYPE NAME in flags; the manifest is the patch or partial object
                body = yaml.safe_load(r.manifest) if r.manifest else None
                obj = {"apiVersion": "", "kind": target.type}
            success = resource.parse_condition(r.success_condition) if r.success_condition else None
            failure = resource.parse_condition(r.failure_condition) if r.failure_condition else None
        except (Unresolved, ValueError, yaml.YAMLError) as e:
            return self.set_phase(n, "Error", f"resource: {e}")
        key = f"{self.st.namespace}/{self.st.name}/{n.id}"
        if n.phase == "Pending":
            n.phase, n.started_at = "Running", n.started_at or self.now
        if n.resource is None:  # the action: start it, or read its outcome
            state, got = calls.outcome(key)
            if state == "missing":
                if target.type is None:
                    calls.call(key, client.act, r.action, obj, self.st.namespace, r.merge_strategy,
                               target.ignore_not_found)
                else:
                    calls.call(key, client.act_on, r.action, target.type, target.name, target.selector,
                               target.namespace or self.st.namespace, body, r.merge_strategy,
                               target.ignore_not_found)
                return n
            if state == "running":
                return n
            if state == "error":
                return self.set_phase(n, "Failed", f"resource {r.action}: {got}")
            md = got.get("metadata") or {}
            n.resource = {"apiVersion": got.get("apiVersion") or obj["apiVersion"], "kind": got.get("kind") or obj["kind"],
                          "name": md.get("name", ""), "namespace": md.get("namespace") or self.st.namespace}
            n.polled_at = self.now
            current: Any = got
        else:  # waiting on the conditions: read the object now and then
            state, got = calls.outcome(key + "/get")
            if state in ("missing", "running"):
                if state == "missing" and self.now - (n.polled_at or 0) >= RESOURCE_POLL_S:
                    n.polled_at = self.now
                    ref = n.resource
                    calls.call(key + "/get", client.get, ref["apiVersion"], ref["kind"], ref["name"],
                               ref["namespace"])
                return n
            if state == "error":
                return self.set_phase(n, "Failed", f"resource get: {got}")
            if got is None:
                return self.set_phase(n, "Failed", f"{n.resource['kind']} {n.resource['name']!r} was deleted")
            current = got
        if r.action != "delete" and failure is not None and resource.holds(failure, current):
            return self.set_phase(n, "Failed", f"failureCondition {r.failure_condition!r} matched")
        if r.action != "delete" and success is not None and not resource.holds(success, current):
            return n  # not yet: read it again on a later pass
        params: dict[str, str] = {}
        for p in sub.outputs.parameters:
            vf = p.value_from
            if vf is None or vf.json_path is None:
                continue
            try:
                params[p.name] = resource.json_path(current, str(vf.json_path))
            except ValueError as e:
                if vf.default is None:
                    return self.set_phase(n, "Error", f"outputs.parameters.{p.name}: {e}")
                params[p.name] = vf.default
        n.outputs = {"parameters": params} if params else {}
        self.export_globals(sub, params)
        return self.set_phase(n, "Succeeded")
