"""WorkflowController: submit, lint, status, list, cancel and logs of Argo Workflows, and the loop
that reconciles active workflows (every step is a jobsched TrainingJob run by a :class:`JobRunner`)."""

from __future__ import annotations

import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobsched.spec.base import _dns_label
from jobsched.workflows import lint
from jobsched.workflows.engine import Operator
from jobsched.workflows.model import Workflow
from jobsched.workflows.runner import JobRunner, ServiceRunner
from jobsched.workflows.state import WorkflowState, WorkflowSummary, summary
from jobsched.workflows.store import WorkflowStore


class WorkflowNotFound(LookupError):
    pass


class WorkflowExists(ValueError):
    pass


class WorkflowController:
    def __init__(self, runner: JobRunner, store_path: Path | str, workdir: Path | str,
                 clock: Callable[[], float] = time.time, interval: float = 0.1) -> None:
        self.runner, self.clock, self.interval = runner, clock, interval
        self.workdir = Path(workdir)
        self.store = WorkflowStore(store_path)
        self._lock = threading.RLock()
        self._active: dict[tuple[str, str], tuple[WorkflowState, Workflow]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        for ns, name in self.store.names(active_only=True):  # resume after a restart
            st = self.store.load(ns, name)
            if st is not None:
                self._active[(ns, name)] = (st, Workflow.model_validate(st.manifest))

    @classmethod
    def for_runtime(cls, runtime: Any, **kwargs: Any) -> WorkflowController:
        return cls(ServiceRunner(runtime.service), runtime.store_path,
                   Path(runtime.home) / "workflows", **kwargs)

    # ---- API ---------------------------------------------------------------------------------------
    def lint(self, manifest: dict[str, Any], parameters: dict[str, str] | None = None) -> list[str]:
        _, warnings = lint.load(manifest, parameters)
        return warnings

    def submit(self, manifest: dict[str, Any], parameters: dict[str, str] | None = None) -> WorkflowState:
        wf, warnings = lint.load(manifest, parameters)
        params = {p.name: (parameters or {}).get(p.name, p.value or "") for p in wf.spec.arguments.parameters}
        ns = wf.metadata.namespace
        with self._lock:
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
            self._active[(ns, name)] = (st, wf)
        self._wake.set()
        return st.model_copy(deep=True)

    def get(self, namespace: str, name: str) -> WorkflowState:
        with self._lock:
            if (namespace, name) in self._active:
                return self._active[(namespace, name)][0].model_copy(deep=True)
        st = self.store.load(namespace, name)
        if st is None:
            raise WorkflowNotFound(f"workflow {namespace}/{name} not found")
        return st

    def list(self, namespace: str | None = None) -> list[WorkflowSummary]:
        return [summary(self.get(ns, name)) for ns, name in self.store.names(namespace)]

    def cancel(self, namespace: str, name: str) -> WorkflowState:
        with self._lock:
            entry = self._active.get((namespace, name))
            if entry is None:
                return self.get(namespace, name)  # finished already (or NotFound)
            entry[0].cancelled = True
            self._reconcile_one(*entry)
            return entry[0].model_copy(deep=True)

    def logs(self, namespace: str, name: str) -> str:
        st = self.get(namespace, name)
        out: list[str] = []
        pods = sorted((n for n in st.nodes.values() if n.attempts), key=lambda n: n.started_at or 0)
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
            st = self.get(namespace, name)
            if st.done or time.monotonic() > deadline:
                return st
            if self._thread is None:
                self.reconcile()
            time.sleep(self.interval / 2)

    # ---- the loop ----------------------------------------------------------------------------------
    def reconcile(self) -> int:
        """One pass over every active workflow; returns how many are still active."""
        with self._lock:
            for key, (st, wf) in list(self._active.items()):
                self._reconcile_one(st, wf)
                if st.done:
                    del self._active[key]
                    self.store.forget(*key)
            return len(self._active)

    def _reconcile_one(self, st: WorkflowState, wf: Workflow) -> None:
        before = st.model_dump_json()
        try:
            Operator(st, wf, self.runner, self.clock(), self.workdir).operate()
        except Exception as e:  # noqa: BLE001 - a bug must not stop the other workflows
            st.phase, st.message, st.finished_at = "Error", f"internal error: {e!r}", self.clock()
            for n in st.nodes.values():  # leave no step running for a workflow that ended
                if n.job is not None:
                    self.runner.cancel(st.namespace, n.job)
                    n.job = None
        if st.model_dump_json() != before:
            self.store.save(st)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="workflow-controller", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            self.reconcile()
            # At most half the time reconciling, however large the workflows get.
            self._wake.wait(max(self.interval, time.monotonic() - t))
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.store.close()
