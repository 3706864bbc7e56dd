"""NodeTable: the cluster as columns of numpy arrays, so feasibility and scoring are vectorized.

GPUs are tracked per device in thousandths (``gpu_free[i, g]``; -1 where node i has no GPU g), which
covers whole-GPU requests and GPU sharing (a replica asking for a share of one GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from jobsched.spec.node import GPU_MODEL_LABEL, Node
from jobsched.spec.resources import Resources

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


@dataclass
class NodeTable:
    names: list[str]
    cpu_cap: I64
    mem_cap: I64
    cpu_free: I64
    mem_free: I64
    gpu_count: I32
    gpu_free: I32  # (N, G) milli-GPU free per device, -1 = no such device
    gpu_model: I32  # index into ``models``; -1 = no GPU
    models: list[str]
    schedulable: B
    price: F64
    labels: list[dict[str, str]]
    # Derived per-row summaries, kept in step by allocate/release.
    gpu_full: I32 = field(init=False)  # number of completely free GPUs
    gpu_max_free: I32 = field(init=False)  # largest free share on any GPU
    _label_masks: dict[tuple[str, str], B] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {n: i for i, n in enumerate(self.names)}
        self._refresh_gpu_rows(np.arange(len(self.names)))

    # construction ---------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        names: Sequence[str],
        cpu_milli: Sequence[int] | I64,
        memory: Sequence[int] | I64,
        gpus: Sequence[int] | I32,
        gpu_models: Sequence[str] | None = None,
        labels: Sequence[dict[str, str]] | None = None,
        price: Sequence[float] | None = None,
        schedulable: Sequence[bool] | None = None,
    ) -> NodeTable:
        n = len(names)
        gpus_arr = np.asarray(gpus, dtype=np.int32)
        g_max = int(gpus_arr.max()) if n else 0
        gpu_free = np.full((n, max(g_max, 1)), -1, dtype=np.int32)
        cols = np.arange(gpu_free.shape[1])
        gpu_free[cols[None, :] < gpus_arr[:, None]] = 1000
        models_in = list(gpu_models) if gpu_models is not None else [""] * n
        models = sorted({m for m, g in zip(models_in, gpus_arr, strict=True) if g > 0})
        code = {m: i for i, m in enumerate(models)}
        model_idx = np.array(
            [code[m] if g > 0 else -1 for m, g in zip(models_in, gpus_arr, strict=True)], dtype=np.int32
        )
        cpu = np.asarray(cpu_milli, dtype=np.int64)
        mem = np.asarray(memory, dtype=np.int64)
        return cls(
            names=list(names),
            cpu_cap=cpu.copy(),
            mem_cap=mem.copy(),
            cpu_free=cpu.copy(),
            mem_free=mem.copy(),
            gpu_count=gpus_arr,
            gpu_free=gpu_free,
            gpu_model=model_idx,
            models=models,
            schedulable=np.asarray(schedulable if schedulable is not None else [True] * n, dtype=bool),
            price=np.asarray(price if price is not None else [0.0] * n, dtype=np.float64),
            labels=list(labels) if labels is not None else [{} for _ in range(n)],
        )

    @classmethod
    def from_nodes(cls, nodes: Sequence[Node]) -> NodeTable:
        vecs = [nd.allocatable_vector() for nd in nodes]
        return cls.from_arrays(
            [nd.name for nd in nodes],
            [v.cpu_milli for v in vecs],
            [v.memory for v in vecs],
            [v.gpus for v in vecs],
            [nd.labels.get(GPU_MODEL_LABEL, "") for nd in nodes],
            [dict(nd.labels) for nd in nodes],
            [nd.price_per_hour for nd in nodes],
            [not nd.unschedulable for nd in nodes],
        )

    def copy(self) -> NodeTable:
        t = NodeTable(
            names=self.names,
            cpu_cap=self.cpu_cap,
            mem_cap=self.mem_cap,
            cpu_free=self.cpu_free.copy(),
            mem_free=self.mem_free.copy(),
            gpu_count=self.gpu_count,
            gpu_free=self.gpu_free.copy(),
            gpu_model=self.gpu_model,
            models=self.models,
            schedulable=self.schedulable,
            price=self.price,
            labels=self.labels,
        )
        t._label_masks = self._label_masks  # labels are immutable; share the cache
        return t

    def emptied(self) -> NodeTable:
        """The same nodes with nothing running and none cordoned (cordons and NotReady are transient):
        for the never-fits check."""
        t = self.copy()
        t.schedulable = np.ones(len(self), dtype=bool)
        t.cpu_free[:] = self.cpu_cap
        t.mem_free[:] = self.mem_cap
        t.gpu_free[:] = np.where(self.gpu_free >= 0, 1000, -1)
        t._refresh_gpu_rows(np.arange(len(self)))
        return t

    def __len__(self) -> int:
        return len(self.names)

    # queries ----------------------------------------------------------------------------------
    def label_mask(self, key: str, value: str) -> B:
        m = self._label_masks.get((key, value))
        if m is None:
            m = np.fromiter((lb.get(key) == value for lb in self.labels), dtype=bool, count=len(self))
            self._label_masks[(key, value)] = m
        return m

    def model_mask(self, models: Sequence[str]) -> B:
        codes = [self.models.index(m) for m in models if m in self.models]
        return np.isin(self.gpu_model, np.asarray(codes, dtype=np.int32))

    def gpu_total_milli(self) -> int:
        return int(self.gpu_count.sum()) * 1000

    def gpu_used_milli(self) -> int:
        return int((1000 - self.gpu_free[self.gpu_free >= 0]).sum())

    # mutation (only on a working copy) --------------------------------------------------------
    def allocate(self, i: int, req: Resources, gpu_idx: tuple[int, ...]) -> None:
        self.cpu_free[i] -= req.cpu_milli
        self.mem_free[i] -= req.memory
        if gpu_idx:
            self.gpu_free[i, list(gpu_idx)] -= req.gpu_milli
            self._refresh_gpu_rows(np.array([i]))

    def release(self, i: int, req: Resources, gpu_idx: tuple[int, ...]) -> None:
        self.cpu_free[i] += req.cpu_milli
        self.mem_free[i] += req.memory
        if gpu_idx:
            self.gpu_free[i, list(gpu_idx)] += req.gpu_milli
            self._refresh_gpu_rows(np.array([i]))

    def _refresh_gpu_rows(self, rows: npt.NDArray[np.intp]) -> None:
        if not hasattr(self, "gpu_full"):
            self.gpu_full = np.zeros(len(self.names), dtype=np.int32)
            self.gpu_max_free = np.zeros(len(self.names), dtype=np.int32)
        g = self.gpu_free[rows]
        self.gpu_full[rows] = (g == 1000).sum(axis=1)
        self.gpu_max_free[rows] = np.maximum(g.max(axis=1, initial=-1), 0)
