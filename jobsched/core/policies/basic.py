"""The default policy and the simplest baselines."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from jobsched.core.fit import BestFitGpus
from jobsched.core.framework import GpuChooser, ScorePlugin
from jobsched.core.nodes import NodeTable
from jobsched.spec.resources import Resources

if TYPE_CHECKING:
    from jobsched.core.gang import PodGroup

F64 = npt.NDArray[np.float64]
IDX = npt.NDArray[np.intp]


def _share(free: npt.NDArray[np.int64], cap: npt.NDArray[np.int64], need: int) -> F64:
    cap_f = np.maximum(cap.astype(np.float64), 1.0)
    return (free - need) / cap_f  # remaining share after placement, 0..1


class BestFit:
    """Prefer the node left with the least free resources (weighted: GPU, then CPU, then memory)."""

    name = "bestfit"

    @classmethod
    def make(cls, seed: int) -> tuple[ScorePlugin, GpuChooser]:
        return cls(), BestFitGpus()

    def score(self, table: NodeTable, req: Resources, rows: IDX, group: PodGroup) -> F64:
        cpu = _share(table.cpu_free[rows], table.cpu_cap[rows], req.cpu_milli)
        mem = _share(table.mem_free[rows], table.mem_cap[rows], req.memory)
        gcnt = np.maximum(table.gpu_count[rows], 1)
        gfree = np.where(table.gpu_free[rows] > 0, table.gpu_free[rows], 0).sum(axis=1)
        gpu = (gfree - req.gpu_total_milli) / (gcnt * 1000.0)
        return -(gpu + cpu + mem)


class RandomFit:
    name = "random"

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    @classmethod
    def make(cls, seed: int) -> tuple[ScorePlugin, GpuChooser]:
        return cls(seed), BestFitGpus()

    def score(self, table: NodeTable, req: Resources, rows: IDX, group: PodGroup) -> F64:
        return self.rng.random(rows.size)


class JobschedDefault:
    """GPU-aware bin-packing.

    * GPU replicas: fill partly used GPUs and nodes first (best fit on GPU milli), then CPU/memory.
    * CPU-only replicas: stay off GPU nodes when a CPU node fits, so GPUs never idle for want of
      the CPU or memory beside them; among nodes, best fit.
    """

    name = "jobsched"

    @classmethod
    def make(cls, seed: int) -> tuple[ScorePlugin, GpuChooser]:
        return cls(), BestFitGpus()

    def score(self, table: NodeTable, req: Resources, rows: IDX, group: PodGroup) -> F64:
        cpu = _share(table.cpu_free[rows], table.cpu_cap[rows], req.cpu_milli)
        mem = _share(table.mem_free[rows], table.mem_cap[rows], req.memory)
        gcount = table.gpu_count[rows]
        if req.gpus:
            gfree = np.where(table.gpu_free[rows] > 0, table.gpu_free[rows], 0).sum(axis=1)
            gpu_left = (gfree - req.gpu_total_milli) / (np.maximum(gcount, 1) * 1000.0)
            return -(4.0 * gpu_left + cpu + mem)
        on_gpu_node = (gcount > 0).astype(np.float64)
        return -(10.0 * on_gpu_node + cpu + mem)
