"""Container and script nodes: one jobsched TrainingJob per attempt, retries, deadlines, outputs.

Retries: when the retryStrategy is a plain limit (policy Always/OnFailure, no expression, no backoff,
no ``{{retries}}`` in the template or a podSpecPatch), the step's TrainingJob gets ``maxRetries = limit`` and the
runtime retries it itself, resizing memory after an OOM kill. Otherwise the engine retries: one job
per attempt, ``{{retries}}`` substituted anew, and after an OOM kill the next attempt gets at least
the runtime's recommended memory (else 1.5x the killed limit).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobsched.spec.status import JobPhase
from jobsched.workflows import expr, pods
from jobsched.workflows.fanout import OperatorParts
from jobsched.workflows.model import RetryStrategy, Template
from jobsched.workflows.render import Unresolved, substitute, substitute_all
from jobsched.workflows.state import AttemptRecord, NodeStatus
from jobsched.workflows.util import parse_duration

if TYPE_CHECKING:
    pass

UNLIMITED_RETRIES = 100
_RETRIES = re.compile(r"{{\s*retries\s*}}|{{=[^}]*\bretries\b")


class LeafMixin(OperatorParts):
    _running: list[NodeStatus] | None

    def halted(self) -> bool:
        raise NotImplementedError

    def set_phase(self, n: NodeStatus, phase: str, message: str | None = None) -> NodeStatus:
        raise NotImplementedError

    def export_globals(self, tmpl: Template, params: dict[str, str]) -> None:
        raise NotImplementedError

    # ---- helpers -------------------------------------------------------------------------------
    def step_dir(self, n: NodeStatus) -> Path:
        return self.workdir / self.st.namespace / self.st.name / n.id

    def retry_strategy(self, tmpl: Template) -> RetryStrategy | None:
        return tmpl.retry_strategy or self.wf.spec.retry_strategy

    def patches(self, tmpl: Template, scope: dict[str, str] | None = None) -> list[str]:
        """The workflow's and the template's podSpecPatch; the workflow's substituted with ``scope``
        (the template's already is, as part of the template)."""
        wf_patch = self.wf.spec.pod_spec_patch
        if wf_patch and scope is not None:
            wf_patch = substitute(wf_patch, scope)
        return [p for p in (wf_patch, tmpl.pod_spec_patch) if p]

    def runtime_retries(self, tmpl: Template, local: dict[str, str]) -> int | None:
        """maxRetries for the job when the runtime can do the retrying, else None."""
        rs = self.retry_strategy(tmpl)
        if rs is None:
            return 0
        if rs.expression or rs.backoff or rs.retry_policy in ("OnError", "OnTransientError"):
            return None
        text = json.dumps(tmpl.model_dump(mode="json", exclude_none=True)) + "".join(self.patches(tmpl))
        if _RETRIES.search(text):  # {{retries}} must change between attempts: one job per attempt
            return None
        return self.limit(rs, local)

    def limit(self, rs: RetryStrategy, local: dict[str, str]) -> int:
        if rs.limit is None:
            return UNLIMITED_RETRIES
        return min(int(substitute(rs.limit, local)), UNLIMITED_RETRIES)

    # ---- the node --------------------------------------------------------------------------------
    def run_leaf(self, n: NodeStatus, tmpl: Template, local: dict[str, str]) -> NodeStatus:
        if n.job is not None:
            return self.poll(n, tmpl, local)
        if n.next_retry_at is not None and self.now < n.next_retry_at:
            return n
        if not self.may_start(n, tmpl):
            return n
        retry = len(n.attempts)
        try:
            max_retries = self.runtime_retries(tmpl, local)
            n.runtime_retries = max_retries is not None and max_retries > 0
            scope = {**local, "retries": str(retry), "node.name": n.name, "pod.name": n.id}
            sub = Template.model_validate(substitute_all(  # metrics: not acted on, and may
                tmpl.model_dump(mode="json", by_alias=True, exclude_none=True,  # name outputs
                                exclude={"metrics"}), scope))
            sub.node_selector = {**self.wf.spec.node_selector, **sub.node_selector}
            notes: list[str] = []
            manifest, pod = pods.build_job(
                tmpl=sub, workflow=self.st.name, namespace=self.st.namespace, node_name=n.name,
                retry=retry, step_dir=self.step_dir(n), wf_annotations=self.wf.metadata.annotations,
                patches=self.patches(sub, scope), max_retries=max_retries or 0,
                memory_floor=n.memory_floor, notes=notes)
        except (Unresolved, ValueError, expr.ExprError) as e:
            return self.set_phase(n, "Error", str(e))
        n.notes = sorted(set(n.notes + notes))
        try:
            job = self.runner.submit(manifest)
        except Exception as e:  # noqa: BLE001 - the service's SpecError/Invalid/Conflict
            if type(e).__name__ != "Conflict":
                return self.set_phase(n, "Error", f"submitting the step's job: {e}")
            job = manifest["metadata"]["name"]  # submitted before a restart: adopt it
        limits = manifest["spec"]["template"]["resources"].get("limits", {})
        from jobsched.spec.quantity import memory_bytes

        n.job = job
        self.hooks.budget.left -= 1
        if self._running is not None:
            self._running.append(n)
        n.attempts.append(AttemptRecord(job=job, index=retry, phase="Pending",
                                        memory_limit=memory_bytes(limits["memory"]) if "memory" in limits else None))
        ads = pod.get("activeDeadlineSeconds")
        n.deadline_s = float(ads) if ads is not None else None
        return n

    def may_start(self, n: NodeStatus, tmpl: Template) -> bool:
        """Within the server's live-step budget, the workflow's and every enclosing template's
        parallelism, and not once a cancel or shutdown is requested."""
        if self.hooks.budget.left <= 0 or self.halted():
            return False
        if self._running is None:  # scanned once per pass, then kept up to date
            self._running = [x for x in self.st.nodes.values() if x.job is not None]
        self._running = running = [x for x in self._running if x.job is not None]
        limit = self.wf.spec.parallelism
        if limit and len(running) >= limit:
            return False
        anc = self.st.nodes.get(n.parent) if n.parent else None
        while anc is not None:
            at = self.wf.template(anc.template) if anc.template else None
            if at is not None and at.parallelism:
                under = sum(1 for x in running if self.is_under(x, anc.name))
                if under >= at.parallelism:
                    return False
            anc = self.st.nodes.get(anc.parent) if anc.parent else None
        return True

    def is_under(self, x: NodeStatus, ancestor: str) -> bool:
        p = x.parent
        while p is not None:
            if p == ancestor:
                return True
            node = self.st.nodes.get(p)
            p = node.parent if node else None
        return False

    def poll(self, n: NodeStatus, tmpl: Template, local: dict[str, str]) -> NodeStatus:
        assert n.job is not None
        try:
            st = self.runner.status(self.st.namespace, n.job)
        except Exception as e:  # noqa: BLE001 - NotFound: the job vanished
            n.job = None
            return self.set_phase(n, "Error", f"job lost: {e}")
        cur = n.attempts[-1]
        if n.runtime_retries and st.attempts:
            self.sync_runtime_attempts(n, st)
            cur = n.attempts[-1]
        elif st.attempts:
            a = st.attempts[-1]
            cur.started_at = cur.started_at or a.started_at
        if st.phase in (JobPhase.RUNNING,) or (st.attempts and st.attempts[-1].started_at):
            n.phase = "Running"
            cur.phase = "Running" if not st.phase.is_terminal() else cur.phase
        deadline = self.deadline(tmpl, local, n)
        if (deadline is not None and not st.phase.is_terminal() and cur.started_at is not None
                and self.now - cur.started_at > deadline):
            self.runner.cancel(self.st.namespace, n.job)
            cur.phase, cur.finished_at, cur.reason = "Failed", self.now, "DeadlineExceeded"
            n.job = None
            return self.set_phase(n, "Failed", "Pod was active on the node longer than the specified deadline")
        if not st.phase.is_terminal():
            return n
        job = n.job
        n.job = None
        last = st.attempts[-1] if st.attempts else None
        cur.finished_at = (last.finished_at if last else None) or self.now
        cur.exit_code = last.exit_code if last else None
        if st.phase == JobPhase.SUCCEEDED:
            cur.phase = "Succeeded"
            return self.collect(n, tmpl, local, job, cur.exit_code)
        phase, code, reason, message = pods.classify(st)
        cur.phase, cur.reason, cur.message = phase, reason, message
        n.outputs["exitCode"] = "" if code is None else str(code)
        if n.runtime_retries or not self.should_retry(n, tmpl, local, phase, code, reason, message):
            return self.set_phase(n, phase, message)
        if reason == "OOMKilled":
            n.memory_floor = pods.memory_after_oom(st)
        n.next_retry_at = self.now + self.backoff(tmpl, local, len(n.attempts) - 1)
        return n

    def sync_runtime_attempts(self, n: NodeStatus, st: Any) -> None:
        recs = []
        for a in st.attempts:
            phase = ("Succeeded" if a.reason == "Completed" else
                     ("Error" if a.reason in pods.TRANSIENT else "Failed")) if a.reason else "Running"
            recs.append(AttemptRecord(job=n.job or "", index=a.index, phase=phase, started_at=a.started_at,
                                      finished_at=a.finished_at, exit_code=a.exit_code, reason=a.reason,
                                      message=a.message, memory_limit=a.resources.limits.get("memory")))
        n.attempts = recs

    def deadline(self, tmpl: Template, local: dict[str, str], n: NodeStatus) -> float | None:
        if n.deadline_s is not None:
            return n.deadline_s
        if tmpl.active_deadline_seconds is None:
            return None
        return parse_duration(substitute(tmpl.active_deadline_seconds, local))

    def collect(self, n: NodeStatus, tmpl: Template, local: dict[str, str], job: str,
                code: int | None) -> NodeStatus:
        n.outputs["exitCode"] = "0" if code is None else str(code)
        try:
            log = self.runner.logs(self.st.namespace, job)
        except Exception as e:  # noqa: BLE001
            log = ""
            n.notes.append(f"logs unavailable: {e}")
        n.outputs["result"] = pods.result_text(log)
        if tmpl.container_set is not None:  # its "main" container's output (workers/containerset.py)
            main_out = self.step_dir(n) / "containerset-result"
            n.outputs["result"] = pods.result_text(main_out.read_text()) if main_out.exists() else ""
        sub = Template.model_validate(substitute_all(
            tmpl.model_dump(mode="json", by_alias=True, exclude_none=True), local, strict=False))
        params, errors = pods.read_outputs(sub, self.step_dir(n))
        n.outputs["parameters"] = params
        self.export_globals(sub, params)
        if errors:
            return self.set_phase(n, "Error", "; ".join(errors))
        return self.set_phase(n, "Succeeded")

    def should_retry(self, n: NodeStatus, tmpl: Template, local: dict[str, str], phase: str,
                     code: int | None, reason: str, message: str) -> bool:
        rs = self.retry_strategy(tmpl)
        if rs is None:
            return False
        try:
            if len(n.attempts) - 1 >= self.limit(rs, local):
                return False
        except (ValueError, Unresolved):
            return False
        policy = rs.retry_policy or ("Always" if rs.expression else "OnFailure")
        ok = {"Always": True, "OnFailure": phase == "Failed", "OnError": phase == "Error",
              "OnTransientError": reason in pods.TRANSIENT}[policy]
        if ok and rs.expression:
            cur = n.attempts[-1]
            last = {"lastRetry.exitCode": "-1" if code is None else str(code), "lastRetry.status": phase,
                    "lastRetry.duration": str(int((cur.finished_at or self.now) - (cur.started_at or self.now))),
                    "lastRetry.message": message}

            def resolve(name: str) -> str:
                if name in last:
                    return last[name]
                if name in local:
                    return local[name]
                raise expr.ExprError(f"unknown variable {name!r}")

            try:
                text = substitute(rs.expression, {**local, **last}, strict=False)  # {{inputs.parameters.x}}
                ok = expr._truthy(expr.evaluate(text, resolve))
            except (expr.ExprError, Unresolved) as e:
                n.notes.append(f"retryStrategy.expression: {e}")
                ok = False
        if ok and rs.backoff and rs.backoff.max_duration:
            first = n.attempts[0].started_at or n.started_at or self.now
            total = parse_duration(substitute(rs.backoff.max_duration, local))
            if self.now + self.backoff(tmpl, local, len(n.attempts) - 1) - first > total:
                n.notes.append("retryStrategy.backoff.maxDuration reached")
                return False
        return ok

    def backoff(self, tmpl: Template, local: dict[str, str], retries_done: int) -> float:
        rs = self.retry_strategy(tmpl)
        if rs is None or rs.backoff is None or rs.backoff.duration is None:
            return 0.0
        b = rs.backoff
        delay = parse_duration(substitute(b.duration or "0", local))
        factor = float(substitute(b.factor, local)) if b.factor else 1.0
        delay *= factor ** retries_done
        if b.cap:
            delay = min(delay, parse_duration(substitute(b.cap, local)))
        return delay
