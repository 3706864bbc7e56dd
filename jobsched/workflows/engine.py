"""One reconcile pass over a workflow, the way Argo's operator works: walk the template tree from
the entrypoint, look each node up by its name, start what may start, and roll phases up.

Node names follow Argo: ``wf``, ``wf.task``, ``wf[0].step``, ``wf.task(1:item)``, ``wf.onExit``. All
state lives in :class:`WorkflowState`, so a pass after a restart continues where the last one was.
"""

from __future__ import annotations

import graphlib
import json
import re
from pathlib import Path
from typing import Any

from jobsched.workflows import expr
from jobsched.workflows.agent import AGENT_KINDS, AgentMixin
from jobsched.workflows.fanout import Budget, Hooks, LoopMixin, loop_result
from jobsched.workflows.leaf import LeafMixin
from jobsched.workflows.lint import dag_deps
from jobsched.workflows.loops import Limits
from jobsched.workflows.model import DagTask, LifecycleHook, Template, Workflow, WorkflowStep
from jobsched.workflows.pods import node_id
from jobsched.workflows.render import Unresolved, substitute, substitute_all
from jobsched.workflows.runner import JobRunner
from jobsched.workflows.state import FAILED, NodeStatus, WorkflowState
from jobsched.workflows.wfvars import failures, workflow_variables

MAX_DEPTH = 60
_TYPES = {"container": "Pod", "script": "Pod", "dag": "DAG", "steps": "Steps", "suspend": "Suspend",
          "http": "HTTP", "resource": "Resource"}


class Operator(LoopMixin, LeafMixin, AgentMixin):
    def __init__(self, st: WorkflowState, wf: Workflow, runner: JobRunner, now: float,
                 workdir: Path, hooks: Hooks | None = None) -> None:
        self.st, self.wf, self.runner, self.now, self.workdir = st, wf, runner, now, workdir
        self.hooks = hooks or Hooks(Limits(), Budget(Limits().max_live_steps))
        self._running: list[NodeStatus] | None = None  # nodes with a job in flight (may_start)
        self.gscope: dict[str, str] = {
            **workflow_variables(st, wf, now),
            **{f"workflow.parameters.{k}": v for k, v in st.parameters.items()},
            **{f"workflow.outputs.parameters.{k}": v for k, v in st.outputs.items()},
        }
        params = json.dumps([{"name": k, "value": v} for k, v in st.parameters.items()])
        self.gscope.setdefault("workflow.parameters.json", params)
        self.gscope.setdefault("workflow.parameters", params)

    def global_outputs(self) -> dict[str, str]:
        return {k: v for k, v in self.gscope.items() if k.startswith("workflow.outputs.")}

    def export_globals(self, tmpl: Template, params: dict[str, str]) -> None:
        """Output parameters with a ``globalName`` become ``{{workflow.outputs.parameters.NAME}}``."""
        for p in tmpl.outputs.parameters:
            if p.global_name and p.name in params:
                self.st.outputs[p.global_name] = params[p.name]
                self.gscope[f"workflow.outputs.parameters.{p.global_name}"] = params[p.name]

    # ---- the workflow ------------------------------------------------------------------------
    def operate(self) -> None:
        st, spec = self.st, self.wf.spec
        if st.done:
            return
        if st.phase == "Pending":
            st.phase, st.started_at = "Running", self.now
        main = st.nodes.get(st.name)
        if self.hooks.cancel_requested():
            st.cancelled = True
        if st.cancelled:
            for top in [n for n in st.nodes.values() if n.parent is None]:  # main and onExit
                self.kill(top, "Failed", "Workflow terminated by user")
            self.finish("Failed", "Workflow terminated by user")
            return
        deadline = spec.active_deadline_seconds
        if (deadline is not None and main is not None and not main.fulfilled
                and self.now - (st.started_at or self.now) > deadline):
            self.kill(main, "Failed", "Max duration limit exceeded")
        assert spec.entrypoint is not None
        main = self.run_template(st.name, spec.entrypoint, dict(st.parameters), None, st.name, 0)
        if self.hooks.cancel_requested():  # asked while this pass ran: stop now, expand no further
            st.cancelled = True
            return self.operate()
        hooks_done = self.run_hooks(st.name, spec.hooks, dict(self.gscope), None, 0)
        if not main.fulfilled:
            return
        phase = "Succeeded" if main.phase in ("Succeeded", "Skipped") else main.phase
        message = main.message if phase != "Succeeded" else None
        exit_hook = (spec.hooks or {}).get("exit")
        on_exit = spec.on_exit or (exit_hook.template if exit_hook is not None else None)
        if on_exit:
            self.gscope.update({"workflow.status": phase, "workflow.failures": failures(st)})
            try:
                args = self.hook_args(exit_hook, self.gscope) if exit_hook and not spec.on_exit else {}
            except (Unresolved, expr.ExprError) as e:
                args = {}
                phase, message = "Error", f"spec.hooks.exit: {e}"
            ex = self.run_template(f"{st.name}.onExit", on_exit, args, None, "onExit", 0)
            if not ex.fulfilled:
                return
            if ex.failed and phase == "Succeeded":
                phase, message = "Failed", f"exit handler failed: {ex.message}"
        if not hooks_done:
            return
        self.finish(phase, message)

    def finish(self, phase: str, message: str | None) -> None:
        self.st.phase, self.st.message, self.st.finished_at = phase, message, self.now

    # ---- nodes -------------------------------------------------------------------------------
    def node(self, name: str, display: str, type_: str, template: str | None,
             parent: NodeStatus | None, phase: str = "Pending", message: str | None = None) -> NodeStatus:
        n = NodeStatus(id=node_id(self.st.name, name), name=name, display_name=display, type=type_,
                       template=template, phase=phase, parent=parent.name if parent else None,
                       started_at=self.now, message=message)
        if n.fulfilled:
            n.finished_at = self.now
        self.st.nodes[name] = n
        if parent is not None and name not in parent.children:
            parent.children.append(name)
        return n

    def set_phase(self, n: NodeStatus, phase: str, message: str | None = None) -> NodeStatus:
        n.phase = phase
        if message is not None:
            n.message = message
        if n.fulfilled and n.finished_at is None:
            n.finished_at = self.now
        return n

    def descendants(self, n: NodeStatus) -> list[NodeStatus]:
        out: list[NodeStatus] = []
        stack = list(n.children)
        while stack:
            c = self.st.nodes.get(stack.pop())
            if c is not None:
                out.append(c)
                stack.extend(c.children)
        return out

    def kill(self, n: NodeStatus, phase: str, message: str) -> None:
        """Stop every job under ``n`` and fail whatever is unfinished (deadline, timeout, cancel)."""
        for c in [n, *self.descendants(n)]:
            if c.job is not None:
                self.runner.cancel(self.st.namespace, c.job)
                if c.attempts:
                    c.attempts[-1].phase, c.attempts[-1].finished_at = phase, self.now
                c.job = None
            if not c.fulfilled:
                self.set_phase(c, phase, message)

    # ---- templates ---------------------------------------------------------------------------
    def run_template(self, name: str, tmpl_name: str, args: dict[str, str],
                     parent: NodeStatus | None, display: str, depth: int) -> NodeStatus:
        n = self.st.nodes.get(name)
        if n is not None and n.fulfilled:
            return n
        tmpl = self.wf.template(tmpl_name)
        if n is None:
            if tmpl is None:
                return self.node(name, display, "Pod", tmpl_name, parent, "Error",
                                 f"template {tmpl_name!r} is not defined")
            n = self.node(name, display, _TYPES.get(tmpl.kind, "Pod"), tmpl_name, parent)
            try:
                n.inputs = self.resolve_inputs(tmpl, args)
            except ValueError as e:
                return self.set_phase(n, "Error", str(e))
            if depth > MAX_DEPTH:
                return self.set_phase(n, "Error", f"template recursion deeper than {MAX_DEPTH}")
        assert tmpl is not None
        local = {**self.gscope, **{f"inputs.parameters.{k}": v for k, v in n.inputs.items()}}
        if tmpl.timeout:
            try:
                timeout = substitute(tmpl.timeout, local)
                limit = _seconds(timeout)
            except (ValueError, Unresolved) as e:
                return self.set_phase(n, "Error", f"timeout: {e}")
            if self.now - (n.started_at or self.now) > limit:
                self.kill(n, "Failed", f"timeout of {timeout} exceeded")
                return n
        if tmpl.leaf is not None:
            return self.run_leaf(n, tmpl, local)
        if tmpl.kind in AGENT_KINDS:
            return self.run_agent(n, tmpl, local)
        try:
            sub = Template.model_validate(substitute_all(
                tmpl.model_dump(mode="json", by_alias=True, exclude_none=True), local, strict=False))
        except (Unresolved, ValueError) as e:
            return self.set_phase(n, "Error", str(e))
        if n.phase == "Pending":
            n.phase = "Running"
        if sub.dag is not None:
            return self.run_dag(n, sub, local, depth)
        return self.run_steps(n, sub, local, depth)

    def resolve_inputs(self, tmpl: Template, args: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for p in tmpl.inputs.parameters:
            value = args.get(p.name)
            if value is None:  # the template's own value/default: workflow variables, {{=...}}
                own = p.value if p.value is not None else p.default
                value = substitute(own, self.gscope, strict=False) if own is not None else None
            if value is None:
                raise ValueError(f"inputs.parameters.{p.name} was not supplied")
            if p.enum is not None and value not in p.enum:
                raise ValueError(f"inputs.parameters.{p.name}: {value!r} is not one of {p.enum}")
            out[p.name] = value
        return out

    def template_outputs(self, n: NodeStatus, tmpl: Template, scope: dict[str, str]) -> NodeStatus:
        params: dict[str, str] = {}
        try:
            for p in tmpl.outputs.parameters:
                vf = p.value_from
                if vf is not None and vf.parameter:
                    params[p.name] = substitute(vf.parameter, scope)
                elif vf is not None and vf.expression:
                    params[p.name] = expr.format_value(expr.evaluate(vf.expression, scope.__getitem__))
                elif p.value is not None:
                    params[p.name] = substitute(p.value, scope)
        except (Unresolved, expr.ExprError, KeyError) as e:
            if not (vf is not None and vf.default is not None):
                return self.set_phase(n, "Error", f"outputs.parameters.{p.name}: {e}")
            params[p.name] = vf.default
        n.outputs = {"parameters": params}
        self.export_globals(tmpl, params)
        return self.set_phase(n, "Succeeded")

    # ---- invocations (DAG tasks and steps) ---------------------------------------------------
    def invoke(self, name: str, inv: DagTask | WorkflowStep, scope: dict[str, str],
               parent: NodeStatus, display: str, depth: int) -> tuple[NodeStatus, bool]:
        """Run a task/step (its loop, its when, its exit handler); (node, finished incl. onExit)."""
        n = self.st.nodes.get(name)
        if n is None or not n.fulfilled:
            if inv.with_items is not None or inv.with_param is not None or inv.with_sequence is not None:
                n = self.run_loop(name, inv, scope, parent, display, depth)
            else:
                n = self.run_one(name, inv, scope, parent, display, depth)
        if n.phase in ("Skipped", "Omitted"):
            return n, True
        if not inv.hooks and not inv.on_exit:
            return n, n.fulfilled
        kind = "tasks" if isinstance(inv, DagTask) else "steps"
        hscope = {**scope, **self.exports(f"{kind}.{inv.name}", n)}
        hooks_done = self.run_hooks(name, inv.hooks, hscope, parent, depth)
        exit_hook = (inv.hooks or {}).get("exit")
        on_exit = inv.on_exit or (exit_hook.template if exit_hook is not None else None)
        if on_exit and n.fulfilled:
            try:
                args = self.hook_args(exit_hook, hscope) if exit_hook and not inv.on_exit else {}
            except (Unresolved, expr.ExprError) as e:
                ex = self.node(f"{name}.onExit", f"{display}.onExit", "Pod", on_exit, parent, "Error", str(e))
                return n, True
            ex = self.run_template(f"{name}.onExit", on_exit, args, parent, f"{display}.onExit", depth + 1)
            return n, ex.fulfilled and hooks_done
        return n, n.fulfilled and hooks_done

    # ---- lifecycle hooks -------------------------------------------------------------------------
    def hook_args(self, hook: LifecycleHook | None, scope: dict[str, str]) -> dict[str, str]:
        if hook is None:
            return {}
        return {p.name: substitute(p.value if p.value is not None else (p.default or ""), scope)
                for p in hook.arguments.parameters}

    def run_hooks(self, owner: str, hooks: dict[str, LifecycleHook] | None, scope: dict[str, str],
                  parent: NodeStatus | None, depth: int) -> bool:
        """Hooks other than ``exit``: each runs once, the first pass its ``expression`` holds (as
        Argo's executeTmplLifeCycleHook). True when every started hook has finished."""
        done = True
        for hname, hook in (hooks or {}).items():
            if hname == "exit" or not hook.template:
                continue
            name = f"{owner}.hooks.{hname}"
            if name not in self.st.nodes:
                if self.st.cancelled or not hook.expression:
                    continue
                try:
                    fire = expr._truthy(expr.evaluate(substitute(hook.expression, scope, strict=False),
                                                      scope.__getitem__))
                    args = self.hook_args(hook, scope) if fire else {}
                except (KeyError, Unresolved, expr.ExprError):
                    fire = False  # e.g. a variable that does not exist yet
                if not fire:
                    continue
            else:
                args = {}
            h = self.run_template(name, hook.template, args, parent, f"{owner.rsplit('.', 1)[-1]}.hooks.{hname}",
                                  depth + 1)
            done = done and h.fulfilled
        return done

    def run_one(self, name: str, inv: DagTask | WorkflowStep, scope: dict[str, str],
                parent: NodeStatus, display: str, depth: int) -> NodeStatus:
        n = self.st.nodes.get(name)
        if n is None:
            try:
                if inv.when and not expr.evaluate_when(substitute(inv.when, scope)):
                    return self.node(name, display, "Skipped", inv.template, parent, "Skipped",
                                     f"when '{substitute(inv.when, scope)}' evaluated false")
                args = {p.name: substitute(p.value if p.value is not None else (p.default or ""), scope)
                        for p in inv.arguments.parameters}
                tmpl_name = substitute(inv.template or "", scope)
            except (Unresolved, expr.ExprError) as e:
                return self.node(name, display, "Pod", inv.template, parent, "Error", str(e))
        else:
            args, tmpl_name = {}, n.template or ""
        return self.run_template(name, tmpl_name, args, parent, display, depth + 1)

    # ---- scopes ------------------------------------------------------------------------------
    def exports(self, prefix: str, n: NodeStatus) -> dict[str, str]:
        out = {f"{prefix}.status": n.phase, f"{prefix}.id": n.id,
               f"{prefix}.startedAt": str(n.started_at), f"{prefix}.finishedAt": str(n.finished_at)}
        if "result" in n.outputs:
            out[f"{prefix}.outputs.result"] = str(n.outputs["result"])
        if "exitCode" in n.outputs:
            out[f"{prefix}.exitCode"] = str(n.outputs["exitCode"])
        params = n.outputs.get("parameters", {})
        if isinstance(params, list):  # a loop: aggregate
            out[f"{prefix}.outputs.parameters"] = json.dumps(params)
            for key in {k for p in params for k in p}:
                out[f"{prefix}.outputs.parameters.{key}"] = json.dumps([p.get(key) for p in params])
        else:
            out.update({f"{prefix}.outputs.parameters.{k}": v for k, v in params.items()})
        return out

    # ---- DAG -----------------------------------------------------------------------------------
    def run_dag(self, n: NodeStatus, tmpl: Template, local: dict[str, str], depth: int) -> NodeStatus:
        assert tmpl.dag is not None
        tasks = {t.name: t for t in tmpl.dag.tasks}
        deps = {t.name: dag_deps(t) for t in tmpl.dag.tasks}
        depended = {d for ds in deps.values() for d in ds}
        targets = ([t for t in re.split(r"[\s,]+", tmpl.dag.target.strip()) if t] if tmpl.dag.target
                   else [t for t in tasks if t not in depended])
        needed: set[str] = set()
        stack = list(targets)
        while stack:
            t = stack.pop()
            if t in tasks and t not in needed:
                needed.add(t)
                stack.extend(deps[t])
        scope = dict(local)
        finished: dict[str, bool] = {}

        def tnode(t: str) -> NodeStatus | None:
            return self.st.nodes.get(f"{n.name}.{t}")

        def result(t: str, res: str) -> bool:
            x = tnode(t)
            ph = x.phase if x is not None else ""
            if x is not None and res in ("AnySucceeded", "AllFailed") and (lr := loop_result(x, res)) is not None:
                return lr
            kids = [self.st.nodes[c] for c in x.children] if x is not None and x.type == "TaskGroup" else []
            return {"Succeeded": ph == "Succeeded", "Failed": ph == "Failed", "Errored": ph == "Error",
                    "Skipped": ph == "Skipped", "Omitted": ph == "Omitted", "Daemoned": False,
                    "Completed": ph in ("Succeeded", "Failed"),
                    "AnySucceeded": any(k.phase == "Succeeded" for k in kids) if kids else ph == "Succeeded",
                    "AllFailed": all(k.failed for k in kids) if kids else ph in FAILED}[res]

        def stopped() -> bool:
            """The template-level ``failFast`` (Argo's checkParallelism): no new task starts once a
            child failed. ``dag.failFast`` does not stop tasks; it only decides the DAG's phase."""
            return bool(tmpl.fail_fast) and any(
                (x := tnode(t)) is not None and x.failed and not _continues(tasks[t], x.phase)
                for t in needed)

        order = graphlib.TopologicalSorter({t: [d for d in deps[t] if d in needed]
                                            for t in needed}).static_order()
        for t in order:
            task, x = tasks[t], tnode(t)
            if not all(finished.get(d, False) for d in deps[t]):
                finished[t] = False
                continue
            if x is None:
                if not self.dependencies_met(task, result, tnode, tasks):
                    x = self.node(f"{n.name}.{t}", t, "Skipped", task.template, n, "Omitted",
                                  "omitted: depends condition not met")
                elif stopped():
                    finished[t] = False
                    continue
            x, done = self.invoke(f"{n.name}.{t}", task, scope, n, t, depth)
            finished[t] = done
            if done:
                scope.update(self.exports(f"tasks.{t}", x))
                scope.update(self.global_outputs())
        if not all(finished.get(t, False) for t in needed):
            running = any(finished.get(t) is False and tnode(t) is not None for t in needed)
            if stopped() and not running:
                return self.set_phase(n, "Failed", "template has failed or errored children and failFast enabled")
            return n

        def branch(t: str) -> tuple[str, str]:
            """(phase, task) of ``t``'s branch, as Argo's assessDAGPhase: a Skipped or Omitted task
            inherits the phase of the tasks before it, Failed or Error first."""
            x = tnode(t)
            assert x is not None
            if x.phase not in ("Skipped", "Omitted"):
                return x.phase, t
            inherited = [branch(d) for d in deps[t] if d in needed]
            bad = [b for b in inherited if b[0] in FAILED]
            return bad[0] if bad else ("Succeeded", t)

        for t in targets:
            ph, cause = branch(t)
            if ph in FAILED and not _continues(tasks[t], ph):
                if cause == t:
                    return self.set_phase(n, ph, f"task {t!r} {ph.lower()}")
                return self.set_phase(n, ph, f"task {cause!r} {ph.lower()} (so {t!r} was "
                                             f"{tnode(t).phase.lower()})")  # type: ignore[union-attr]
        return self.template_outputs(n, tmpl, scope)

    @staticmethod
    def dependencies_met(task: DagTask, result: Any, tnode: Any, tasks: dict[str, DagTask]) -> bool:
        if task.depends is not None:
            return expr.evaluate_depends(task.depends, result)
        for d in task.dependencies or []:
            x = tnode(d)
            if x.phase in ("Succeeded", "Skipped"):
                continue
            if not x.failed or not _continues(tasks.get(d), x.phase):
                return False
        return True

    # ---- steps ---------------------------------------------------------------------------------
    def run_steps(self, n: NodeStatus, tmpl: Template, local: dict[str, str], depth: int) -> NodeStatus:
        assert tmpl.steps is not None
        scope = dict(local)
        for g, group in enumerate(tmpl.steps):
            gname = f"{n.name}[{g}]"
            gnode = self.st.nodes.get(gname) or self.node(gname, f"[{g}]", "StepGroup", None, n, "Running")
            all_done = True
            for step in group:
                x, done = self.invoke(f"{gname}.{step.name}", step, scope, gnode, step.name, depth)
                all_done = all_done and done
            if not all_done:
                return n
            failed = [s for s in group if (x := self.st.nodes[f"{gname}.{s.name}"]).failed
                      and not _continues(s, x.phase)]
            for s in group:
                scope.update(self.exports(f"steps.{s.name}", self.st.nodes[f"{gname}.{s.name}"]))
            scope.update(self.global_outputs())
            if failed:
                bad = self.st.nodes[f"{gname}.{failed[0].name}"]
                self.set_phase(gnode, bad.phase, f"step {failed[0].name!r} {bad.phase.lower()}")
                return self.set_phase(n, bad.phase, f"step {bad.name!r} {bad.phase.lower()}: {bad.message}")
            self.set_phase(gnode, "Succeeded")
        return self.template_outputs(n, tmpl, scope)


def _continues(inv: DagTask | WorkflowStep | None, phase: str) -> bool:
    c = inv.continue_on if inv is not None else None
    return c is not None and ((phase == "Failed" and c.failed) or (phase == "Error" and c.error))


def _seconds(text: str) -> float:
    from jobsched.workflows.util import parse_duration

    return parse_duration(text)
