"""NodeTable: the cluster as columns of numpy arrays, so feasibility and scoring are vectorized.

GPUs are tracked per device in thousandths (``gpu_free[i, g]``; -1 where node i has no GPU g), which
covers whole-GPU requests and GPU sharing (a replica asking for a share of one GPU). ``gpu_mem[i]`` is
the memory of each GPU of node i in bytes (0: unknown), against which GPU-memory requests are checked
and memory-sized shares are turned into thousandths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from jobsched.spec.node import GPU_MODEL_LABEL, Node
from jobsched.spec.resources import Resources

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
Taint = tuple[str, str, str]  # key, value, effect


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
    gpu_mem: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # bytes per GPU, 0: unknown
    # Room held by pods outside jobsched's accounting (other schedulers'): out of the free columns,
    # not out of the capacity, so ``emptied`` (the never-fits check) ignores it. (N, 3): cpu, mem, GPUs.
    held: I64 = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    # Derived per-row summaries, kept in step by allocate/release.
    gpu_full: I32 = field(init=False)  # number of completely free GPUs
    gpu_max_free: I32 = field(init=False)  # largest free share on any GPU
    _label_masks: dict[tuple[str, str], B] = field(default_factory=dict, init=False, repr=False)
    taints: list[tuple[Taint, ...]] = field(default_factory=list)  # per row; [] = no node is tainted
    # core/constraints.py's masks (labels and taints are fixed per table: shared by copies)
    constraint_cache: dict[object, Any] = field(default_factory=dict, init=False, repr=False)
    # Rows changed since the table was made, in order (allocate/release and every GPU row refresh):
    # caches of per-row results (FragCache, ScoreCache) refresh just these. A new list per table.
    changes: list[int] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {n: i for i, n in enumerate(self.names)}
        if self.gpu_mem.shape != (len(self.names),):
            self.gpu_mem = np.zeros(len(self.names), dtype=np.int64)
        if len(self.taints) != len(self.names):
            self.taints = [()] * len(self.names)
        if self.held.shape != (len(self.names), 3):
            self.held = np.zeros((len(self.names), 3), dtype=np.int64)
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
        gpu_memory: Sequence[int] | None = None,
        taints: Sequence[tuple[Taint, ...]] | None = None,
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
            gpu_mem=np.where(gpus_arr > 0, np.asarray(gpu_memory if gpu_memory is not None else [0] * n,
                                                      dtype=np.int64), 0),
            taints=list(taints) if taints is not None else [],
        )

    @classmethod
    def from_nodes(cls, nodes: Sequence[Node]) -> NodeTable:
        vecs = [nd.allocatable_vector() for nd in nodes]
        t = cls.from_arrays(
            [nd.name for nd in nodes],
            [v.cpu_milli for v in vecs],
            [v.memory for v in vecs],
            [v.gpus for v in vecs],
            [nd.labels.get(GPU_MODEL_LABEL, "") for nd in nodes],
            [dict(nd.labels) for nd in nodes],
            [nd.price_per_hour for nd in nodes],
            [not nd.unschedulable for nd in nodes],
            [nd.gpu_memory_bytes for nd in nodes],
            [tuple((t.key, t.value, t.effect) for t in nd.taints) for nd in nodes],
        )
        held = [(i, nd.held_vector()) for i, nd in enumerate(nodes) if nd.held]
        for i, h in held:
            t.held[i] = (h.cpu_milli, h.memory, min(h.gpus, int(t.gpu_count[i])))
            t.cpu_free[i] -= h.cpu_milli
            t.mem_free[i] -= h.memory
            t.gpu_free[i, : t.held[i, 2]] = 0  # whole GPUs taken by the holders
        if held:
            t._refresh_gpu_rows(np.array([i for i, _ in held]))
        return t

    def without_held(self) -> NodeTable:
        """A copy with the held room given back (what could run once other schedulers' pods end)."""
        t = self.copy()
        rows = np.flatnonzero(self.held.any(axis=1))
        t.cpu_free[rows] += self.held[rows, 0]
        t.mem_free[rows] += self.held[rows, 1]
        for i in rows:
            taken = np.flatnonzero(t.gpu_free[i] == 0)[: self.held[i, 2]]
            t.gpu_free[i, taken] = 1000
        t._refresh_gpu_rows(rows)
        return t

    def held_nodes(self, among: B | None = None) -> int:
        """How many nodes (of ``among``) have room held by pods outside jobsched's accounting."""
        held = self.held.any(axis=1)
        return int((held & among).sum() if among is not None else held.sum())

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
            gpu_mem=self.gpu_mem,
            taints=self.taints,
            held=self.held,
        )
        t._label_masks = self._label_masks  # labels are immutable; share the cache
        t.constraint_cache = self.constraint_cache
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

    def gpu_models_of(self) -> list[str]:
        """The GPU model of each row ("" for none)."""
        return [self.models[m] if m >= 0 else "" for m in self.gpu_model]

    def share_need(self, req: Resources) -> I64:
        """Per row: the thousandths of one GPU that ``req`` takes there (memory-sized shares differ
        by GPU memory; above 1000 where it cannot fit)."""
        if req.gpu_share:
            cap = self.gpu_mem
            need = -(-req.gpu_memory * 1000 // np.maximum(cap, 1))
            return np.where(cap > 0, np.maximum(need, 1), 1000).astype(np.int64)
        return np.full(len(self), req.gpu_milli, dtype=np.int64)

    def gpu_mem_ok(self, req: Resources) -> B:
        """Rows whose GPUs (or the share ``req`` gets of one) offer at least ``req.gpu_memory``. A GPU
        of unknown memory is not checked (nothing is known to refuse it)."""
        if not req.gpus or not req.gpu_memory:
            return np.ones(len(self), dtype=bool)
        if req.gpu_share:
            return (self.gpu_mem >= req.gpu_memory) | (self.gpu_mem == 0)
        offered = self.gpu_mem * min(req.gpu_milli, 1000) // 1000
        return (offered >= req.gpu_memory) | (self.gpu_mem == 0)

    def resolve(self, req: Resources, i: int) -> Resources:
        """The concrete request on row ``i`` (a memory-sized share sized to its GPUs)."""
        return req.on_gpu(int(self.gpu_mem[i])) if req.gpu_share else req

    def gpu_total_milli(self) -> int:
        return int(self.gpu_count.sum()) * 1000

    def gpu_used_milli(self) -> int:
        return int((1000 - self.gpu_free[self.gpu_free >= 0]).sum())

    # mutation (only on a working copy) --------------------------------------------------------
    def allocate(self, i: int, req: Resources, gpu_idx: tuple[int, ...]) -> None:
        req = self.resolve(req, i)
        self.cpu_free[i] -= req.cpu_milli
        self.mem_free[i] -= req.memory
        if gpu_idx:
            self.gpu_free[i, list(gpu_idx)] -= req.gpu_milli
            self._refresh_gpu_row(i)
        else:
            self.changes.append(i)

    def release(self, i: int, req: Resources, gpu_idx: tuple[int, ...]) -> None:
        req = self.resolve(req, i)
        self.cpu_free[i] += req.cpu_milli
        self.mem_free[i] += req.memory
        if gpu_idx:
            self.gpu_free[i, list(gpu_idx)] += req.gpu_milli
            self._refresh_gpu_row(i)
        else:
            self.changes.append(i)

    def _refresh_gpu_row(self, i: int) -> None:
        g = self.gpu_free[i]
        self.gpu_full[i] = int((g == 1000).sum())
        self.gpu_max_free[i] = max(int(g.max()), 0)
        self.changes.append(i)

    def _refresh_gpu_rows(self, rows: npt.NDArray[np.intp]) -> None:
        if not hasattr(self, "gpu_full"):
            self.gpu_full = np.zeros(len(self.names), dtype=np.int32)
            self.gpu_max_free = np.zeros(len(self.names), dtype=np.int32)
        g = self.gpu_free[rows]
        self.gpu_full[rows] = (g == 1000).sum(axis=1)
        self.gpu_max_free[rows] = np.maximum(g.max(axis=1, initial=-1), 0)
        if hasattr(self, "changes"):  # code that writes the free columns directly refreshes its rows
            self.changes.extend(np.asarray(rows).tolist())
