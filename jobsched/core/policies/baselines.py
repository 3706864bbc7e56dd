"""Baseline placement policies, reimplemented from their published definitions.

The FGD paper (Weng et al., USENIX ATC'23) and its simulator (hkust-adsl/kubernetes-scheduler-simulator)
score nodes as integers 0..100. Ties do not go to a random node: the simulator's kube-scheduler fork
(``selectHost`` in its vendored ``generic_scheduler.go``) keeps the node with the smallest name, and the
simulator names the nodes after a seeded random permutation (``syncClusterResourceList``), so a run has
one fixed random order of the nodes and every tie goes to the first of them. Each policy here adds that
order as a per-node priority below one point (:class:`NodeOrder`).

* ``dotprod``  - Tetris-style alignment: prefer the node whose free (CPU, GPU) vector has the smallest
  dot product with the request, both normalized by the largest node's size.
* ``packing``  - GPU packing: shared GPUs first, then free GPUs on partly used nodes, then idle nodes.
* ``clustering`` - GPU clustering: put pods with the same GPU request together (node affinity tags);
  stateful: the simulator reports placements and departures through ``observe``/``forget``.
* ``fgd``      - fragmentation gradient descent: the least growth of expected GPU fragmentation.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from jobsched.core.fit import choose_gpus_bestfit
from jobsched.core.fragcache import FragCache
from jobsched.core.fragmentation import TargetWorkload, frag_after_share, frag_delta
from jobsched.core.nodes import NodeTable
from jobsched.core.policies import register
from jobsched.core.policies.nodeorder import NodeOrder
from jobsched.spec.resources import Resources

if TYPE_CHECKING:
    from jobsched.core.gang import PodGroup

F64 = npt.NDArray[np.float64]
IDX = npt.NDArray[np.intp]
MAX_SPEC_GPU = 8000  # the simulator's normalization constants (open-gpu-share utils/const.go):
MAX_SPEC_CPU = 128_000  # milli-GPU and milli-CPU of the largest node


def sigmoid_score(before: F64, after: F64) -> F64:
    """FGD's integer score: 100 * sigmoid(fragmentation decrease in GPUs), truncated."""
    return np.floor(100.0 / (1.0 + np.exp(-(before - after) / 1000.0)))


class _Ordered:
    name = "base"
    row_local = True  # a score reads its node and the fixed node order only (see core.scorecache)

    def __init__(self, seed: int) -> None:
        self.order = NodeOrder(seed)

    def tiebreak(self, table: NodeTable, rows: IDX) -> F64:
        return self.order.of(table)[rows]

    def choose(self, table: NodeTable, row: int, req: Resources) -> tuple[int, ...]:
        return choose_gpus_bestfit(table, row, req)


class DotProduct(_Ordered):
    """The authors' run configuration (DotProd, ``-dimext merge -norm max``): the node's free (CPU,
    total GPU) vector and the request's (CPU, total GPU), both divided by the largest node's
    size, ``int(100 * (1 - dot / 2))``; the device of a GPU share is the best fit."""

    name = "dotprod"

    def score(self, table: NodeTable, req: Resources, rows: IDX, group: PodGroup) -> F64:
        cpu_dot = (table.cpu_free[rows] / MAX_SPEC_CPU) * (req.cpu_milli / MAX_SPEC_CPU)
        gfree = np.maximum(table.gpu_free[rows], 0).sum(axis=1)
        gpu_dot = (gfree / MAX_SPEC_GPU) * (req.gpu_total_milli / MAX_SPEC_GPU)
        score = np.floor(100.0 * (1.0 - (cpu_dot + gpu_dot) / 2.0))
        return score + self.tiebreak(table, rows)


class GpuPacking(_Ordered):
    name = "packing"

    def score(self, table: NodeTable, req: Resources, rows: IDX, group: PodGroup) -> F64:
        if not req.gpus:  # MinNodeScore everywhere: the first node in the order that fits
            return self.tiebreak(table, rows)
        full = table.gpu_full[rows].astype(np.int64)
        idle = full == table.gpu_count[rows]
        g = table.gpu_free[rows].astype(np.int64)
        if req.gpu_milli < 1000:
            left = np.where(g >= req.gpu_milli, g, 10_000).min(axis=1)  # fullest fitting device
            shared = np.maximum(100 - (left * 100 // 1000) // 10, 50)
            score = np.where(left >= 1000, 49, shared)
        else:
            score = np.full(rows.size, max(50 - req.gpus, 33))
        score = np.where(idle, np.maximum(33 - full, full), score)
        return score + self.tiebreak(table, rows)


class GpuClustering(_Ordered):
    name = "clustering"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.tags: dict[int, Counter[tuple[int, int]]] = {}

    @staticmethod
    def tag(req: Resources) -> tuple[int, int]:
        """The published affinity tag: every GPU share alike ("share-gpu"), else the GPU count."""
        return (1, 0) if req.gpu_milli < 1000 else (req.gpus, 1000)

    def observe(self, row: int, req: Resources) -> None:
        if req.gpus:
            self.tags.setdefault(row, Counter())[self.tag(req)] += 1

    def forget(self, row: int, req: Resources) -> None:
        c = self.tags.get(row)
        if req.gpus and c is not None:
            c[self.tag(req)] -= 1
            if c[self.tag(req)] <= 0:
                del c[self.tag(req)]

    def score(self, table: NodeTable, req: Resources, rows: IDX, group: PodGroup) -> F64:
        if not req.gpus:
            return self.tiebreak(table, rows)
        me = self.tag(req)
        n_tags = np.fromiter((len(self.tags.get(int(r), ())) for r in rows), dtype=np.int64, count=rows.size)
        has_me = np.fromiter((self.tags.get(int(r), Counter())[me] > 0 for r in rows), dtype=bool,
                             count=rows.size)
        left = np.maximum(table.gpu_free[rows], 0).sum(axis=1)
        base = 25 * (MAX_SPEC_GPU - left) // MAX_SPEC_GPU
        band = np.where(has_me, np.where(n_tags == 1, 75, 50), np.where(n_tags == 0, 25, 0))
        return (base + band) + self.tiebreak(table, rows)


class FGD(_Ordered):
    """Fragmentation gradient descent against the target workload (``set_workload``)."""

    name = "fgd"
    # The authors' typical pods (scripts/generate_config_and_run.py): CPU-only pods included, the most
    # frequent shapes covering 95 % of pods, one shape at a time. See PodTrace.workload.
    workload_options = {"popularity": 0.95, "step": 1, "cpu_pods": True}

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.set_workload(TargetWorkload.default())

    def set_workload(self, workload: TargetWorkload) -> None:
        self.workload = workload
        self.cache = FragCache(workload)

    def score(self, table: NodeTable, req: Resources, rows: IDX, group: PodGroup) -> F64:
        before, after = self.cache.delta(table, req, rows)
        return sigmoid_score(before, after) + self.tiebreak(table, rows)

    def choose(self, table: NodeTable, row: int, req: Resources) -> tuple[int, ...]:
        if not (req.gpus and req.gpu_milli < 1000):
            return choose_gpus_bestfit(table, row, req)
        rows = np.array([row], dtype=np.intp)
        wl = self.workload
        acc = wl.accessible(table, rows)
        before, _ = frag_delta(wl, table, Resources(), rows, acc)
        after = frag_after_share(wl, table.gpu_free[rows], table.cpu_free[rows], acc, req)[0]
        scores = np.where(np.isfinite(after), sigmoid_score(before, after), -1.0)
        return (int(np.argmax(scores)),)  # the first device with the best score, as published


def _pair(cls: type[_Ordered]):  # type: ignore[no-untyped-def]
    def make(seed: int):  # type: ignore[no-untyped-def]
        obj = cls(seed)
        return obj, obj

    return make


register("dotprod", _pair(DotProduct))
register("packing", _pair(GpuPacking))
register("clustering", _pair(GpuClustering))
register("fgd", _pair(FGD))
