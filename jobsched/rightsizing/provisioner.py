"""Provisioner: the cheapest set of new nodes on which every pending gang fits.

"Fits" means what the scheduler means: each candidate set is checked by placing every replica of
every gang with :func:`jobsched.core.gang.place_gang` on a NodeTable of the candidate nodes (plus,
optionally, the free room of the current nodes). The search is best-first over node counts per
instance type, in order of hourly cost, so the first set that fits is the cheapest one; a greedy
plan bounds it and is the answer when the search budget runs out (``optimal`` is then False).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from jobsched.core.gang import PodGroup, allowed_mask, place_gang, placeable_count
from jobsched.core.nodes import NodeTable
from jobsched.core.policies import make_policy
from jobsched.rightsizing.pools import InstanceType

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


class _Space:
    """Candidate tables: the current nodes' free room plus ``counts[i]`` new nodes of type i."""

    def __init__(self, types: Sequence[InstanceType], current: NodeTable | None, policy: str) -> None:
        self.types = list(types)
        self.res = [t.resources() for t in self.types]
        self.current = current
        self.scorer, self.gpus = make_policy(policy)

    def table(self, counts: Sequence[int]) -> NodeTable:
        names: list[str] = []
        cpu: list[int] = []
        mem: list[int] = []
        gpus: list[int] = []
        models: list[str] = []
        labels: list[dict[str, str]] = []
        cur = self.current
        if cur is not None:
            names += cur.names
            cpu += cur.cpu_cap.tolist()
            mem += cur.mem_cap.tolist()
            gpus += cur.gpu_count.tolist()
            models += [cur.models[m] if m >= 0 else "" for m in cur.gpu_model]
            labels += cur.labels
        for t, r, n in zip(self.types, self.res, counts, strict=True):
            names += [f"{t.name}#{j}" for j in range(n)]
            cpu += [r.cpu_milli] * n
            mem += [r.memory] * n
            gpus += [r.gpus] * n
            models += [t.gpu_model] * n
            labels += [t.node_labels()] * n
        tab = NodeTable.from_arrays(names, cpu, mem, gpus, models, labels)
        if cur is not None and len(cur):
            k, g = len(cur), cur.gpu_free.shape[1]
            tab.cpu_free[:k] = cur.cpu_free
            tab.mem_free[:k] = cur.mem_free
            tab.schedulable[:k] = cur.schedulable
            tab.gpu_free[:k, :g] = cur.gpu_free
            tab._refresh_gpu_rows(np.arange(k))
        return tab

    def place_all(self, counts: Sequence[int], gangs: Sequence[PodGroup]) -> dict[str, list[str]] | None:
        tab = self.table(counts)
        out: dict[str, list[str]] = {}
        for g in sorted(gangs, key=_size, reverse=True):
            got = place_gang(tab, g, self.scorer, self.gpus)
            if got is None:
                return None
            out[g.key] = [a.node for a in got]
        return out

    def per_node(self, g: PodGroup) -> list[int]:
        """How many replicas of ``g`` one empty node of each type holds (0: not allowed/too small)."""
        out = []
        for t, r in zip(self.types, self.res, strict=True):
            one = NodeTable.from_arrays([t.name], [r.cpu_milli], [r.memory], [r.gpus], [t.gpu_model],
                                        [t.node_labels()])
            n = placeable_count(one, g, self.scorer, self.gpus) if allowed_mask(one, g)[0] else 0
            out.append(min(n, 1) if g.placement == "StrictSpread" else n)
        return out


def _size(g: PodGroup) -> tuple[int, int, int, str]:
    t = g.total()
    return (t.gpu_total_milli, t.memory, t.cpu_milli, g.key)


def _cost(types: Sequence[InstanceType], counts: Sequence[int]) -> float:
    return float(sum(t.price_per_hour * c for t, c in zip(types, counts, strict=True)))


def plan(
    pending: Sequence[PodGroup],
    pools: Sequence[InstanceType],
    existing: Mapping[str, int],
    *,
    current: NodeTable | None = None,
    policy: str = "bestfit",
    budget: int = 20_000,
) -> ProvisionPlan:
    """Cheapest new nodes (within each type's ``maxCount`` minus ``existing``) that host every
    gang of ``pending`` at its (right-sized) request. ``pending`` is in priority order: when
    not all fit within maxCount, the later ones are deferred. ``current``: the current nodes
    with their free room (optional; without it only new nodes are counted on)."""
    types = [t for t in pools if t.max_count - existing.get(t.name, 0) > 0]
    avail = [t.max_count - existing.get(t.name, 0) for t in types]
    space = _Space(types, current, policy)
    unfit: list[str] = []
    deferred: list[str] = []
    reasons: dict[str, str] = {}
    accepted: list[PodGroup] = []
    rows: list[list[int]] = []
    for g in pending:
        per = space.per_node(g)
        if not any(per) and (current is None or placeable_count(current.emptied(), g, space.scorer,
                                                                   space.gpus) == 0):
            unfit.append(g.key)
            reasons[g.key] = "no instance type can host one replica (resources, selector or GPU model)"
        elif space.place_all(avail, [g]) is None:
            unfit.append(g.key)
            reasons[g.key] = f"all {g.replicas} replicas do not fit even on every node maxCount allows"
        elif space.place_all(avail, [*accepted, g]) is None:
            deferred.append(g.key)
            reasons[g.key] = "fits alone, but not beside the gangs before it within maxCount"
        else:
            accepted.append(g)
            rows.append(per)
    if not accepted:
        return ProvisionPlan([], 0.0, unfit, reasons, deferred)
    best, optimal = _search(space, types, avail, accepted, np.asarray(rows, dtype=np.int64), budget)
    placed = space.place_all(best, accepted) or {}
    nodes = [(t.name, c) for t, c in zip(types, best, strict=True) if c]
    return ProvisionPlan(nodes, _cost(types, best), unfit, reasons, deferred, placed, optimal)


class _Bound:
    """A necessary condition, cheap to test: each gang's replicas fit the nodes' per-type capacity."""

    def __init__(self, space: _Space, gangs: Sequence[PodGroup], per_node: I64) -> None:
        self.per_node = per_node
        self.need = np.asarray([g.replicas for g in gangs], dtype=np.int64)
        self.have = np.zeros(len(gangs), dtype=np.int64)
        # Totals: rows cpu, memory, GPUs; columns one per instance type / per gang.
        self.cap = np.asarray([[r.cpu_milli, r.memory, r.gpus] for r in space.res], dtype=np.int64).T
        tot = [g.total() for g in gangs]
        self.demand = np.cumsum(np.asarray([[t.cpu_milli, t.memory, g.replicas * g.request.gpus]
                                            for t, g in zip(tot, gangs, strict=True)], dtype=np.int64), axis=0)
        self.free = np.zeros(3, dtype=np.int64)
        cur = space.current
        if cur is not None:
            self.have = np.asarray([placeable_count(cur, g, space.scorer, space.gpus)
                                    for g in gangs], dtype=np.int64)
            ok = cur.schedulable
            self.free = np.asarray([cur.cpu_free[ok].sum(), cur.mem_free[ok].sum(), cur.gpu_full[ok].sum()],
                                   dtype=np.int64)

    def cost_floor(self, types: Sequence[InstanceType]) -> float:
        """No plan is cheaper: each resource's shortfall bought at its cheapest price per unit."""
        price = np.asarray([t.price_per_hour for t in types], dtype=np.float64)
        short = np.maximum(self.demand[-1] - self.free, 0)
        floor = 0.0
        for d in range(3):
            has = self.cap[d] > 0
            if short[d] and has.any():
                floor = max(floor, float(short[d] * (price[has] / self.cap[d][has]).min()))
        return floor

    def ok(self, counts: Sequence[int], upto: int | None = None) -> bool:
        c = np.asarray(counts, dtype=np.int64)
        last = (upto or len(self.need)) - 1
        if bool(np.any(self.cap @ c + self.free < self.demand[last])):
            return False
        got = self.per_node[:upto] @ c + self.have[:upto]
        return bool(np.all(got >= self.need[:upto]))


def _greedy(space: _Space, types: Sequence[InstanceType], avail: Sequence[int],
            gangs: Sequence[PodGroup], bound: _Bound) -> list[int]:
    """Gangs in the given order; each gets the cheapest single-type addition that makes it fit."""
    counts = [0] * len(types)
    for n in range(1, len(gangs) + 1):
        done = gangs[:n]
        if bound.ok(counts, n) and space.place_all(counts, done) is not None:
            continue
        options = []
        for i in range(len(types)):
            for k in range(1, avail[i] - counts[i] + 1):
                trial = list(counts)
                trial[i] += k
                if bound.ok(trial, n) and space.place_all(trial, done) is not None:
                    options.append((types[i].price_per_hour * k, k, i))
                    break
        if options:
            _, k, i = min(options)
            counts[i] += k
            continue
        while space.place_all(counts, done) is None:  # needs a mix: add the cheapest node left
            left = [j for j in range(len(types)) if counts[j] < avail[j]]
            if not left:
                break
            counts[min(left, key=lambda j: types[j].price_per_hour)] += 1
    return counts


def _improve(space: _Space, types: Sequence[InstanceType], gangs: Sequence[PodGroup], bound: _Bound,
             counts: list[int], avail: Sequence[int]) -> list[int]:
    """Local search on a plan: drop a node, or swap one node for a cheaper type, while all fit."""
    order = sorted(range(len(types)), key=lambda i: -types[i].price_per_hour)
    changed = True
    while changed:
        changed = False
        for i in (i for i in order if counts[i]):
            swaps = [j for j in reversed(order) if types[j].price_per_hour < types[i].price_per_hour
                     and counts[j] < avail[j]]
            for trial in ([*counts[:i], counts[i] - 1, *counts[i + 1:]],
                          *([c + (k == j) - (k == i) for k, c in enumerate(counts)] for j in swaps)):
                if bound.ok(trial) and space.place_all(trial, gangs) is not None:
                    counts, changed = trial, True
                    break
            if changed:
                break
    return counts


def _search(space: _Space, types: Sequence[InstanceType], avail: Sequence[int], gangs: Sequence[PodGroup],
            per_node: I64, budget: int) -> tuple[list[int], bool]:
    bound = _Bound(space, gangs, per_node)
    upper = _improve(space, types, gangs, bound, _greedy(space, types, avail, gangs, bound), avail)
    limit = _cost(types, upper) - 1e-9
    if limit <= bound.cost_floor(types):
        return upper, True
    prices = [t.price_per_hour for t in types]
    heap: list[tuple[float, int, tuple[int, ...], int]] = [(0.0, 0, (0,) * len(types), 0)]
    popped = checks = 0
    while heap:
        cost, n, counts, last = heapq.heappop(heap)
        if cost >= limit:
            return upper, True
        if popped >= budget or checks >= budget // 50:
            return upper, False
        popped += 1
        if bound.ok(counts):
            checks += 1
            if space.place_all(counts, gangs) is not None:
                return list(counts), True
        for j in range(last, len(types)):
            if counts[j] < avail[j]:
                nxt = counts[:j] + (counts[j] + 1,) + counts[j + 1:]
                heapq.heappush(heap, (cost + prices[j], n + 1, nxt, j))
    return upper, True
