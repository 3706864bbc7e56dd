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
        object.__setattr__(self, "_access", {})

    levels: I64 = field(init=False, repr=False)  # distinct gpu_milli values
    group_level: IDX = field(init=False, repr=False)  # per group: index into levels
    group_gpus: npt.NDArray[np.int32] = field(init=False, repr=False)  # per group: GPUs per replica
    group_milli: npt.NDArray[np.int32] = field(init=False, repr=False)  # per group: gpu_milli
    group_order: IDX = field(init=False, repr=False)  # shapes sorted by group
    group_starts: IDX = field(init=False, repr=False)  # first position of each group in that order
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
    o = wl.group_order
    a = np.where(acc[:, o] & (cpu_left[:, None] >= wl.cpu[o]), wl.freq[o], 0.0)
    return np.add.reduceat(a, wl.group_starts, axis=1)  # (no BLAS: it oversubscribes small CPUs)


def node_frag(wl: TargetWorkload, gpu_free: npt.NDArray[np.integer], cpu_left: I64, acc: B) -> F64:
    """Expected fragmented milli-GPU of each row: ``gpu_free`` (R, G), ``cpu_left`` (R,), ``acc``
    (R, S) from :meth:`TargetWorkload.accessible`."""
    g = gpu_free.astype(np.int32)
    free = np.maximum(g, 0)
    total = free.sum(axis=1, dtype=np.int64).astype(np.float64)
    ge = g[:, :, None] >= wl.group_milli  # (R, G, Q): device can host one replica of group q
    usable = (ge * free[:, :, None]).sum(axis=1, dtype=np.int32)  # (R, Q)
    fits = ge.sum(axis=1, dtype=np.int32) >= wl.group_gpus
    return total - (_weights(wl, cpu_left, acc) * (fits * usable)).sum(axis=1)


def frag_after_share(wl: TargetWorkload, gpu_free: npt.NDArray[np.integer], cpu_left: I64, acc: B,
                     req: Resources) -> F64:
    """(R, G): fragmentation after putting a GPU-share replica on device g of row r (+inf where the
    device has too little free). Only device g's terms change, so this is one pass, not G."""
    d = req.gpu_milli
    g = gpu_free.astype(np.int32)
    free = np.maximum(g, 0)
    total = free.sum(axis=1, dtype=np.int64).astype(np.float64)
    ge = g[:, :, None] >= wl.group_milli  # (R, G, Q)
    usable = (ge * free[:, :, None]).sum(axis=1, dtype=np.int32)  # (R, Q)
    count = ge.sum(axis=1, dtype=np.int32)
    new = g - d  # (R, G): the device's free share after placement
    ge_new = new[:, :, None] >= wl.group_milli
    usable2 = usable[:, None, :] - ge * free[:, :, None] + ge_new * np.maximum(new, 0)[:, :, None]
    fits2 = (count[:, None, :] - ge + ge_new) >= wl.group_gpus  # (R, G, Q)
    w = _weights(wl, cpu_left - req.cpu_milli, acc)[:, None, :]
    frag = (total - d)[:, None] - (w * (fits2 * usable2)).sum(axis=2)
    return np.where(g >= d, frag, np.inf)


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
    key = np.concatenate([table.gpu_free[rows], table.cpu_free[rows, None], table.gpu_model[rows, None]],
                         axis=1, dtype=np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
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
    after = frag_after_share(wl, g, table.cpu_free[rows], wl.accessible(table, rows), req)[0]
    free = g[0].astype(np.float64)
    key = np.where(np.isfinite(after), after + free * 1e-6, np.inf)
    return int(np.argmin(key))


def _state_key(table: NodeTable, rows: IDX) -> I64:
    return np.concatenate([table.gpu_free[rows], table.cpu_free[rows, None], table.gpu_model[rows, None]],
                          axis=1, dtype=np.int64)


def _after_dedup(wl: TargetWorkload, table: NodeTable, req: Resources, rows: IDX, acc: B) -> F64:
    """:func:`frag_after_rows`, each distinct node state computed once (as :func:`frag_delta`)."""
    if rows.size <= 64:
        return frag_after_rows(wl, table, req, rows, acc)
    _, first, inverse = np.unique(_state_key(table, rows), axis=0, return_index=True, return_inverse=True)
    if first.size == rows.size:
        return frag_after_rows(wl, table, req, rows, acc)
    return frag_after_rows(wl, table, req, rows[first], acc[first])[inverse.reshape(-1)]


@dataclass
class _Base:
    """Per-row state shared by every request shape: the node's state when last seen, its current
    fragmentation, free milli-GPU and shape access, and a version bumped whenever the row changed."""

    models: list[str]
    changes: list[int]  # the journal (``NodeTable.changes``) of the table last seen
    pos: int
    gpu: npt.NDArray[np.int32]
    cpu: I64
    model: npt.NDArray[np.int32]
    acc: B
    before: F64
    free: F64
    ver: I64
    clock: int = 0


@dataclass
class _Entry:
    after: F64
    seen: I64  # the row's version when ``after`` was computed


def _packed(a: npt.NDArray[np.int32]) -> npt.NDArray[np.generic]:
    """The same bytes as fewer, wider items (two int32 per int64) so that row comparisons are cheaper."""
    if a.ndim == 2 and a.shape[1] % 2 == 0 and a.dtype == np.int32 and a.flags.c_contiguous:
        return a.view(np.int64)
    return a


class FragCache:
    """Memoized :func:`frag_delta`: a node's fragmentation depends only on its free GPU shares, free
    CPU and GPU model, so each row is recomputed only after it changed.

    The current fragmentation (``before``) is shared by all request shapes; ``after`` is kept per
    shape with the version of each row it was computed at. Changed rows come from the table's
    journal (``NodeTable.changes``: the rows allocate/release touched, no scan); for a table not
    seen before, from a comparison of its free columns with the last state seen.
    """

    def __init__(self, workload: TargetWorkload, max_shapes: int = 512) -> None:
        self.workload = workload
        self.max_shapes = max_shapes
        self._entries: dict[tuple[int, int, int], _Entry] = {}
        self._base: _Base | None = None

    def delta(self, table: NodeTable, req: Resources, rows: IDX) -> tuple[F64, F64]:
        before, after, _ = self.delta_with_free(table, req, rows)
        return before, after

    def delta_with_free(self, table: NodeTable, req: Resources, rows: IDX) -> tuple[F64, F64, F64]:
        """(before, after, total free milli-GPU) of each row in ``rows``."""
        b = self._sync(table)
        key = (req.cpu_milli, req.gpus, req.gpu_milli)
        e = self._entries.get(key)
        n = len(table)
        if e is None:
            if len(self._entries) >= self.max_shapes:
                self._entries.clear()
            e = self._entries[key] = _Entry(np.zeros(n), np.full(n, -1, dtype=np.int64))
        full = rows.size == n
        stale = np.flatnonzero(e.seen != b.ver) if full else rows[e.seen[rows] != b.ver[rows]]
        if stale.size:
            e.after[stale] = _after_dedup(self.workload, table, req, stale, b.acc[stale])
            e.seen[stale] = b.ver[stale]
        if full:
            return b.before.copy(), e.after.copy(), b.free.copy()
        return b.before[rows], e.after[rows], b.free[rows]

    def _sync(self, table: NodeTable) -> _Base:
        """Bring the shared per-row state up to ``table``; returns it."""
        b = self._base
        gpu_free = table.gpu_free
        if b is None or b.gpu.shape != gpu_free.shape or (b.models is not table.models and b.models != table.models):
            n = len(table)
            self._entries.clear()
            b = self._base = _Base(
                table.models, table.changes, 0, np.full(gpu_free.shape, -2, dtype=np.int32),
                np.full(n, -1, dtype=np.int64), np.full(n, -2, dtype=np.int32),
                np.zeros((n, len(self.workload)), dtype=bool), np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64))
            dirty = np.arange(n, dtype=np.intp)
        elif b.changes is table.changes:  # the rows in the journal since: only free columns changed
            if b.pos == len(table.changes):
                return b
            dirty = np.fromiter(set(table.changes[b.pos:]), dtype=np.intp)
            b.pos = len(table.changes)
            return self._refresh(b, table, dirty, b.acc[dirty])
        else:  # another table (a new cycle's copy, an emptied one): compare the free columns
            g32 = np.ascontiguousarray(gpu_free, dtype=np.int32)
            changed = (_packed(b.gpu) != _packed(g32)).any(axis=1)
            changed |= (b.cpu != table.cpu_free) | (b.model != table.gpu_model)
            dirty = np.flatnonzero(changed)
            b.changes = table.changes
        b.pos = len(table.changes)
        b.acc[dirty] = acc = self.workload.accessible(table, dirty)
        return self._refresh(b, table, dirty, acc)

    def _refresh(self, b: _Base, table: NodeTable, dirty: IDX, acc: B) -> _Base:
        if dirty.size:
            g = table.gpu_free[dirty]
            b.gpu[dirty], b.cpu[dirty], b.model[dirty] = g, table.cpu_free[dirty], table.gpu_model[dirty]
            b.before[dirty] = _before_dedup(self.workload, table, dirty, acc)
            b.free[dirty] = np.maximum(g, 0).sum(axis=1)
            b.clock += 1
            b.ver[dirty] = b.clock
        return b


def _before_dedup(wl: TargetWorkload, table: NodeTable, rows: IDX, acc: B) -> F64:
    """Current fragmentation of ``rows``, each distinct node state computed once."""
    if rows.size > 64:
        _, first, inverse = np.unique(_state_key(table, rows), axis=0, return_index=True, return_inverse=True)
        if first.size < rows.size:
            sel = rows[first]
            return node_frag(wl, table.gpu_free[sel], table.cpu_free[sel], acc[first])[inverse.reshape(-1)]
    return node_frag(wl, table.gpu_free[rows], table.cpu_free[rows], acc)
