"""A seeded random order of the nodes, to break ties between equal integer scores.

The FGD authors' simulator (hkust-adsl/kubernetes-scheduler-simulator) runs a kube-scheduler fork whose
``selectHost`` keeps the node with the smallest name among the best (vendored
``pkg/scheduler/core/generic_scheduler.go``), and it names the nodes after a permutation drawn from the
run's seed (``syncClusterResourceList`` in ``pkg/simulator/simulator.go``). So a run has one fixed
random order of the nodes and each tie goes to the first node of it that fits: first fit over a
shuffled node list, not a fresh random choice per pod. Its baselines here (``bestfit``, ``dotprod``,
``packing``, ``clustering``, ``fgd``) add that order to their integer scores.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from jobsched.core.nodes import NodeTable

F64 = npt.NDArray[np.float64]


class NodeOrder:
    """One seeded random order of the nodes, as a priority in (0, 0.5) per row (first node: highest).

    It is drawn per node name (a keyed hash of seed and name), so a node keeps its place when the table
    is copied, grows or is reordered. Added to integer scores it breaks their ties the way the FGD
    authors' simulator does, and it leaves a node's score a function of that node alone (``row_local``)."""

    def __init__(self, seed: int) -> None:
        self.key = seed.to_bytes(8, "little", signed=True)
        self._names: list[str] | None = None
        self._prio: F64 = np.zeros(0)

    def of(self, table: NodeTable) -> F64:
        names = table.names
        if names is not self._names or self._prio.size != len(names):
            h = np.fromiter((int.from_bytes(hashlib.blake2b(n.encode(), digest_size=8, key=self.key).digest(), "little")
                             for n in names), dtype=np.uint64, count=len(names))
            rank = np.empty(len(names))
            rank[np.argsort(h, kind="stable")] = np.arange(len(names))
            self._prio, self._names = 0.5 * (len(names) - rank) / (len(names) + 1), names
        return self._prio
