"""The default policy and the simplest baselines."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from jobsched.core.fit import BestFitGpus, choose_gpus_bestfit
from jobsched.core.fragcache import FragCache
from jobsched.core.fragmentation import TargetWorkload
from jobsched.core.framework import GpuChooser, ScorePlugin
from jobsched.core.nodes import NodeTable
from jobsched.core.policies.gpuspec import ModelDemand
from jobsched.core.policies.nodeorder import NodeOrder
from jobsched.spec.resources import Resources

if TYPE_CHECKING:
    from jobsched.core.gang import PodGroup

F64 = npt.NDArray[np.float64]
IDX = npt.NDArray[np.intp]


def _share(free: npt.NDArray[np.int64], cap: npt.NDArray[np.int64], need: int) -> F64:
    return (free - need) / np.maximum(cap, 1)  # remaining share after placement, 0..1 (true division)


class BestFit:
    """The published best fit (the FGD authors' ``best_fit_score.go``): the node left with the least
    free CPU and GPU, each weighed 0.5 against the largest node's size (128 cores, 8 GPUs),
    ``int(100 * (1 - score))``; equal integer scores go to the first node of a seeded random node
    order, as in the authors' simulator (``nodeorder.NodeOrder``)."""

    name = "bestfit"
    max_cpu = 128_000
    max_gpu = 8_000
    row_local = True

    def __init__(self, seed: int = 0) -> None:
        self.order = NodeOrder(seed)

    @classmethod
    def make(cls, seed: int) -> tuple[ScorePlugin, GpuChooser]:
        return cls(seed), BestFitGpus()

    def score(self, table: NodeTable, req: Resources, rows: IDX, group: PodGroup) -> F64:
        cpu = (table.cpu_free[rows] - req.cpu_milli) / self.max_cpu
        gfree = np.maximum(table.gpu_free[rows], 0).sum(axis=1)
        gpu = (gfree - req.gpu_total_milli) / self.max_gpu
        score = np.floor(100.0 * (1.0 - (0.5 * cpu + 0.5 * gpu)))
        return score + self.order.of(table)[rows]


class RandomFit:
    """A random node among those that fit; a GPU share goes to a random device it fits (the FGD
    authors run Random with ``-gpusel random``: ``allocateGpuIdBasedOnRandomFit``)."""

    name = "random"

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    @classmethod
    def make(cls, seed: int) -> tuple[ScorePlugin, GpuChooser]:
        obj = cls(seed)
        return obj, obj

    def score(self, table: NodeTable, req: Resources, rows: IDX, group: PodGroup) -> F64:
        return self.rng.random(rows.size)

    def choose(self, table: NodeTable, row: int, req: Resources) -> tuple[int, ...]:
        if req.gpus and req.gpu_milli < 1000:
            ok = np.flatnonzero(table.gpu_free[row] >= req.gpu_milli)
            return (int(ok[self.rng.integers(ok.size)]),)
        return choose_gpus_bestfit(table, row, req)


class JobschedDefault:
    """Fragmentation-aware, GPU-sharing-aware bin packing (the default; also the live scheduler's).

    * GPU replicas: the node (and device) where the expected GPU fragmentation of the target
      workload grows least (exact, not FGD's integer-rounded score with random ties); ties broken
      by best fit: the fullest device, then the node left with the least free GPU, CPU, memory.
    * CPU-only replicas: stay off GPU nodes when a CPU node fits; on GPU nodes, the least growth of
      fragmentation, then the node whose spare CPU per free GPU stays largest, so GPUs keep the CPU
      their future pods need.
    """

    name = "jobsched"

    @property
    def row_local(self) -> bool:
        """A node's score depends on that node and the request only (see core.scorecache), unless
        pods pin GPU models: then the model-demand cost reads every node's free GPUs."""
        return not self.demand

    def __init__(self, workload: TargetWorkload | None = None) -> None:
        self.set_workload(workload or TargetWorkload.default())

    @classmethod
    def make(cls, seed: int) -> tuple[ScorePlugin, GpuChooser]:
        obj = cls()
        return obj, obj

    def set_workload(self, workload: TargetWorkload) -> None:
        """Weigh the typical shapes half by pod count (FGD) and half by GPU volume: a multi-GPU pod
        blocked by fragmentation loses several GPUs' worth of allocation, not one pod's."""
        self.demand = ModelDemand(workload)
        vol = workload.freq * workload.gpus * workload.milli
        if len(workload) and vol.sum() > 0:
            freq = 0.5 * workload.freq + 0.5 * vol / vol.sum()
            workload = TargetWorkload(workload.cpu, workload.gpus, workload.milli, freq, workload.models)
        self.workload = workload
        self.cache = FragCache(workload)
        wl = workload
        self._gpu_per_cpu = float((wl.freq * wl.gpus * wl.milli).sum() / max((wl.freq * wl.cpu).sum(), 1.0))

    w_strand = 0.5  # weight of GPUs stranded for want of CPU (beside fragmentation)
    w_fit = 0.01  # weight of best fit, a tie-breaker
    w_model = 1.0  # weight of taking GPUs of a model that pods pinned to it need (gpuspec.ModelDemand)

    def score(self, table: NodeTable, req: Resources, rows: IDX, group: PodGroup) -> F64:
        cpu_free = table.cpu_free[rows]
        cpu = _share(cpu_free, table.cpu_cap[rows], req.cpu_milli)
        mem = _share(table.mem_free[rows], table.mem_cap[rows], req.memory)
        gcount = table.gpu_count[rows]
        before, after, gfree = self.cache.delta_with_free(table, req, rows)
        grow = (after - before) / 1000.0  # GPUs newly fragmented (can be negative)
        grow = grow + self.w_strand * self._strand_growth(cpu_free, req, gfree)
        if req.gpus:
            grow = grow + self.w_model * self.demand.cost(table, req, rows)
            gpu_left = (gfree - req.gpu_total_milli) / (np.maximum(gcount, 1) * 1000.0)
            return -(grow + self.w_fit * (4.0 * gpu_left + cpu + mem))
        on_gpu_node = (gcount > 0).astype(np.float64)
        cpu_per_gpu = (cpu_free - req.cpu_milli) / np.maximum(gfree / 1000.0, 0.5) / 1e5
        return -(10.0 * on_gpu_node + grow + self.w_fit * (cpu + mem)) + self.w_fit * np.minimum(cpu_per_gpu, 1.0)

    def _strand_growth(self, cpu: npt.NDArray[np.int64], req: Resources, gfree: F64) -> F64:
        """Growth (in GPUs) of the free GPU share a node cannot use for want of CPU (``cpu``: the
        rows' free CPU), at the workload's average CPU per GPU: max(0, free GPU - free CPU / (CPU
        per GPU))."""
        ratio = self._gpu_per_cpu
        before = np.maximum(gfree - cpu * ratio, 0.0)
        after = np.maximum(gfree - req.gpu_total_milli - (cpu - req.cpu_milli) * ratio, 0.0)
        return (after - before) / 1000.0

    def choose(self, table: NodeTable, row: int, req: Resources) -> tuple[int, ...]:
        if req.gpus and req.gpu_milli < 1000:
            return (self.cache.share_device(table, row, req),)
        return choose_gpus_bestfit(table, row, req)
