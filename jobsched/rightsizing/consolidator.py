"""Consolidator: remove nodes that stayed empty past a TTL, and repack under-used nodes.

A node is drained only when every gang on it can be placed again, whole, on the other nodes in
use (never on empty nodes, never on nodes being removed). A gang is moved whole or not at all,
non-preemptible and terminating gangs are never moved, and a node that still holds a replica is
never deleted. Pure: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from jobsched.core.gang import Assignment, PodGroup, allowed_mask, place_gang
from jobsched.core.nodes import NodeTable
from jobsched.core.policies import make_policy
from jobsched.core.preemption import release_gangs
from jobsched.core.snapshot import RunningGang


class Move(NamedTuple):
    key: str  # the gang
    assignments: tuple[Assignment, ...]  # where its replicas go (restart from the checkpoint)
    from_nodes: tuple[str, ...]


@dataclass(frozen=True)
class ConsolidationPlan:
    delete: list[str]
    moves: list[Move] = field(default_factory=list)
    savings_per_hour: float = 0.0
    reasons: dict[str, str] = field(default_factory=dict)  # node -> why it goes


def utilization(table: NodeTable) -> npt.NDArray[np.float64]:
    """Dominant share used per node (0..1): the largest of cpu, memory and GPU used/capacity."""
    cpu = 1 - table.cpu_free / np.maximum(table.cpu_cap, 1)
    mem = 1 - table.mem_free / np.maximum(table.mem_cap, 1)
    gfree = np.where(table.gpu_free >= 0, table.gpu_free, 0).sum(axis=1)
    gpu = 1 - gfree / np.maximum(table.gpu_count * 1000, 1)
    gpu = np.where(table.gpu_count > 0, gpu, 0.0)
    return np.maximum(np.maximum(cpu, mem), gpu)


def consolidate(
    nodes: NodeTable,
    running: Sequence[RunningGang],
    idle_since: Mapping[str, float],
    now: float,
    ttl: float,
    prices: Mapping[str, float] | None = None,
    *,
    underused: float = 0.5,
    repack: bool = True,
    net_of_running: bool = False,
    policy: str = "bestfit",
    groups: Mapping[str, PodGroup] | None = None,
) -> ConsolidationPlan:
    """Plan deletions and moves. ``nodes``: allocatable per node (set ``net_of_running`` when its
    free columns already subtract ``running``, as ``Snapshot.table`` does). ``idle_since``: when
    each empty node became empty; a node missing there is not removed for emptiness.
    ``prices``: per node per hour (default ``nodes.price``). ``groups``: each gang's PodGroup, for
    its node selector, GPU models and placement; a gang missing there only moves to nodes whose
    labels equal those of a node it runs on now."""
    table = nodes.copy()
    where: dict[str, RunningGang] = {g.key: g for g in running}
    if not net_of_running:
        for g in running:
            for a in g.assignments:
                if a.node in table.index:
                    table.allocate(table.index[a.node], g.request, a.gpus)
    price = {n: (prices[n] if prices is not None and n in prices else float(table.price[i]))
             for i, n in enumerate(table.names)}
    busy = _replicas(where.values())
    delete: list[str] = []
    reasons: dict[str, str] = {}
    for n in table.names:
        if busy.get(n, 0) == 0 and n in idle_since and now - idle_since[n] >= ttl:
            delete.append(n)
            reasons[n] = f"empty for {now - idle_since[n]:.0f}s (ttl {ttl:.0f}s)"
    moves: list[Move] = []
    if repack:
        _repack(table, where, busy, price, delete, reasons, moves, underused, policy, groups or {})
    final = _replicas(where.values())
    for n in delete:
        if final.get(n, 0):
            raise RuntimeError(f"consolidate: would delete {n} while it runs a replica")  # pragma: no cover
    saved = sum(price[n] for n in delete)
    return ConsolidationPlan(delete, moves, saved, reasons)


def _replicas(gangs: Iterable[RunningGang]) -> dict[str, int]:
    out: dict[str, int] = {}
    for g in gangs:
        for a in g.assignments:
            out[a.node] = out.get(a.node, 0) + 1
    return out


def _group_and_mask(table: NodeTable, g: RunningGang, spec: PodGroup | None
                    ) -> tuple[PodGroup, npt.NDArray[np.bool_]]:
    """The gang as the scheduler would place it, and the nodes it may move to."""
    if spec is not None:
        group = PodGroup(g.key, g.request, len(g.assignments), g.queue, g.priority, g.started,
                         spec.node_selector, spec.gpu_models, spec.placement)
        return group, allowed_mask(table, group)
    group = PodGroup(g.key, g.request, len(g.assignments), g.queue, g.priority, g.started)
    now_on = [table.labels[table.index[a.node]] for a in g.assignments if a.node in table.index]
    mask = np.fromiter((lb in now_on for lb in table.labels), dtype=bool, count=len(table))
    return group, mask


def _repack(table: NodeTable, where: dict[str, RunningGang], busy: dict[str, int], price: Mapping[str, float],
            delete: list[str], reasons: dict[str, str], moves: list[Move], underused: float,
            policy: str, groups: Mapping[str, PodGroup]) -> None:
    scorer, gpus = make_policy(policy)
    util = utilization(table)
    moved: set[str] = set()
    cands = [i for i, n in enumerate(table.names)
             if busy.get(n, 0) and table.schedulable[i] and util[i] < underused and price[n] > 0]
    cands.sort(key=lambda i: (-price[table.names[i]], util[i], table.names[i]))
    for i in cands:
        name = table.names[i]
        on = [g for g in where.values() if any(a.node == name for a in g.assignments)]
        if not on or any(g.key in moved or not g.preemptible or g.terminating_for for g in on):
            continue
        work = table.copy()
        occupied = _replicas(where.values())
        closed = np.asarray([n == name or n in delete or not occupied.get(n, 0) for n in work.names])
        work.schedulable = work.schedulable & ~closed
        release_gangs(work, on)
        placed: list[tuple[RunningGang, list[Assignment]]] = []
        for g in sorted(on, key=lambda g: (-g.request.gpus * len(g.assignments), g.key)):
            group, allowed = _group_and_mask(work, g, groups.get(g.key))
            got = place_gang(work, group, scorer, gpus, allowed)
            if got is None:
                break
            placed.append((g, got))
        if len(placed) < len(on):
            continue
        work.schedulable = table.schedulable
        table.cpu_free, table.mem_free, table.gpu_free = work.cpu_free, work.mem_free, work.gpu_free
        table._refresh_gpu_rows(np.arange(len(table)))
        for g, got in placed:
            moves.append(Move(g.key, tuple(got), tuple(sorted({a.node for a in g.assignments}))))
            where[g.key] = RunningGang(g.key, g.request, tuple(got), g.queue, g.priority, g.started,
                                       g.preemptible)
            moved.add(g.key)
        delete.append(name)
        reasons[name] = (f"under-used ({util[i]:.0%} < {underused:.0%}): moved "
                         f"{', '.join(g.key for g, _ in placed)}; saves {price[name]:.2f}/h")
