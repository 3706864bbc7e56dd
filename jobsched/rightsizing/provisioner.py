"""Provisioner: the cheapest set of new nodes on which every pending gang fits.

"Fits" means what the scheduler means: every candidate set is checked by placing every replica of
every gang with :func:`jobsched.core.gang.place_gang` on a NodeTable of the candidate nodes (plus,
optionally, the free room of the current nodes). Candidate nodes are rows of one table; a set of
nodes is a mask of open rows, so no table is rebuilt.

1. unfit:    gangs that do not fit even on every node maxCount allows, alone.
2. deferred: gangs (in the given priority order) that do not fit beside the ones before them.
3. greedy:   largest gang first; if it does not fit the open nodes, open the cheapest number of
             nodes of one type that makes it fit.
4. improve:  close an open node, or swap it for a cheaper type, when the gangs on it can be
             placed again whole (local search, bounded).
5. exact:    for small problems, best-first search over node counts per type in order of cost:
             the first set that fits is the cheapest. ``optimal`` says whether the answer is proven
             cheapest (by that search, or by meeting a per-resource cost floor).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from jobsched.core.gang import Assignment, PodGroup, allowed_mask, place_gang, placeable_count, unplace
from jobsched.core.nodes import NodeTable
from jobsched.core.policies import make_policy
from jobsched.rightsizing.pools import InstanceType

B = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ProvisionPlan:
    nodes: list[tuple[str, int]]  # (instance type, how many to create)
    cost_per_hour: float
    unfit: list[str]  # gangs no allowed set of nodes can ever host
    reasons: dict[str, str] = field(default_factory=dict)  # why each unfit/deferred gang is left out
    deferred: list[str] = field(default_factory=list)  # fit alone, not together within maxCount
    placements: dict[str, list[str]] = field(default_factory=dict)  # gang -> planned node per rank
    optimal: bool = True


def _size(g: PodGroup) -> tuple[int, int, int, str]:
    t = g.total()
    return (t.gpu_total_milli, t.memory, t.cpu_milli, g.key)


class _Space:
    """One table: the current nodes (with their free room), then up to ``rows[i]`` new nodes of
    each type i. ``kind[row]`` is the type index, -1 for current nodes."""

    def __init__(self, types: Sequence[InstanceType], rows: Sequence[int], current: NodeTable | None,
                 policy: str) -> None:
        self.types = list(types)
        self.price = np.asarray([t.price_per_hour for t in types], dtype=np.float64)
        self.scorer, self.gpus = make_policy(policy)
        names: list[str] = []
        cpu: list[int] = []
        mem: list[int] = []
        gpus: list[int] = []
        models: list[str] = []
        labels: list[dict[str, str]] = []
        gmem: list[int] = []
        k = len(current) if current is not None else 0
        if current is not None:
            names += current.names
            cpu += current.cpu_cap.tolist()
            mem += current.mem_cap.tolist()
            gpus += current.gpu_count.tolist()
            models += current.gpu_models_of()
            labels += current.labels
            gmem += current.gpu_mem.tolist()
        kind = [-1] * k
        for i, (t, n) in enumerate(zip(types, rows, strict=True)):
            r = t.resources()
            names += [f"{t.name}#{j}" for j in range(n)]
            cpu += [r.cpu_milli] * n
            mem += [r.memory] * n
            gpus += [r.gpus] * n
            models += [t.gpu_model] * n
            labels += [t.node_labels()] * n
            gmem += [t.gpu_memory_bytes()] * n
            kind += [i] * n
        self.base = NodeTable.from_arrays(names, cpu, mem, gpus, models, labels, gpu_memory=gmem)
        if current is not None and k:
            self.base.cpu_free[:k] = current.cpu_free
            self.base.mem_free[:k] = current.mem_free
            self.base.schedulable[:k] = current.schedulable
            self.base.gpu_free[:k, : current.gpu_free.shape[1]] = current.gpu_free
            self.base._refresh_gpu_rows(np.arange(k))
        self.kind = np.asarray(kind, dtype=np.int64)
        self._allowed: dict[str, B] = {}

    def closed_rows(self, i: int, open_: B) -> npt.NDArray[np.intp]:
        return np.flatnonzero((self.kind == i) & ~open_)

    def mask(self, counts: Sequence[int]) -> B:
        m: B = np.asarray(self.kind == -1, dtype=bool)
        for i, c in enumerate(counts):
            m[np.flatnonzero(self.kind == i)[:c]] = True
        return m

    def counts(self, open_: B) -> list[int]:
        return [int((open_ & (self.kind == i)).sum()) for i in range(len(self.types))]

    def cost(self, open_: B) -> float:
        return float(self.price @ np.asarray(self.counts(open_), dtype=np.float64))

    def place(self, table: NodeTable, g: PodGroup, open_: B) -> list[Assignment] | None:
        if g.key not in self._allowed:
            self._allowed[g.key] = allowed_mask(table, g)
        return place_gang(table, g, self.scorer, self.gpus, self._allowed[g.key] & open_)

    def fits(self, table: NodeTable, g: PodGroup, open_: B) -> bool:
        got = self.place(table, g, open_)
        if got is not None:
            unplace(table, g.request, got)
        return got is not None

    def place_all(self, open_: B, gangs: Sequence[PodGroup]) -> dict[str, list[Assignment]] | None:
        table = self.base.copy()
        out: dict[str, list[Assignment]] = {}
        for g in sorted(gangs, key=_size, reverse=True):
            got = self.place(table, g, open_)
            if got is None:
                return None
            out[g.key] = got
        return out


def _per_node(space: _Space, g: PodGroup) -> list[int]:
    """How many replicas of ``g`` one empty node of each type holds (0: not allowed/too small)."""
    out = []
    for t in space.types:
        r = t.resources()
        one = NodeTable.from_arrays([t.name], [r.cpu_milli], [r.memory], [r.gpus], [t.gpu_model],
                                    [t.node_labels()], gpu_memory=[t.gpu_memory_bytes()])
        n = placeable_count(one, g, space.scorer, space.gpus) if allowed_mask(one, g)[0] else 0
        out.append(min(n, 1) if g.placement == "StrictSpread" else n)
    return out


def plan(
    pending: Sequence[PodGroup],
    pools: Sequence[InstanceType],
    existing: Mapping[str, int],
    *,
    current: NodeTable | None = None,
    policy: str = "bestfit",
    budget: int = 2_000,
    exact_replicas: int = 64,
) -> ProvisionPlan:
    """Cheapest new nodes (within each type's ``maxCount`` minus ``existing``) that host every gang
    of ``pending`` at its (right-sized) request. ``pending`` is in priority order: when not all fit
    within maxCount, the later ones are deferred. ``current``: the current nodes with their free
    room (optional). ``budget`` bounds the local and exact searches; the exact search runs when
    the gangs have at most ``exact_replicas`` replicas in all."""
    types = [t for t in pools if t.max_count - existing.get(t.name, 0) > 0]
    avail = [t.max_count - existing.get(t.name, 0) for t in types]
    probe = _Space(types, [0] * len(types), None, policy)
    per = {g.key: _per_node(probe, g) for g in pending}
    # Rows per type: all a small problem could use; else what the gangs need packed apart.
    small = sum(g.replicas for g in pending) <= exact_replicas
    rows = [min(a, sum((g.replicas if small else math.ceil(g.replicas / per[g.key][i]))
                       for g in pending if per[g.key][i]))
            for i, a in enumerate(avail)]
    space = _Space(types, rows, current, policy)
    unfit: list[str] = []
    deferred: list[str] = []
    reasons: dict[str, str] = {}
    accepted: list[PodGroup] = []
    everything = np.ones(len(space.base), dtype=bool)
    full = space.base.copy()
    for g in pending:
        if not space.fits(space.base.copy(), g, everything):
            unfit.append(g.key)
            one = dataclasses.replace(g, replicas=1)
            reasons[g.key] = ("no instance type can host one replica (resources, selector or GPU model)"
                              if not space.fits(space.base.copy(), one, everything)
                              else f"all {g.replicas} replicas do not fit even on every node maxCount allows")
        elif space.place(full, g, everything) is None:
            deferred.append(g.key)
            reasons[g.key] = "fits alone, but not beside the gangs before it within maxCount"
        else:
            accepted.append(g)
    if not accepted:
        return ProvisionPlan([], 0.0, unfit, reasons, deferred)
    table, open_, placed, dropped = _greedy(space, accepted, per)
    for key in dropped:
        deferred.append(key)
        reasons[key] = "fits alone, but not beside the gangs before it within maxCount"
    accepted = [g for g in accepted if g.key not in dropped]
    open_ = _improve(space, table, open_, placed, {g.key: g for g in accepted}, budget)
    optimal = space.cost(open_) <= _cost_floor(space, accepted, current) + 1e-9
    if not optimal and sum(g.replicas for g in accepted) <= exact_replicas:
        found, optimal = _exact(space, accepted, per, space.cost(open_), budget)
        if found is not None:
            open_, placed = space.mask(found), space.place_all(space.mask(found), accepted) or placed
    names = space.base.names
    nodes = [(t.name, c) for t, c in zip(types, space.counts(open_), strict=True) if c]
    where = {k: [names[a.row] for a in sorted(v, key=lambda a: a.rank)] for k, v in placed.items()}
    return ProvisionPlan(nodes, space.cost(open_), unfit, reasons, deferred, where, optimal)


def _greedy(space: _Space, gangs: Sequence[PodGroup], per: Mapping[str, list[int]]
            ) -> tuple[NodeTable, B, dict[str, list[Assignment]], list[str]]:
    """Largest gang first; open the cheapest count of one type that makes it fit."""
    table = space.base.copy()
    open_ = space.kind == -1
    placed: dict[str, list[Assignment]] = {}
    dropped: list[str] = []
    for g in sorted(gangs, key=_size, reverse=True):
        got = space.place(table, g, open_)
        if got is None:
            best: tuple[float, int, int] | None = None
            for i in range(len(space.types)):
                closed = space.closed_rows(i, open_)
                k = _min_count(space, table, g, open_, closed, per[g.key][i])
                if k and (best is None or (space.price[i] * k, k) < best[:2]):
                    best = (float(space.price[i] * k), k, i)
            if best is not None:
                open_[space.closed_rows(best[2], open_)[: best[1]]] = True
            else:  # needs a mix of types: open the cheapest closed nodes one at a time
                for r in sorted(np.flatnonzero(~open_), key=lambda r: space.price[space.kind[r]]):
                    open_[r] = True
                    if space.fits(table, g, open_):
                        break
            got = space.place(table, g, open_)
        if got is None:
            dropped.append(g.key)
        else:
            placed[g.key] = got
    return table, open_, placed, dropped


def _min_count(space: _Space, table: NodeTable, g: PodGroup, open_: B, closed: npt.NDArray[np.intp],
               per_node: int) -> int:
    """The fewest closed nodes of one type whose opening makes ``g`` fit (0: none do)."""
    if not per_node or not closed.size:
        return 0

    def ok(k: int) -> bool:
        m = open_.copy()
        m[closed[:k]] = True
        return space.fits(table, g, m)

    hi = min(math.ceil(g.replicas / per_node), closed.size)
    if not ok(hi):
        if hi == closed.size or not ok(closed.size):
            return 0
        lo, hi = hi + 1, closed.size
    else:
        lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def _improve(space: _Space, table: NodeTable, open_: B, placed: dict[str, list[Assignment]],
             gangs: Mapping[str, PodGroup], budget: int) -> B:
    """Close an open new node, or swap it for a cheaper type, when its gangs move whole."""
    trials, changed = 0, True
    while changed and trials < budget:
        changed = False
        load = np.zeros(len(table), dtype=np.int64)
        for a in (a for v in placed.values() for a in v):
            load[a.row] += 1
        rows = sorted(np.flatnonzero(open_ & (space.kind >= 0)),
                      key=lambda r: (-space.price[space.kind[r]], load[r], r))
        for r in rows:
            price = space.price[space.kind[r]]
            on = [k for k, v in placed.items() if any(a.row == r for a in v)]
            alts: list[int | None] = [None]
            for j in np.argsort(space.price, kind="stable"):
                closed = space.closed_rows(int(j), open_)
                if space.price[j] < price and closed.size:
                    alts.append(int(closed[0]))
            for alt in alts:
                trials += 1
                m = open_.copy()
                m[r] = False
                if alt is not None:
                    m[alt] = True
                if _move(space, table, m, placed, [gangs[k] for k in on]):
                    open_, changed = m, True
                    break
                if trials >= budget:
                    return open_
            if changed:
                break
    return open_


def _move(space: _Space, table: NodeTable, open_: B, placed: dict[str, list[Assignment]],
          gangs: Sequence[PodGroup]) -> bool:
    """Place ``gangs`` again, whole, on ``open_``; on failure leave everything as it was."""
    for g in gangs:
        unplace(table, g.request, placed[g.key])
    new: list[tuple[PodGroup, list[Assignment]]] = []
    for g in sorted(gangs, key=_size, reverse=True):
        got = space.place(table, g, open_)
        if got is None:
            for g2, v in new:
                unplace(table, g2.request, v)
            for g2 in gangs:
                for a in placed[g2.key]:
                    table.allocate(a.row, g2.request, a.gpus)
            return False
        new.append((g, got))
    placed.update({g.key: v for g, v in new})
    return True


def _cost_floor(space: _Space, gangs: Sequence[PodGroup], current: NodeTable | None) -> float:
    """No plan is cheaper: each resource's shortfall bought at its cheapest price per unit."""
    demand = np.zeros(3)
    for g in gangs:
        t = g.total()
        demand += (t.cpu_milli, t.memory, g.replicas * g.request.gpus)
    if current is not None:
        ok = current.schedulable
        demand -= (current.cpu_free[ok].sum(), current.mem_free[ok].sum(), current.gpu_full[ok].sum())
    floor = 0.0
    for d in range(3):
        caps = np.asarray([(r.cpu_milli, r.memory, r.gpus)[d] for r in (t.resources() for t in space.types)],
                          dtype=np.float64)
        has = caps > 0
        if demand[d] > 0 and has.any():
            floor = max(floor, float(demand[d] * (space.price[has] / caps[has]).min()))
    return floor


def _exact(space: _Space, gangs: Sequence[PodGroup], per: Mapping[str, list[int]], upper: float,
           budget: int) -> tuple[list[int] | None, bool]:
    """Best-first over node counts in order of cost; the first that fits is the cheapest.
    Returns (counts or None when nothing cheaper than ``upper`` fits, proven)."""
    n_types = len(space.types)
    avail = [int((space.kind == i).sum()) for i in range(n_types)]
    per_m = np.asarray([per[g.key] for g in gangs], dtype=np.int64)
    need = np.asarray([g.replicas for g in gangs], dtype=np.int64)
    have = np.zeros(len(gangs), dtype=np.int64)
    if (space.kind == -1).any():
        cur = space.mask([0] * n_types)
        have = np.asarray([placeable_count(_only(space.base, cur), g, space.scorer, space.gpus)
                           for g in gangs], dtype=np.int64)
    heap: list[tuple[float, int, tuple[int, ...], int]] = [(0.0, 0, (0,) * n_types, 0)]
    popped = checks = 0
    while heap:
        cost, n, counts, last = heapq.heappop(heap)
        if cost >= upper - 1e-9:
            return None, True
        if popped >= budget * 10 or checks >= budget:
            return None, False
        popped += 1
        if bool(np.all(per_m @ np.asarray(counts, dtype=np.int64) + have >= need)):
            checks += 1
            if space.place_all(space.mask(counts), gangs) is not None:
                return list(counts), True
        for j in range(last, n_types):
            if counts[j] < avail[j]:
                heapq.heappush(heap, (cost + float(space.price[j]), n + 1,
                                      counts[:j] + (counts[j] + 1,) + counts[j + 1:], j))
    return None, True


def _only(table: NodeTable, rows: B) -> NodeTable:
    t = table.copy()
    t.schedulable = t.schedulable & rows
    return t
