"""One scheduling cycle, as a short sequence of numbered steps over an immutable snapshot.

    1. heads     - pending gangs, ordered per queue (priority, then FIFO)
    2. snapshot  - a working copy of the node table and per-queue usage, and one score cache per
                   equivalence class of replicas (same request and constraints) over that copy
    3. nominate  - reject what can never run (quota or cluster too small, even empty)
    4. order     - priority, then the queue's weighted dominant share, then FIFO
    5. admit     - quota check, place every replica or none; else pick whole gangs to preempt
    6. requeue   - the rest stay Pending with the reason

Pure: no I/O, no clock (``now`` is passed in), deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from jobsched.core.constraints import exclusions
from jobsched.core.fit import insufficiency
from jobsched.core.gang import Assignment, PodGroup, allowed_mask, place_gang, placeable_count, unplace
from jobsched.core.nodes import NodeTable
from jobsched.core.policies import make_policy
from jobsched.core.preemption import release_gangs, select_victims
from jobsched.core.scorecache import ScoreCache
from jobsched.core.snapshot import QueueInfo, RunningGang, Snapshot
from jobsched.spec.resources import Resources


@dataclass(frozen=True)
class Admit:
    key: str
    assignments: tuple[Assignment, ...]
    request: Resources


@dataclass(frozen=True)
class Preempt:
    victim: str
    preemptor: str
    reason: str


@dataclass(frozen=True)
class Reject:
    key: str
    reason: str
    quota: bool = False  # more than the queue's quota allows, even idle (reason QuotaExceeded)


@dataclass(frozen=True)
class Wait:
    key: str
    reason: str
    for_capacity: bool = False  # pending for lack of nodes: the provisioner may add some
    quota: bool = False  # pending because the queue's quota is used up (reason QuotaExceeded)


Decision = Admit | Preempt | Reject | Wait


@dataclass
class CycleResult:
    now: float
    decisions: list[Decision] = field(default_factory=list)

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [d for d in self.decisions if isinstance(d, kind)]


def group_usage(g: PodGroup) -> Resources:
    r = g.request
    return Resources(r.cpu_milli * g.replicas, r.memory * g.replicas, r.gpu_total_milli * g.replicas, 0)


class Scheduler:
    def __init__(self, policy: str = "jobsched", seed: int = 0, preemption: bool = True) -> None:
        self.policy = policy
        self.scorer, self.gpus = make_policy(policy, seed)
        self.preemption = preemption
        self._scores = ScoreCache(self.scorer)
        self._masks: dict[tuple[object, ...], npt.NDArray[np.bool_]] = {}

    def cycle(self, snap: Snapshot, pending: Sequence[PodGroup], now: float) -> CycleResult:
        result = CycleResult(now)
        # 1. heads
        heads = sorted(pending, key=lambda g: (-g.priority, g.created, g.key))
        # 2. snapshot
        table = snap.table.copy()
        self._scores = ScoreCache(self.scorer)  # scores of this copy only, kept in step with it
        self._masks = {}  # allowed rows per set of static constraints, for this copy
        usage = snap.queue_usage()
        total = Resources(int(table.cpu_cap.sum()), int(table.mem_cap.sum()), int(table.gpu_count.sum()))
        # 3. nominate
        never: dict[tuple[object, ...], str | None] = {}
        nominated: list[PodGroup] = []
        for g in heads:
            reason = self._unresolvable(snap, g, never)
            if reason:
                q = snap.queues.get(g.queue)
                result.decisions.append(Reject(g.key, reason, quota=q is not None and bool(q.exceeded(group_usage(g)))))
            else:
                nominated.append(g)
        # 4. order
        shares = {name: q.share(usage.get(name, Resources()), total) for name, q in snap.queues.items()}
        nominated.sort(key=lambda g: (-g.priority, shares.get(g.queue, 0.0), g.created, g.key))
        # 5. admit
        yielding: dict[str, list[RunningGang]] = {}
        for r in snap.running:
            if r.terminating_for:
                yielding.setdefault(r.terminating_for, []).append(r)
        victims_taken: set[str] = {r.key for r in snap.running if r.terminating_for}
        blocked_queues: dict[str, str] = {}
        for g in nominated:
            q = snap.queues.get(g.queue, QueueInfo(g.queue))
            if q.strict_fifo and g.queue in blocked_queues:
                result.decisions.append(Wait(g.key, f"StrictFIFO: behind {blocked_queues[g.queue]}"))
                continue
            decision = self._admit_one(snap, table, g, q, usage, yielding.get(g.key, []), victims_taken)
            for d in decision:
                result.decisions.append(d)
            if isinstance(decision[-1], Admit):
                if q.has_quota:  # usage only feeds quota checks from here on
                    usage[g.queue] = usage.get(g.queue, Resources()) + group_usage(g)
            else:
                blocked_queues.setdefault(g.queue, g.key)
        # 6. requeue: Wait decisions above carry the reasons.
        return result

    # ------------------------------------------------------------------------------------------
    def _admit_one(
        self,
        snap: Snapshot,
        table: NodeTable,
        g: PodGroup,
        q: QueueInfo,
        usage: dict[str, Resources],
        yielding: list[RunningGang],
        victims_taken: set[str],
    ) -> list[Decision]:
        over = q.exceeded(usage.get(g.queue, Resources()) + group_usage(g)) if q.has_quota else []
        allowed = self._allowed(table, g)
        if yielding:
            # Gangs are already stopping for g: hold their room for it so nobody else takes it.
            release_gangs(table, yielding)
            placed = place_gang(table, g, self.scorer, self.gpus, allowed)
            if placed is None:
                from jobsched.core.preemption import reallocate_gangs

                reallocate_gangs(table, yielding)
            names = ", ".join(sorted(y.key for y in yielding))
            return [Wait(g.key, f"waiting for preempted gangs to stop: {names}")]
        if not over:
            placed = place_gang(table, g, self.scorer, self.gpus, allowed, self._scores)
            if placed is not None:
                return [Admit(g.key, tuple(placed), g.request)]
        if self.preemption:
            out = self._preempt(snap, table, g, q, usage, victims_taken)
            if out:
                return out
        if over:
            return [Wait(g.key, f"queue {g.queue!r} quota exceeded for {', '.join(over)}", quota=True)]
        return [Wait(g.key, self._held_note(table, g, allowed) + self._why_not(table, g, allowed), for_capacity=True)]

    def _held_note(self, table: NodeTable, g: PodGroup, allowed: npt.NDArray[np.bool_]) -> str:
        """A prefix for a gang that would fit once other schedulers' pods give their room back."""
        n = table.held_nodes(allowed)
        if not n or place_gang(table.without_held(), g, self.scorer, self.gpus, allowed) is None:
            return ""
        return f"waiting: capacity held by pods of other schedulers on {n} node{'s' if n > 1 else ''}; "

    def _why_not(self, table: NodeTable, g: PodGroup, allowed: npt.NDArray[np.bool_]) -> str:
        n = placeable_count(table, g, self.scorer, self.gpus)
        if n:
            return f"only {n} of {g.replicas} replicas fit at once ({describe(g.request)} each)"
        excluded = exclusions(table, g.constraints, allowed)  # untolerated taints, affinity
        return f"no replica fits: {insufficiency(table, g.request, allowed, excluded)}"

    def _preempt(
        self,
        snap: Snapshot,
        table: NodeTable,
        g: PodGroup,
        q: QueueInfo,
        usage: dict[str, Resources],
        victims_taken: set[str],
    ) -> list[Decision]:
        cands = [r for r in snap.running if r.preemptible and r.priority < g.priority
                 and r.key not in victims_taken]
        if not cands:
            return []
        base = usage.get(g.queue, Resources()) + group_usage(g)

        def quota_ok(victims: Sequence[RunningGang]) -> bool:
            freed = Resources()
            for v in victims:
                if v.queue == g.queue:
                    freed = freed + v.usage()
            left = Resources(max(base.cpu_milli - freed.cpu_milli, 0), max(base.memory - freed.memory, 0),
                             max(base.gpus - freed.gpus, 0))
            return not q.exceeded(left)

        found = select_victims(table, g, cands, self.scorer, self.gpus, quota_ok)
        if found is None:
            return []
        victims, _ = found
        out: list[Decision] = []
        for v in victims:
            victims_taken.add(v.key)
            reason = (f"preempted by {g.key} (priority {g.priority} > {v.priority})")
            out.append(Preempt(v.key, g.key, reason))
        # Hold the victims' room for g within this cycle.
        release_gangs(table, victims)
        placed = place_gang(table, g, self.scorer, self.gpus)
        if placed is None:  # pragma: no cover - select_victims just proved it fits
            from jobsched.core.preemption import reallocate_gangs

            reallocate_gangs(table, victims)
        names = ", ".join(v.key for v in victims)
        out.append(Wait(g.key, f"preempting {names}"))
        return out

    def _allowed(self, table: NodeTable, g: PodGroup) -> npt.NDArray[np.bool_]:
        """:func:`allowed_mask`, once per distinct set of static constraints in a cycle (read-only)."""
        key = (tuple(sorted(g.node_selector.items())), g.constraints, g.gpu_models if g.request.gpus else ())
        mask = self._masks.get(key)
        if mask is None:
            mask = self._masks[key] = allowed_mask(table, g)
            mask.flags.writeable = False
        return mask

    def _unresolvable(self, snap: Snapshot, g: PodGroup, memo: dict[tuple[object, ...], str | None]) -> str | None:
        """Why ``g`` can never be admitted (no queue, over its quota even alone, too big for the
        empty cluster), or None; memoized per queue and gang shape."""
        key = (g.queue, g.shape())
        if key not in memo:
            memo[key] = self._never(snap, g)
        return memo[key]

    def _never(self, snap: Snapshot, g: PodGroup) -> str | None:
        q = snap.queues.get(g.queue)
        if q is None:
            return f"queue {g.queue!r} does not exist"
        over = q.exceeded(group_usage(g))
        if over:
            return f"gang needs more than queue {g.queue!r} quota allows ({', '.join(over)}), even when idle"
        return self._never_fits(snap, g)

    def _never_fits(self, snap: Snapshot, g: PodGroup) -> str | None:
        empty = snap.table.emptied()
        if snap.provisionable:
            empty = with_provisionable(empty, snap)
        placed = place_gang(empty, g, self.scorer, self.gpus)
        if placed is not None:
            unplace(empty, g.request, placed)
            return None
        why = self._why_not(empty, g, allowed_mask(empty, g))
        return f"gang of {g.replicas} can never fit this cluster, even empty: {why}"


def with_provisionable(table: NodeTable, snap: Snapshot) -> NodeTable:
    """The empty cluster plus every node the provisioner could add (for the never-fits check)."""
    names = list(table.names)
    cpu, mem, gpus = list(table.cpu_cap), list(table.mem_cap), list(table.gpu_count)
    models = table.gpu_models_of()
    labels = list(table.labels)
    gmem = list(table.gpu_mem)
    taints = list(table.taints)  # added nodes: untainted (a NodeShape carries no taints)
    for shape in snap.provisionable:
        for i in range(shape.max_count):
            names.append(f"{shape.name}-new-{i}")
            cpu.append(shape.resources.cpu_milli)
            mem.append(shape.resources.memory)
            gpus.append(shape.resources.gpus)
            models.append(shape.gpu_model)
            labels.append(dict(shape.labels))
            gmem.append(shape.gpu_memory)
            taints.append(())
    return NodeTable.from_arrays(names, cpu, mem, gpus, models, labels, gpu_memory=gmem, taints=taints)


def describe(r: Resources) -> str:
    parts = [f"cpu={r.cpu_milli}m", f"memory={r.memory}"]
    if r.gpus:
        parts.append(f"gpu={r.gpus}" + (f"x{r.gpu_milli}m" if r.gpu_milli < 1000 and not r.gpu_share else ""))
        if r.gpu_memory:
            parts.append(f"gpu-memory={r.gpu_memory}" + (" (shared)" if r.gpu_share else ""))
    return "{" + ", ".join(parts) + "}"
