"""Room for measuring retries: how much memory above its request a retried replica may use.

After an OOM the next attempt may be a *measuring retry* (``rightsizing/recovery.py``): its limit is
its request plus a share of what its node has free once every gang admitted in this cycle is
placed, bounded by the queue's remaining memory quota and by the cap (largest node,
``rightSizing.maxMemory``). Measuring retries placed on one node in the same cycle share its free
memory evenly, and what one is granted is taken from the node's free memory, so two retries never
count on the same bytes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from jobsched.core import Admit, Snapshot
from jobsched.rightsizing.recovery import burst_limit
from jobsched.spec import quantity as q
from jobsched.spec.job import TrainingJob


@dataclass
class BurstRoom:
    node_free: dict[str, int] = field(default_factory=dict)  # bytes free per node after placement
    queue_room: dict[str, int | None] = field(default_factory=dict)  # bytes of quota left per queue
    queue_of: dict[str, str] = field(default_factory=dict)  # job key -> queue
    waiting: dict[str, int] = field(default_factory=dict)  # node -> measuring-retry replicas not yet granted

    @classmethod
    def after(cls, snap: Snapshot, admits: Sequence[Admit], queue_of: Mapping[str, str],
              bursting: Collection[str] = ()) -> BurstRoom:
        """``bursting``: the keys of the admitted jobs that are measuring retries; the free memory of
        a node is shared evenly among those placed on it in this cycle."""
        t = snap.table
        free = {name: int(t.mem_free[i]) for i, name in enumerate(t.names)}
        usage = {name: u.memory for name, u in snap.queue_usage().items()}
        waiting: dict[str, int] = {}
        for d in admits:
            for a in d.assignments:
                if a.node in free:
                    free[a.node] -= d.request.memory
                if d.key in bursting:
                    waiting[a.node] = waiting.get(a.node, 0) + 1
            qn = queue_of.get(d.key, "default")
            usage[qn] = usage.get(qn, 0) + d.request.memory * len(d.assignments)
        room: dict[str, int | None] = {}
        for name, info in snap.queues.items():
            room[name] = None if info.memory_quota is None else info.memory_quota - usage.get(name, 0)
        return cls(free, room, dict(queue_of), waiting)

    def grant(self, d: Admit, spec: TrainingJob, cap: int) -> int:
        """The per-replica limit of a measuring retry placed by ``d`` (the request when there is no
        room worth bursting into); the extra is taken from the nodes' free memory."""
        request = d.request.memory
        rs = spec.spec.right_sizing
        ceiling = cap if rs.max_memory is None else min(cap, q.memory_bytes(rs.max_memory))
        n = max(len(d.assignments), 1)
        qroom = self.queue_room.get(self.queue_of.get(d.key, spec.spec.queue))
        per_node: dict[str, int] = {}
        for a in d.assignments:
            per_node[a.node] = per_node.get(a.node, 0) + 1
        # this gang's share of each node's free memory: split evenly among the measuring retries
        # placed on it in this cycle (this gang's replicas included)
        limit = min(burst_limit(request, self.node_free.get(node, 0), max(self.waiting.get(node, 0), count),
                                ceiling=ceiling, queue_room=None if qroom is None else qroom // n)
                    for node, count in per_node.items()) if per_node else request
        for node, count in per_node.items():
            self.waiting[node] = max(self.waiting.get(node, 0) - count, 0)
        if limit > request:
            extra = limit - request
            for node, count in per_node.items():
                self.node_free[node] = self.node_free.get(node, 0) - extra * count
            key = self.queue_of.get(d.key, spec.spec.queue)
            if self.queue_room.get(key) is not None:
                self.queue_room[key] = int(self.queue_room[key] or 0) - extra * n
        return limit
