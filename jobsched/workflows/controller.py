"""WorkflowController: submit, lint, status, list, cancel and logs of Argo Workflows, and the loop
that reconciles active workflows (every step is a jobsched TrainingJob run by a :class:`JobRunner`).

Reads never wait on the loop: ``get``/``list``/``status`` answer from a snapshot published after
each pass (or from the store), and ``cancel`` stores an intent and wakes the loop, which honours it
before any further expansion. Across all workflows, at most ``limits.max_live_steps`` step jobs are
in flight; loops expand lazily within that (``fanout.py``).
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobsched.spec.base import _dns_label
from jobsched.workflows import documents, lint, refs
from jobsched.workflows.agent import Calls
from jobsched.workflows.cronctl import CronScheduler
from jobsched.workflows.engine import Operator
from jobsched.workflows.fanout import Budget, Hooks
from jobsched.workflows.loops import Limits
from jobsched.workflows.model import Workflow
from jobsched.workflows.runner import JobRunner, ServiceRunner
from jobsched.workflows.state import WorkflowState, WorkflowSummary, describe, summary
from jobsched.workflows.store import WorkflowStore


class WorkflowNotFound(LookupError):
    pass


class WorkflowExists(ValueError):
    pass


class NotSuspended(ValueError):
    """A resume that has nothing to resume: the workflow ended, or no node of it is suspended."""


class WorkflowController:
    def __init__(self, runner: JobRunner, store_path: Path | str, workdir: Path | str,
                 clock: Callable[[], float] = time.time, interval: float = 0.1,
                 limits: Limits | None = None) -> None:
        self.runner, self.clock, self.interval = runner, clock, interval
        self.limits = limits or Limits()
        self.workdir = Path(workdir)
        self.store = WorkflowStore(store_path)
        self._lock = threading.RLock()  # the loop's; API calls do not take it
        self._submit_lock = threading.Lock()
        self._active: dict[tuple[str, str], tuple[WorkflowState, Workflow]] = {}
        self._snap: dict[tuple[str, str], WorkflowState] = {}  # published after each pass
        self._cancels = self.store.cancel_requests()  # intents, stored before they are acted on
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._passed = threading.Condition()  # notified after every pass
        self.cancel_wait = 0.5  # seconds cancel waits for the loop to act before answering
        self.calls = Calls()  # http requests and Kubernetes calls of agent steps, beside the loop
        self._templates_path = self.workdir / "workflow-templates.json"
        self.templates: refs.Library = {}  # WorkflowTemplates submitted, for templateRef
        if self._templates_path.exists():
            self.templates = {(c, n): d for c, n, d in json.loads(self._templates_path.read_text())}
        self.crons = CronScheduler(self.workdir / "cron-workflows.json",
                                   lambda doc: self.submit(doc),
                                   lambda ns, name: (ns, name) in self._active,
                                   self._request_cancel)
        for ns, name in self.store.names(active_only=True):  # resume after a restart
            st = self.store.load(ns, name)
            if st is not None:
                st.cancelled = st.cancelled or (ns, name) in self._cancels
                self._active[(ns, name)] = (st, Workflow.model_validate(st.manifest))
                self._snap[(ns, name)] = st.model_copy(deep=True)

    @classmethod
    def for_runtime(cls, runtime: Any, **kwargs: Any) -> WorkflowController:
        kwargs.setdefault("limits", Limits.from_env())
        runner = ServiceRunner(runtime.service)
        # a backend that can run a container's own entrypoint (a step without `command`) says so
        runner.runs_entrypoints = bool(getattr(runtime.backend, "runs_entrypoints", False))
        # and one that reaches Kubernetes objects lends them to resource steps
        actions = getattr(runtime.backend, "object_actions", None)
        runner.resources = actions() if callable(actions) else None
        return cls(runner, runtime.store_path,
                   Path(runtime.home) / "workflows", **kwargs)

    # ---- API ---------------------------------------------------------------------------------------
    def lint(self, manifest: dict[str, Any], parameters: dict[str, str] | None = None) -> list[str]:
        _, warnings = lint.load(manifest, parameters, self.limits.max_loop_items)
        return warnings

    def submit(self, manifest: dict[str, Any], parameters: dict[str, str] | None = None,
               library: refs.Library | None = None) -> WorkflowState:
        """Lint and start one Workflow (``library``: WorkflowTemplates from the same file, besides
        those submitted before). A step without ``command`` needs a runner that runs entrypoints."""
        lib = {**self.templates, **(library or {})}
        wf, warnings = lint.load(manifest, parameters, self.limits.max_loop_items, lib)
        self._check_runnable(wf)
        manifest = refs.resolve(manifest, lib)
        params = {p.name: (parameters or {}).get(p.name, p.value or "") for p in wf.spec.arguments.parameters}
        ns = wf.metadata.namespace
        with self._submit_lock:
            name = wf.metadata.name
            if name is None:
                prefix = wf.metadata.generate_name or "workflow-"
                alphabet = string.ascii_lowercase + string.digits
                for _ in range(100):
                    name = prefix + "".join(secrets.choice(alphabet) for _ in range(5))
                    if not self.store.exists(ns, name):
                        break
            assert name is not None
            try:
                _dns_label(name)
                _dns_label(ns)
            except ValueError as e:
                raise lint.LintError([f"metadata.name: {e}"]) from None
            if (ns, name) in self._active or self.store.exists(ns, name):
                raise WorkflowExists(f"workflow {ns}/{name} already exists")
            stored = dict(manifest)
            stored["metadata"] = {**manifest.get("metadata", {}), "name": name, "namespace": ns}
            stored["metadata"].pop("generateName", None)
            wf = Workflow.model_validate(stored)
            st = WorkflowState(name=name, namespace=ns, uid=str(uuid.uuid4()), manifest=stored,
                               parameters=params, created_at=self.clock(), warnings=warnings)
            self.store.save(st)
            self._snap[(ns, name)] = st.model_copy(deep=True)
            self._active[(ns, name)] = (st, wf)
        self._wake.set()
        return st.model_copy(deep=True)

    def _check_runnable(self, wf: Workflow) -> None:
        """Refuse, with a hint, steps this server's backend cannot run: no ``command`` (the image's
        entrypoint) without a backend that runs images; ``resource`` steps without Kubernetes;
        ``containerSet`` on a backend of images; ``data`` anywhere (no artifact repositories)."""
        errs = []
        if not getattr(self.runner, "runs_entrypoints", False):
            errs += [f"{p}: not set; {lint.ENTRYPOINT_HINT}" for p in lint.entrypoint_only(wf)]
        if getattr(self.runner, "resources", None) is None:
            errs += [f"{p}: {lint.RESOURCE_HINT}" for p in lint.resource_steps(wf)]
        if getattr(self.runner, "runs_entrypoints", False):  # a backend of images: one container a pod
            errs += [f"{p}: {lint.CONTAINER_SET_HINT}" for p in lint.container_set_steps(wf)]
        errs += [f"{p}: {lint.DATA_HINT}" for p in lint.data_steps(wf)]  # on every backend
        if errs:
            raise lint.LintError(errs)

    def submit_documents(self, docs: list[dict[str, Any]],
                         parameters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """A multi-document file: every document is linted before anything is kept; then
        WorkflowTemplates are stored, CronWorkflows scheduled and Workflows started, in file order."""
        linted = documents.lint_all(docs, parameters, self.templates, self.limits.max_loop_items)
        same_file = refs.library_of(docs)
        for item in linted:
            if item.kind == "Workflow" and item.workflow:
                self._check_runnable(item.workflow)
        out: list[dict[str, Any]] = []
        for item in linted:
            if item.kind in refs.TEMPLATE_KINDS:
                self.templates.update(refs.library_of([item.manifest]))
                self._save_templates()
                out.append({"kind": item.kind, "name": item.name, "warnings": item.warnings})
            elif item.kind == "CronWorkflow":
                out.append({**self.crons.apply(item.manifest, self.clock()), "warnings": item.warnings})
            else:
                st = self.submit(item.manifest, parameters, same_file)
                out.append({"kind": "Workflow", **describe(st)})
        self._wake.set()
        return out

    def _save_templates(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = self._templates_path.with_suffix(".tmp")
        tmp.write_text(json.dumps([[c, n, d] for (c, n), d in self.templates.items()]))
        tmp.replace(self._templates_path)

    def get(self, namespace: str, name: str, archived: int = 1000) -> WorkflowState:
        """The workflow's state, with up to ``archived`` finished loop children put back into the
        tree (a large fan-out keeps the rest in the store; ``status`` says how many are left out)."""
        return self._get(namespace, name, archived)[0]

    def _get(self, namespace: str, name: str, archived: int) -> tuple[WorkflowState, int]:
        snap = self._snap.get((namespace, name))
        st = snap.model_copy(deep=True) if snap is not None else self.store.load(namespace, name)
        if st is None:
            raise WorkflowNotFound(f"workflow {namespace}/{name} not found")
        omitted = 0
        if archived and any(n.loop is not None for n in st.nodes.values()):
            for n in self.store.archived(namespace, name, limit=archived):
                st.nodes.setdefault(n.name, n)
                parent = st.nodes.get(n.parent) if n.parent else None
                if parent is not None and n.name not in parent.children:
                    parent.children.append(n.name)
            omitted = max(0, self.store.archived_count(namespace, name) - archived)
        return st, omitted

    def list(self, namespace: str | None = None) -> list[WorkflowSummary]:
        return [summary(self.get(ns, name, archived=0)) for ns, name in self.store.names(namespace)]

    def status(self, namespace: str, name: str, archived: int = 1000) -> dict[str, Any]:
        """``workflow status``: the live tree plus up to ``archived`` finished loop children."""
        return describe(*self._get(namespace, name, archived))

    def cancel(self, namespace: str, name: str) -> WorkflowState:
        """Store the intent, wake the loop and answer at once; the loop stops every step and
        expands nothing further (the workflow ends Failed, "Workflow terminated by user")."""
        st = self.get(namespace, name, archived=0)  # NotFound
        if st.done:
            return st
        self._request_cancel(namespace, name)
        if self._thread is None:  # no loop running (tests, tools): act on it here
            self.reconcile()
            return self.get(namespace, name)
        self._wake.set()
        deadline = time.monotonic() + self.cancel_wait
        with self._passed:  # usually the next pass ends it; never wait long for a busy loop
            while not (st := self.get(namespace, name, archived=0)).done and time.monotonic() < deadline:
                self._passed.wait(max(0.0, deadline - time.monotonic()))
        st.cancelled = True
        return st

    def resume(self, namespace: str, name: str, node: str | None = None,
               parameters: dict[str, str] | None = None) -> WorkflowState:
        """Resume the workflow's suspended nodes (Argo's ``argo resume``), or only those whose name
        or display name is ``node``; ``parameters`` are the nodes' ``valueFrom.supplied`` outputs
        (``argo node set --output-parameter``). Stored with the workflow before it answers; the
        loop's next pass finishes the nodes. NotSuspended when there is nothing to resume."""
        st = self.get(namespace, name, archived=0)  # NotFound
        if st.done:
            raise NotSuspended(f"workflow {namespace}/{name} has ended ({st.phase}): nothing to resume")
        with self._lock:
            entry = self._active.get((namespace, name))
            if entry is None:
                raise NotSuspended(f"workflow {namespace}/{name} is not running here: nothing to resume")
            live = entry[0]
            waiting = [n for n in live.nodes.values() if n.type == "Suspend" and n.phase == "Running"
                       and not n.resumed and (node is None or node in (n.name, n.display_name))]
            if not waiting:
                which = f"named {node!r} " if node is not None else ""
                raise NotSuspended(f"workflow {namespace}/{name} has no suspended node {which}to resume")
            for n in waiting:
                n.resumed, n.supplied = True, dict(parameters or {})
            self.store.save(live)
            self._snap[(namespace, name)] = live.model_copy(deep=True)
        self._wake.set()
        if self._thread is None:  # no loop running (tests, tools): act on it here
            self.reconcile()
        return self.get(namespace, name)

    def _request_cancel(self, namespace: str, name: str) -> None:
        """Record the intent; the next pass acts on it."""
        self.store.request_cancel(namespace, name, self.clock())
        self._cancels.add((namespace, name))

    def logs(self, namespace: str, name: str) -> str:
        st = self.get(namespace, name, archived=0)
        out: list[str] = []
        nodes = [*st.nodes.values(), *self.store.archived(namespace, name)]
        pods = sorted((n for n in nodes if n.attempts), key=lambda n: n.started_at or 0)
        for n in pods:
            for job in dict.fromkeys(a.job for a in n.attempts):
                try:
                    text = self.runner.logs(namespace, job)
                except Exception as e:  # noqa: BLE001
                    text = f"<logs unavailable: {e}>\n"
                out.extend(f"{n.display_name}: {line}" for line in text.splitlines())
        return "\n".join(out) + ("\n" if out else "")

    def wait(self, namespace: str, name: str, timeout: float = 60.0) -> WorkflowState:
        deadline = time.monotonic() + timeout
        while True:
            st = self.get(namespace, name, archived=0)
            if st.done or time.monotonic() > deadline:
                return self.get(namespace, name)
            if self._thread is None:
                self.reconcile()
            time.sleep(self.interval / 2)

    # ---- the loop ----------------------------------------------------------------------------------
    def reconcile(self) -> int:
        """One pass over every active workflow; returns how many are still active."""
        try:
            self.crons.tick(self.clock())
        except Exception:  # noqa: BLE001 - a bad schedule must not stop the workflows
            pass
        with self._lock:
            entries = list(self._active.items())
            live = sum(1 for _, (st, _) in entries for n in st.nodes.values() if n.job is not None)
            budget = Budget(self.limits.max_live_steps - live)  # shared by every workflow this pass
            for key, (st, wf) in entries:
                if self._stop.is_set():
                    break
                self._reconcile_one(st, wf, budget)
                if st.done:
                    del self._active[key]
                    self._snap.pop(key, None)  # the store has the final state
                    self.store.forget(*key)
            return len(self._active)

    def _reconcile_one(self, st: WorkflowState, wf: Workflow, budget: Budget | None = None) -> None:
        before = st.model_dump_json()
        key = (st.namespace, st.name)
        hooks = Hooks(self.limits, budget or Budget(self.limits.max_live_steps),
                      cancel_requested=lambda: key in self._cancels, stopping=self._stop.is_set,
                      archived=lambda parent: self.store.archived(st.namespace, st.name, parent),
                      calls=self.calls)
        try:
            Operator(st, wf, self.runner, self.clock(), self.workdir, hooks).operate()
        except Exception as e:  # noqa: BLE001 - a bug must not stop the other workflows
            st.phase, st.message, st.finished_at = "Error", f"internal error: {e!r}", self.clock()
            for n in st.nodes.values():  # leave no step running for a workflow that ended
                if n.job is not None:
                    self.runner.cancel(st.namespace, n.job)
                    n.job = None
        if st.model_dump_json() != before or st._archive:
            self.store.save(st)
            self._snap[key] = st.model_copy(deep=True)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="workflow-controller", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            self.reconcile()
            with self._passed:
                self._passed.notify_all()
            # At most half the time reconciling, however large the workflows get.
            self._wake.wait(max(self.interval, time.monotonic() - t))
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.calls.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():  # still in a pass: it stops at its next check; keep its store
                return
            self._thread = None
        self.store.close()
