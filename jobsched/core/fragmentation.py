"""GPU fragmentation with respect to a target workload (after FGD, Weng et al., USENIX ATC'23).

A node's free GPU capacity is a *fragment* for a pod shape when that shape cannot use it: every free
milli-GPU if the shape cannot be placed on the node at all (GPU model not accepted, too little CPU,
too few GPUs with enough free share), else the free shares of the GPUs too small for one replica.
The node's expected fragmentation is the frequency-weighted sum over the workload's typical shapes.
FGD places a pod where that expectation grows least. Everything is vectorized over candidate rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from jobsched.core.nodes import NodeTable
from jobsched.spec.resources import Resources

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
IDX = npt.NDArray[np.intp]

Shape = tuple[int, int, int, tuple[str, ...]]  # cpu_milli, gpus, gpu_milli, accepted models


@dataclass(frozen=True)
class TargetWorkload:
    """Typical GPU pod shapes and their frequencies (sum 1, or less when CPU-only shapes take a share)."""

    cpu: I64
    gpus: I64
    milli: I64
    freq: F64
    models: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        if not (len(self.cpu) == len(self.gpus) == len(self.milli) == len(self.freq) == len(self.models)):
            raise ValueError("workload columns differ in length")
        if len(self.cpu) and ((self.gpus < 1).any() or (self.milli < 1).any() or (self.milli > 1000).any()):
            raise ValueError("workload shapes must request GPUs (gpus >= 1, 1 <= gpu_milli <= 1000)")
        levels, idx = np.unique(self.milli, return_inverse=True)
        object.__setattr__(self, "levels", levels.astype(np.int64))
        # Shapes that share (gpu_milli level, GPU count) differ only in CPU: one group each.
        pairs = sorted({(int(i), int(k)) for i, k in zip(idx, self.gpus, strict=True)})
        pos = {p: q for q, p in enumerate(pairs)}
        group = np.array([pos[(int(i), int(k))] for i, k in zip(idx, self.gpus, strict=True)], dtype=np.intp)
        order = np.argsort(group, kind="stable")
        object.__setattr__(self, "group_order", order)
        object.__setattr__(self, "group_starts", np.searchsorted(group[order], np.arange(len(pairs))))
        object.__setattr__(self, "group_level", np.array([p[0] for p in pairs], dtype=np.intp))
        object.__setattr__(self, "group_gpus", np.array([p[1] for p in pairs], dtype=np.int32))
        object.__setattr__(self, "group_milli", levels.astype(np.int32)[[p[0] for p in pairs]])
        object.__setattr__(self, "cpu_by_group", self.cpu[order])
        object.__setattr__(self, "freq_by_group", self.freq[order])
        object.__setattr__(self, "_access", {})

    levels: I64 = field(init=False, repr=False)  # distinct gpu_milli values
    group_level: IDX = field(init=False, repr=False)  # per group: index into levels
    group_gpus: npt.NDArray[np.int32] = field(init=False, repr=False)  # per group: GPUs per replica
    group_milli: npt.NDArray[np.int32] = field(init=False, repr=False)  # per group: gpu_milli
    group_order: IDX = field(init=False, repr=False)  # shapes sorted by group
    group_starts: IDX = field(init=False, repr=False)  # first position of each group in that order
    cpu_by_group: I64 = field(init=False, repr=False)  # cpu in group order
    freq_by_group: F64 = field(init=False, repr=False)  # freq in group order
    _access: dict[tuple[str, ...], B] = field(init=False, repr=False, compare=False)  # model lookup per table

    def __len__(self) -> int:
        return len(self.cpu)

    @classmethod
    def from_shapes(cls, counts: dict[Shape, float], popularity: float = 1.0, step: int = 10,
                    cpu_pods: bool = False) -> TargetWorkload:
        """The most frequent shapes covering ``popularity`` of pods (FGD's typical-pod walk: ``step``
        shapes at a time, most frequent first, ties to the larger shape), renormalized over the kept
        shapes. CPU-only shapes count in that walk only with ``cpu_pods`` (the FGD authors' runs); they
        are then left out of the arrays but keep their share of the frequency, so GPU shapes sum to
        less than 1: for a CPU-only shape every free GPU is a fragment (``node_frag`` adds it)."""
        items = sorted(((s, w) for s, w in counts.items() if (s[1] > 0 or cpu_pods) and w > 0),
                       key=lambda sw: (sw[1], sw[0][0], sw[0][2], sw[0][1], "|".join(sw[0][3])), reverse=True)
        total = sum(w for _, w in items)
        if not any(s[1] > 0 for s, _ in items):
            return cls.default()
        keep: list[tuple[Shape, float]] = []
        cum = 0.0
        while cum < popularity * total and len(keep) < len(items):
            for s, w in items[len(keep):len(keep) + step]:
                keep.append((s, w))
                cum += w
        kept = sum(w for _, w in keep)
        keep = [(s, w) for s, w in keep if s[1] > 0]
        w_arr = np.array([w for _, w in keep], dtype=np.float64)
        return cls(
            cpu=np.array([s[0] for s, _ in keep], dtype=np.int64),
            gpus=np.array([s[1] for s, _ in keep], dtype=np.int64),
            milli=np.array([s[2] for s, _ in keep], dtype=np.int64),
            freq=w_arr / kept,
            models=tuple(s[3] for s, _ in keep),
        )

    @classmethod
    def from_requests(cls, reqs: Iterable[tuple[Resources, tuple[str, ...]]], popularity: float = 1.0,
                      step: int = 10) -> TargetWorkload:
        counts: Counter[Shape] = Counter()
        for r, models in reqs:
            counts[(r.cpu_milli, r.gpus, r.gpu_milli if r.gpus else 0, tuple(models))] += 1
        return cls.from_shapes(dict(counts), popularity, step)

    @classmethod
    def default(cls) -> TargetWorkload:
        """A generic training/inference mix for a live cluster whose workload is not given yet."""
        shapes: dict[Shape, float] = {
            (4000, 1, 1000, ()): 0.30, (8000, 2, 1000, ()): 0.10, (16000, 4, 1000, ()): 0.08,
            (32000, 8, 1000, ()): 0.07, (2000, 1, 500, ()): 0.20, (2000, 1, 250, ()): 0.15,
            (4000, 1, 750, ()): 0.10,
        }
        return cls.from_shapes(shapes, popularity=1.0)

    def accessible(self, table: NodeTable, rows: IDX) -> B:
        """(R, S): may shape s use node row r at all (has GPUs of an accepted model)."""
        return self.model_access(table.models)[table.gpu_model[rows] + 1] & (table.gpu_count[rows] > 0)[:, None]

    def model_access(self, models: list[str]) -> B:
        """(M + 1, S): may shape s use a GPU of ``models[m - 1]`` (row 0: a node without GPUs);
        memoized per model list, so that :meth:`accessible` is one gather."""
        memo = self._access
        key = tuple(models)
        out = memo.get(key)
        if out is None:
            out = np.ones((len(key) + 1, len(self)), dtype=bool)
            out[0] = False
            for s, accepted in enumerate(self.models):
                if accepted:
                    out[1:, s] = [m in accepted for m in key]
            memo[key] = out
        return out


def _weights(wl: TargetWorkload, cpu_left: I64, acc: B) -> F64:
    """(R, Q): frequency of the shapes of each group that the row's CPU and GPU model admit."""
    a = np.where(acc[:, wl.group_order] & (cpu_left[:, None] >= wl.cpu_by_group), wl.freq_by_group, 0.0)
    return np.add.reduceat(a, wl.group_starts, axis=1)  # (no BLAS: it oversubscribes small CPUs)


def node_frag(wl: TargetWorkload, gpu_free: npt.NDArray[np.integer], cpu_left: I64, acc: B) -> F64:
    """Expected fragmented milli-GPU of each row: ``gpu_free`` (R, G), ``cpu_left`` (R,), ``acc``
    (R, S) from :meth:`TargetWorkload.accessible`."""
    g = gpu_free.astype(np.int32)
    free = np.maximum(g, 0)
    total = np.add.reduce(free, axis=1, dtype=np.int64).astype(np.float64)
    ge = g[:, :, None] >= wl.group_milli  # (R, G, Q): device can host one replica of group q
    usable = np.add.reduce(ge * free[:, :, None], axis=1, dtype=np.int32)  # (R, Q)
    fits = np.add.reduce(ge, axis=1, dtype=np.int32) >= wl.group_gpus
    return total - np.add.reduce(_weights(wl, cpu_left, acc) * (fits * usable), axis=1)


def frag_after_share(wl: TargetWorkload, gpu_free: npt.NDArray[np.integer], cpu_left: I64, acc: B,
                     req: Resources) -> F64:
    """(R, G): fragmentation after putting a GPU-share replica on device g of row r (+inf where the
    device has too little free). Only device g's terms change, so this is one pass, not G."""
    return share_before_after(wl, gpu_free, cpu_left, acc, req, before=False)[1]


def share_before_after(wl: TargetWorkload, gpu_free: npt.NDArray[np.integer], cpu_left: I64, acc: B,
                       req: Resources, before: bool = True) -> tuple[F64 | None, F64]:
    """(the rows' current fragmentation as :func:`node_frag`, or None; :func:`frag_after_share`),
    from one pass over the devices."""
    d = req.gpu_milli
    g = gpu_free.astype(np.int32)
    free = np.maximum(g, 0)
    total = np.add.reduce(free, axis=1, dtype=np.int64).astype(np.float64)
    ge = g[:, :, None] >= wl.group_milli  # (R, G, Q)
    usable = np.add.reduce(ge * free[:, :, None], axis=1, dtype=np.int32)  # (R, Q)
    count = np.add.reduce(ge, axis=1, dtype=np.int32)
    new = g - d  # (R, G): the device's free share after placement
    ge_new = new[:, :, None] >= wl.group_milli
    usable2 = usable[:, None, :] - ge * free[:, :, None] + ge_new * np.maximum(new, 0)[:, :, None]
    fits2 = (count[:, None, :] - ge + ge_new) >= wl.group_gpus  # (R, G, Q)
    w = _weights(wl, cpu_left - req.cpu_milli, acc)[:, None, :]
    frag = (total - d)[:, None] - np.add.reduce(w * (fits2 * usable2), axis=2)
    now = None
    if before:
        now = total - np.add.reduce(_weights(wl, cpu_left, acc) * ((count >= wl.group_gpus) * usable), axis=1)
    return now, np.where(g >= d, frag, np.inf)


def share_device(after: F64, gpu_free: npt.NDArray[np.integer]) -> IDX:
    """Per row, the device whose use for a GPU share leaves the least fragmentation, given
    :func:`frag_after_share`'s ``after`` (lowest index on ties; among equals, the fullest device)."""
    key = np.where(np.isfinite(after), after + gpu_free.astype(np.float64) * 1e-6, np.inf)
    return np.argmin(key, axis=1)


def take_whole(gpu_free: npt.NDArray[np.integer], n: int) -> npt.NDArray[np.int64]:
    """Free columns after taking the ``n`` lowest-numbered completely free GPUs of each row."""
    g = gpu_free.astype(np.int64)
    full = g == 1000
    take = full & (np.cumsum(full, axis=1) <= n)
    return np.where(take, 0, g)


def frag_delta(wl: TargetWorkload, table: NodeTable, req: Resources, rows: IDX,
               acc: B | None = None) -> tuple[F64, F64]:
    """(before, after) expected fragmentation of each candidate row for one replica of ``req``;
    for GPU shares ``after`` is the best device's."""
    if rows.size <= 64:
        return frag_delta_rows(wl, table, req, rows, acc)
    # Nodes in the same state score alike: compute each distinct state once.
    _, first, inverse = np.unique(state_key(table, rows), axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if first.size < rows.size:
        b, a = frag_delta_rows(wl, table, req, rows[first], None if acc is None else acc[first])
        return b[inverse], a[inverse]
    return frag_delta_rows(wl, table, req, rows, acc)


def frag_delta_rows(wl: TargetWorkload, table: NodeTable, req: Resources, rows: IDX,
                    acc: B | None = None) -> tuple[F64, F64]:
    if acc is None:
        acc = wl.accessible(table, rows)
    before = node_frag(wl, table.gpu_free[rows], table.cpu_free[rows], acc)
    return before, frag_after_rows(wl, table, req, rows, acc)


def frag_after_rows(wl: TargetWorkload, table: NodeTable, req: Resources, rows: IDX, acc: B) -> F64:
    """The ``after`` half of :func:`frag_delta_rows`."""
    g = table.gpu_free[rows]
    cpu = table.cpu_free[rows]
    if req.gpus and req.gpu_milli < 1000:
        return frag_after_share(wl, g, cpu, acc, req).min(axis=1)
    if req.gpus:
        return node_frag(wl, take_whole(g, req.gpus), cpu - req.cpu_milli, acc)
    return node_frag(wl, g, cpu - req.cpu_milli, acc)


def best_share_device(wl: TargetWorkload, table: NodeTable, row: int, req: Resources) -> int:
    """The device of ``row`` whose use for a GPU share leaves the least fragmentation (lowest index
    on ties; among equals, the fullest device first)."""
    rows = np.array([row], dtype=np.intp)
    g = table.gpu_free[rows]
    after = frag_after_share(wl, g, table.cpu_free[rows], wl.accessible(table, rows), req)
    return int(share_device(after, g)[0])


def state_key(table: NodeTable, rows: IDX) -> I64:
    """What a row's fragmentation depends on: its free GPU shares, free CPU and GPU model."""
    return np.concatenate([table.gpu_free[rows], table.cpu_free[rows, None], table.gpu_model[rows, None]],
                          axis=1, dtype=np.int64)
