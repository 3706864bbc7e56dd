"""Choose whole lower-priority gangs to evict so that a gang fits (never half a gang)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jobsched.core.framework import GpuChooser, ScorePlugin
from jobsched.core.gang import Assignment, PodGroup, place_gang, unplace
from jobsched.core.nodes import NodeTable
from jobsched.core.snapshot import RunningGang


def release_gangs(table: NodeTable, gangs: Sequence[RunningGang]) -> None:
    for g in gangs:
        for a in g.assignments:
            row = table.index.get(a.node)
            if row is not None:
                table.release(row, g.request, a.gpus)


def reallocate_gangs(table: NodeTable, gangs: Sequence[RunningGang]) -> None:
    for g in gangs:
        for a in g.assignments:
            row = table.index.get(a.node)
            if row is not None:
                table.allocate(row, g.request, a.gpus)


def select_victims(
    table: NodeTable,
    group: PodGroup,
    candidates: Sequence[RunningGang],
    scorer: ScorePlugin,
    gpus: GpuChooser,
    quota_ok: Callable[[Sequence[RunningGang]], bool],
) -> tuple[list[RunningGang], list[Assignment]] | None:
    """Greedy, then reprieve (as kube-scheduler does): evict the lowest-priority, most recently
    started gangs until ``group`` fits and its queue quota allows it; then give back every victim
    that turns out not to be needed. Leaves ``table`` unchanged. Returns victims and the placement
    the group would get once they are gone, or None."""
    order = sorted(candidates, key=lambda g: (g.priority, -g.started, g.key))
    chosen: list[RunningGang] = []
    placement = None
    for g in order:
        chosen.append(g)
        release_gangs(table, [g])
        if not quota_ok(chosen):
            continue
        placement = place_gang(table, group, scorer, gpus)
        if placement is not None:
            unplace(table, group.request, placement)
            break
    if placement is None:
        reallocate_gangs(table, chosen)
        return None
    # Reprieve: try to keep each victim, highest priority first.
    for g in sorted(chosen, key=lambda g: (-g.priority, g.started)):
        rest = [v for v in chosen if v is not g]
        if not quota_ok(rest):
            continue
        reallocate_gangs(table, [g])
        trial = place_gang(table, group, scorer, gpus)
        if trial is not None:
            unplace(table, group.request, trial)
            chosen, placement = rest, trial
        else:
            release_gangs(table, [g])
    reallocate_gangs(table, chosen)
    return chosen, placement
