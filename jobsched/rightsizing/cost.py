"""What each job costs: node-hours x price, shared among the jobs on a node by their requests.

A job's share of a node is its dominant share (the largest of cpu, memory and GPUs requested over
the node's capacity); when the shares on a node add up to more than 1 they are scaled down to 1.
What no job requested is idle cost. :class:`CostAccumulator` is pure: the caller passes ``now`` and
the allocations in force since then (piecewise constant between observations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jobsched.spec.resources import Resources


def request_share(request: Resources, capacity: Resources) -> float:
    """Dominant share of ``capacity`` that ``request`` (all of a job's replicas there) takes."""
    parts = [request.cpu_milli / capacity.cpu_milli if capacity.cpu_milli else 0.0,
             request.memory / capacity.memory if capacity.memory else 0.0]
    if capacity.gpus:
        parts.append(request.gpu_total_milli / (capacity.gpus * 1000))
    return min(max(parts), 1.0)


def split_node_cost(price_per_hour: float, seconds: float, capacity: Resources,
                    requests: Mapping[str, Resources]) -> tuple[dict[str, float], float]:
    """Per-job cost of one node over ``seconds``, and the idle remainder."""
    if seconds < 0:
        raise ValueError(f"seconds must not be negative, got {seconds}")
    total = price_per_hour * seconds / 3600.0
    shares = {k: request_share(r, capacity) for k, r in requests.items()}
    s = sum(shares.values())
    scale = 1.0 / s if s > 1.0 else 1.0
    out = {k: total * v * scale for k, v in shares.items()}
    return out, total - sum(out.values())


@dataclass
class CostAccumulator:
    """Running totals per job. Call :meth:`observe` whenever nodes or allocations change."""

    jobs: dict[str, float] = field(default_factory=dict)
    idle: float = 0.0
    last: float | None = None
    _nodes: dict[str, tuple[Resources, float]] = field(default_factory=dict)
    _alloc: dict[str, dict[str, Resources]] = field(default_factory=dict)  # node -> job -> request

    def observe(self, now: float, nodes: Mapping[str, tuple[Resources, float]],
                allocations: Iterable[tuple[str, str, Resources]]) -> None:
        """Charge the time since the last call at the previous state, then record the new one.

        ``nodes``: name -> (capacity, price per hour); ``allocations``: (job, node, one replica's
        request), one entry per replica."""
        if self.last is not None:
            if now < self.last:
                raise ValueError(f"time went backwards: {now} < {self.last}")
            dt = now - self.last
            for name, (cap, price) in self._nodes.items():
                charges, idle = split_node_cost(price, dt, cap, self._alloc.get(name, {}))
                for job, c in charges.items():
                    self.jobs[job] = self.jobs.get(job, 0.0) + c
                self.idle += idle
        self.last = now
        self._nodes = dict(nodes)
        alloc: dict[str, dict[str, Resources]] = {}
        for job, node, req in allocations:
            per = alloc.setdefault(node, {})
            per[job] = per.get(job, Resources()) + req
        self._alloc = alloc

    def job(self, key: str) -> float:
        return self.jobs.get(key, 0.0)

    def total(self) -> float:
        return sum(self.jobs.values()) + self.idle
