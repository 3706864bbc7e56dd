"""Gangs: every replica of a job placed at once, or none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from jobsched.core.constraints import NONE, Constraints, constraints_mask, preference
from jobsched.core.fit import feasible
from jobsched.core.framework import GpuChooser, ScorePlugin
from jobsched.core.nodes import NodeTable
from jobsched.core.scorecache import ScoreCache
from jobsched.spec.resources import Resources


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where one replica goes: a node row (and name) and the GPU devices it gets."""

    rank: int
    node: str
    row: int
    gpus: tuple[int, ...] = ()


@dataclass(slots=True)
class PodGroup:
    """A pending job as the core sees it. ``request`` is per replica (already right-sized)."""

    key: str
    request: Resources
    replicas: int = 1
    queue: str = "default"
    priority: int = 0
    created: float = 0.0
    node_selector: dict[str, str] = field(default_factory=dict)
    gpu_models: tuple[str, ...] = ()
    placement: str = "Pack"  # Pack | Spread | StrictSpread
    preemptible: bool = True
    constraints: Constraints = NONE  # tolerations, node affinity (core/constraints.py)

    def total(self) -> Resources:
        return self.request.scaled(self.replicas)

    def shape(self) -> tuple[object, ...]:
        """Jobs with the same shape fit or not alike: used to memoize never-fits checks."""
        return (self.request, self.replicas, tuple(sorted(self.node_selector.items())),
                self.gpu_models, self.placement, self.constraints)


def allowed_mask(table: NodeTable, group: PodGroup) -> npt.NDArray[np.bool_]:
    """Static constraints (node selector, GPU model, taints and node affinity): independent of what
    is running."""
    mask = np.ones(len(table), dtype=bool)
    for k, v in group.node_selector.items():
        mask &= table.label_mask(k, v)
    if group.constraints or table.taints:
        allowed = constraints_mask(table, group.constraints)
        if allowed is not None:
            mask &= allowed
    if group.gpu_models and group.request.gpus:
        mask &= table.model_mask(group.gpu_models)
    return mask


def place_gang(
    table: NodeTable,
    group: PodGroup,
    scorer: ScorePlugin,
    gpus: GpuChooser,
    allowed: npt.NDArray[np.bool_] | None = None,
    cache: ScoreCache | None = None,
) -> list[Assignment] | None:
    """Place all replicas on ``table`` (mutating it), or restore it and return None. With a
    ``cache`` (one per cycle) replicas of a row-local scorer reuse their class's scores."""
    if allowed is None:
        allowed = allowed_mask(table, group)
    req = group.request
    done: list[Assignment] = []
    used = np.zeros(len(table), dtype=bool)
    prefer = preference(table, group.constraints)  # preferred node affinity, PreferNoSchedule taints
    # The score cache holds the scorer's scores only: a gang with preferences scores afresh.
    cached = cache is not None and prefer is None and cache.covers(group)
    for rank in range(group.replicas):
        row = _cached_choice(cache, table, group, allowed, done) if cached else -1
        if row < 0:
            mask = feasible(table, req) & allowed
            if group.placement == "StrictSpread":
                mask &= ~used
            rows = np.flatnonzero(mask)
            if rows.size == 0:
                unplace(table, req, done)
                return None
            scores = score_rows(scorer, table, req, rows, group)
            if prefer is not None:
                scores = scores + prefer[rows]
            if group.placement == "Pack" and done:
                scores = scores + np.where(used[rows], 1e3, 0.0)  # keep a gang together
            elif group.placement == "Spread" and done:
                scores = scores - np.where(used[rows], 1e3, 0.0)
            row = int(rows[int(np.argmax(scores))])
        concrete = table.resolve(req, row)
        gpu_idx = gpus.choose(table, row, concrete)
        table.allocate(row, concrete, gpu_idx)
        used[row] = True
        done.append(Assignment(rank, table.names[row], row, gpu_idx))
    return done


def _cached_choice(cache: ScoreCache | None, table: NodeTable, group: PodGroup, allowed: npt.NDArray[np.bool_],
                   done: list[Assignment]) -> int:
    """The row the uncached path would pick, from the class's cached scores (the same gang
    adjustments); -1 where no row scores above -inf (the uncached path then decides)."""
    assert cache is not None
    scores = cache.scores(table, group, allowed)
    if done:
        used = np.fromiter({a.row for a in done}, dtype=np.intp)
        scores = scores.copy()
        if group.placement == "StrictSpread":
            scores[used] = -np.inf
        elif group.placement == "Pack":
            scores[used] += 1e3
        elif group.placement == "Spread":
            scores[used] -= 1e3
    row = int(np.argmax(scores))
    return row if scores[row] > -np.inf else -1


def score_rows(scorer: ScorePlugin, table: NodeTable, req: Resources, rows: npt.NDArray[np.intp],
               group: PodGroup) -> npt.NDArray[np.float64]:
    """Scores of ``rows``. A memory-sized share is scored row by row at the share it takes there
    (one call per distinct share: GPU memories are few)."""
    if not req.gpu_share:
        return scorer.score(table, req, rows, group)
    need = table.share_need(req)[rows]
    out = np.zeros(rows.size, dtype=np.float64)
    for m in np.unique(need):
        sel = need == m
        concrete = Resources(req.cpu_milli, req.memory, 1, int(m), req.gpu_memory)
        out[sel] = scorer.score(table, concrete, rows[sel], group)
    return out


def unplace(table: NodeTable, req: Resources, done: Sequence[Assignment]) -> None:
    for a in done:
        table.release(a.row, req, a.gpus)


def placeable_count(table: NodeTable, group: PodGroup, scorer: ScorePlugin, gpus: GpuChooser) -> int:
    """How many replicas of ``group`` fit at once (for reasons); leaves ``table`` unchanged."""
    single = PodGroup(group.key, group.request, 1, group.queue, group.priority, group.created,
                      group.node_selector, group.gpu_models, group.placement, group.preemptible,
                      group.constraints)
    allowed = allowed_mask(table, group)
    done: list[Assignment] = []
    for rank in range(group.replicas):
        got = place_gang(table, single, scorer, gpus, allowed)
        if got is None:
            break
        done.append(Assignment(rank, got[0].node, got[0].row, got[0].gpus))
    unplace(table, group.request, done)
    return len(done)
