"""Demand for each GPU model from pods that restrict the model (``gpu_spec``), against its free supply.

A pod that accepts one GPU model can only run there; a pod that accepts any model can run anywhere.
When flexible pods fill the GPUs of a model that constrained pods need, the constrained pods strand
(FGD only counts a node's own fragmentation, not which model's capacity is scarce). Here each typical
shape that restricts the model spreads its GPU volume over the models it accepts, weighted
``1 / len(models)`` (a pod pinned to one model weighs fully on it); a model's *pressure* is that pinned
demand's share of the workload's GPU volume divided by the model's share of the cluster's free GPU
capacity. Placing a replica on a model costs ``pressure x GPUs requested``: flexible pods go where
pinned pods will not need the room. Pure: numpy over the node table, no I/O, no clock.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from jobsched.core.fragmentation import TargetWorkload
from jobsched.core.nodes import NodeTable
from jobsched.spec.resources import Resources

F64 = npt.NDArray[np.float64]
IDX = npt.NDArray[np.intp]


class ModelDemand:
    """Pinned GPU demand per model, from a target workload (shape frequencies and accepted models)."""

    def __init__(self, workload: TargetWorkload) -> None:
        vol = workload.freq * workload.gpus * workload.milli
        total = float(vol.sum())
        self.demand: dict[str, float] = {}  # model -> share of the workload's GPU volume pinned to it
        for v, models in zip(vol.tolist(), workload.models, strict=True):
            for m in models:
                self.demand[m] = self.demand.get(m, 0.0) + (v / total / len(models) if total else 0.0)
        self._lut: dict[tuple[str, ...], F64] = {}

    def __bool__(self) -> bool:
        return bool(self.demand)

    def _demand_of(self, table: NodeTable) -> F64:
        key = tuple(table.models)
        d = self._lut.get(key)
        if d is None:
            d = self._lut[key] = np.array([self.demand.get(m, 0.0) for m in table.models], dtype=np.float64)
        return d

    def pressure(self, table: NodeTable) -> F64:
        """Per GPU model code: pinned demand share / free capacity share (0 where nothing is pinned)."""
        d = self._demand_of(table)
        if not d.any():
            return np.zeros(len(table.models))
        has = table.gpu_model >= 0
        free = np.maximum(table.gpu_free[has], 0).sum(axis=1).astype(np.float64)
        supply = np.bincount(table.gpu_model[has], weights=free, minlength=len(table.models))
        share = supply / max(float(supply.sum()), 1.0)
        return d / np.maximum(share, 1e-3)

    def cost(self, table: NodeTable, req: Resources, rows: IDX) -> F64:
        """Pressure of each row's GPU model times the GPUs the replica takes (0 for CPU-only pods)."""
        if not req.gpus or not self:
            return np.zeros(rows.size)
        p = np.append(self.pressure(table), 0.0)  # code -1 (no GPU) reads the trailing 0
        return p[table.gpu_model[rows]] * (req.gpu_total_milli / 1000.0)
