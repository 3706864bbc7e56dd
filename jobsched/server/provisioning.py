"""Node right-sizing in the live server: when gangs pend for lack of capacity, add the cheapest set
of nodes that fits them (provisioner.plan); remove nodes the provider added once they stay empty
past the pool's TTL (consolidator); charge each job its share of node-hours x price.

The provider is the NodeProvider protocol: ``LocalVirtualProvider`` here (virtual nodes on this
machine, after an optional delay), KWOK/Karpenter providers on Kubernetes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from jobsched.core.gang import PodGroup
from jobsched.core.snapshot import Snapshot
from jobsched.rightsizing.pools import NodePool, SimulatedProvider
from jobsched.spec.node import Node
from jobsched.spec.resources import Resources

log = logging.getLogger("jobsched.provisioning")


class LocalVirtualProvider(SimulatedProvider):
    """Virtual nodes on this machine (the local backend runs their replicas here), driven by the
    server's clock: a created node appears after ``delay`` seconds."""


class Provisioning:
    def __init__(self, pool: NodePool, provider: Any, clock: Callable[[], float],
                 consolidate_every: float = 2.0) -> None:
        self.pool, self.provider, self.clock = pool, provider, clock
        self.consolidate_every = consolidate_every
        self._last_consolidation = 0.0
        self._idle_since: dict[str, float] = {}
        self.virtual = isinstance(provider, SimulatedProvider)  # else its nodes reach the backend itself
        self._requested: dict[str, float] = {}  # node name -> when asked for

    def nodes(self) -> list[Node]:
        """Nodes to add to the backend's own list: the virtual ones (real providers' nodes show up
        through the backend, e.g. as Kubernetes Node objects)."""
        if not self.virtual:
            return []
        self.provider.advance(self.clock())
        return list(self.provider.list())

    def shapes(self) -> list[Any]:
        """What could still be added (for the core's never-fits check)."""
        counts = self.provider.counts() if hasattr(self.provider, "counts") else {}
        return [t.shape(counts.get(t.name, 0)) for t in self.pool.instance_types]

    def owned(self) -> set[str]:
        return {n.name for n in self.provider.list()}

    def provision(self, waiting: Sequence[PodGroup], snap: Snapshot) -> list[tuple[str, str]]:
        """Create nodes for gangs waiting for capacity. Returns (job key, event message) pairs."""
        from jobsched.rightsizing.provisioner import plan

        now = self.clock()
        self._requested = {n: t for n, t in self._requested.items()
                           if n not in snap.table.index and now - t < 600}
        if not waiting or self._requested:
            return []  # nodes already on their way: wait for them before planning more
        counts = self.provider.counts() if hasattr(self.provider, "counts") else {}
        p = plan(list(waiting), self.pool.instance_types, counts, current=snap.table)
        out: list[tuple[str, str]] = []
        if not p.nodes:
            for key in p.unfit:
                out.append((key, f"no node pool instance type can host this gang: {p.reasons.get(key, '')}"))
            return out
        made = []
        for itype, n in p.nodes:
            made += self.provider.create(itype, n)
        self._requested.update({name: now for name in made})
        what = ", ".join(f"{n} x {t}" for t, n in p.nodes)
        msg = f"provisioning {what} (${p.cost_per_hour:.2f}/h): {', '.join(made)}"
        log.info(msg)
        for g in waiting:
            if g.key not in p.unfit and g.key not in p.deferred:
                out.append((g.key, msg))
        return out

    def consolidate(self, snap: Snapshot) -> list[str]:
        """Delete provider nodes that have been empty for the pool's TTL. Returns deleted names."""
        from jobsched.rightsizing.consolidator import consolidate

        now = self.clock()
        if now - self._last_consolidation < self.consolidate_every:
            return []
        self._last_consolidation = now
        owned = self.owned()
        busy = {a.node for g in snap.running for a in g.assignments}
        for name in owned:
            if name in busy:
                self._idle_since.pop(name, None)
            else:
                self._idle_since.setdefault(name, now)
        prices = {name: float(snap.table.price[snap.table.index[name]]) for name in owned
                  if name in snap.table.index}
        cp = consolidate(snap.table, snap.running, {k: v for k, v in self._idle_since.items() if k in owned},
                         now, float(self.pool.empty_ttl_seconds), prices, repack=False, net_of_running=True)
        deleted = []
        for name in cp.delete:
            if name in owned and name not in busy:
                self.provider.delete(name)
                self._idle_since.pop(name, None)
                deleted.append(name)
        return deleted


def allocations(snap: Snapshot) -> list[tuple[str, str, Resources]]:
    return [(g.key, a.node, g.request) for g in snap.running for a in g.assignments]
