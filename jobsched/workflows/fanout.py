"""Loops expanded lazily, so a fan-out costs memory and time in proportion to what runs, not to
its item count.

A loop node (TaskGroup) keeps a :class:`LoopState`: the item count (checked against the server's
limit when the loop starts), a cursor, and counters. Each pass advances the live children, moves the
finished ones out of memory (to the store's archive, with their subtree) and materialises the next
items while there is room: fewer live children than the loop's window (``spec.parallelism``, an
enclosing template's ``parallelism``, the server's live-step cap), none waiting to start, budget
left on the server, and no cancel or shutdown requested.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobsched.workflows.loops import Items, Limits
from jobsched.workflows.render import Unresolved
from jobsched.workflows.state import LoopState, NodeStatus
from jobsched.workflows.util import item_label, item_text

if TYPE_CHECKING:
    from pathlib import Path

    from jobsched.workflows.model import DagTask, Workflow, WorkflowStep
    from jobsched.workflows.runner import JobRunner
    from jobsched.workflows.state import WorkflowState


@dataclass
class Budget:
    """Step jobs the server may still start in this pass (its cap minus the live ones)."""

    left: int


@dataclass
class Hooks:
    """What the controller lends one pass: limits, the server budget, and its signals."""

    limits: Limits
    budget: Budget
    cancel_requested: Callable[[], bool] = lambda: False
    stopping: Callable[[], bool] = lambda: False
    archived: Callable[[str], list[NodeStatus]] = lambda parent: []
    calls: Any = None  # agent.Calls: the controller's pool for http and resource steps' blocking calls


class OperatorParts:
    """What the operator's mixins (loops here, leaf and agent steps) read from the operator."""

    st: WorkflowState
    wf: Workflow
    runner: JobRunner
    now: float
    workdir: Path
    hooks: Hooks


class LoopMixin(OperatorParts):

    def node(self, name: str, display: str, type_: str, template: str | None,
             parent: NodeStatus | None, phase: str = "Pending", message: str | None = None) -> NodeStatus:
        raise NotImplementedError

    def set_phase(self, n: NodeStatus, phase: str, message: str | None = None) -> NodeStatus:
        raise NotImplementedError

    def descendants(self, n: NodeStatus) -> list[NodeStatus]:
        raise NotImplementedError

    def run_one(self, name: str, inv: Any, scope: dict[str, str], parent: NodeStatus, display: str,
                depth: int) -> NodeStatus:
        raise NotImplementedError

    def halted(self) -> bool:
        """No further expansion: a cancel is requested or the server is stopping."""
        return self.st.cancelled or self.hooks.cancel_requested() or self.hooks.stopping()

    def run_loop(self, name: str, inv: DagTask | WorkflowStep, scope: dict[str, str],
                 parent: NodeStatus, display: str, depth: int) -> NodeStatus:
        group = self.st.nodes.get(name) or self.node(name, display, "TaskGroup", inv.template, parent,
                                                     "Running")
        items: Items | None = None
        if group.loop is None:  # first pass: count the items once (never materialised)
            try:
                items = Items(inv, scope, self.hooks.limits.max_loop_items)
            except (Unresolved, ValueError) as e:
                return self.set_phase(group, "Error", f"{name}: {e}")
            group.loop = LoopState(total=len(items))
        loop = group.loop
        for cname in list(group.children):  # advance the live children
            child = self.st.nodes.get(cname)
            if child is None:
                continue
            child = self.run_one(cname, inv, scope, group, child.display_name, depth)
            if child.fulfilled:
                self.archive(group, child, inv)
        window = self.window(group)
        made = 0
        while loop.next < loop.total and made < window and self.room(group, window):
            if items is None:
                try:
                    items = Items(inv, scope, self.hooks.limits.max_loop_items)
                except (Unresolved, ValueError) as e:
                    return self.set_phase(group, "Error", f"{name}: {e}")
            i = loop.next
            item = items[i]
            label = item_label(i, item)
            iscope = {**scope, "item": item_text(item)}
            if isinstance(item, dict):
                iscope.update({f"item.{k}": item_text(v) for k, v in item.items()})
            child = self.run_one(f"{name}{label}", inv, iscope, group, f"{display}{label}", depth)
            child.loop_index = i
            loop.next, made = i + 1, made + 1
            if child.fulfilled:
                self.archive(group, child, inv)
        if loop.next < loop.total or group.children:
            return group
        return self.finish_loop(group, inv)

    def window(self, group: NodeStatus) -> int:
        """Live children allowed at once under ``group``."""
        limits = [self.hooks.limits.max_live_steps]
        if self.wf.spec.parallelism:
            limits.append(self.wf.spec.parallelism)
        anc = self.st.nodes.get(group.parent) if group.parent else None
        while anc is not None:
            at = self.wf.template(anc.template) if anc.template else None
            if at is not None and at.parallelism:
                limits.append(at.parallelism)
            anc = self.st.nodes.get(anc.parent) if anc.parent else None
        return max(1, min(limits))

    def room(self, group: NodeStatus, window: int) -> bool:
        if self.halted() or self.hooks.budget.left <= 0 or len(group.children) >= window:
            return False
        for cname in group.children:  # one child still waiting to start: wait with it
            c = self.st.nodes.get(cname)
            if c is not None and c.type == "Pod" and c.job is None and not c.attempts and not c.fulfilled:
                return False
        return True

    def archive(self, group: NodeStatus, child: NodeStatus, inv: Any) -> None:
        """Move a finished child (and its subtree) out of memory, keeping its counts."""
        from jobsched.workflows.engine import _continues

        loop = group.loop
        assert loop is not None
        sub = [child, *self.descendants(child)]
        for x in sub:
            self.st.nodes.pop(x.name, None)
            if x.type == "Pod":
                loop.pods += 1
                loop.pods_succeeded += x.phase == "Succeeded"
            if x.loop is not None:
                loop.pods += x.loop.pods
                loop.pods_succeeded += x.loop.pods_succeeded
        if child.name in group.children:
            group.children.remove(child.name)
        loop.phases[child.phase] = loop.phases.get(child.phase, 0) + 1
        if child.failed and not _continues(inv, child.phase) and loop.failed is None:
            loop.failed, loop.failed_phase = child.name, child.phase
        self.st._archive.append((group.name, child.loop_index or 0, sub))

    def finish_loop(self, group: NodeStatus, inv: Any) -> NodeStatus:
        loop = group.loop
        assert loop is not None
        pending = {c.name: c for g, _, sub in self.st._archive if g == group.name for c in sub[:1]}
        kids = {c.name: c for c in self.hooks.archived(group.name)}
        kids.update(pending)
        ordered = sorted(kids.values(), key=lambda c: c.loop_index or 0)
        group.outputs = {"result": json.dumps([_aggregate(k.outputs["result"]) for k in ordered
                                               if "result" in k.outputs]),
                         "parameters": [k.outputs.get("parameters", {}) for k in ordered]}
        if loop.failed is not None:
            phase = loop.failed_phase or "Failed"
            return self.set_phase(group, phase, f"child {loop.failed} {phase.lower()}")
        return self.set_phase(group, "Succeeded")


def loop_result(x: NodeStatus, res: str) -> bool | None:
    """``AnySucceeded``/``AllFailed`` of a loop from its counters (None: not a loop)."""
    if x.type != "TaskGroup" or x.loop is None or not x.loop.finished:
        return None
    ph = x.loop.phases
    if res == "AnySucceeded":
        return ph.get("Succeeded", 0) > 0
    return ph.get("Failed", 0) + ph.get("Error", 0) == x.loop.finished


def _aggregate(result: Any) -> Any:
    """A child's result in a loop's aggregated list: a JSON object stays an object (as Argo's
    processAggregateNodeOutputs), anything else the string."""
    if isinstance(result, str) and result.lstrip().startswith("{"):
        try:
            value = json.loads(result)
        except json.JSONDecodeError:
            return result
        return value if isinstance(value, dict) else result
    return result
