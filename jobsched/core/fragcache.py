"""Memoized fragmentation (:mod:`jobsched.core.fragmentation`) for the hot scoring loop.

A node's fragmentation depends only on its free GPU shares, free CPU and GPU model, so a row is
recomputed only after it changed, and then in one pass: its current fragmentation together with the
fragmentation after the request being scored (one :func:`node_frag` over the stacked before/after
states, or one device pass for a GPU share), each distinct node state once, nodes without GPUs not
at all (their fragmentation is 0). For a GPU share the best device is kept with the score, so the
chooser does not recompute it. Every figure equals the uncached definition (``frag_delta``,
``best_share_device``) bit for bit; ``tests/core/test_fast_paths.py`` holds it to that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from jobsched.core.fragmentation import (
    TargetWorkload,
    best_share_device,
    node_frag,
    share_before_after,
    share_device,
    state_key,
    take_whole,
)
from jobsched.core.nodes import NodeTable
from jobsched.spec.resources import Resources

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
IDX = npt.NDArray[np.intp]
_NONE: IDX = np.zeros(0, dtype=np.intp)


def _is_share(req: Resources) -> bool:
    return bool(req.gpus) and req.gpu_milli < 1000


def compute(wl: TargetWorkload, table: NodeTable, req: Resources, rows: IDX, acc: B,
            before: bool) -> tuple[F64 | None, F64, IDX | None]:
    """(current fragmentation if ``before``, fragmentation after one replica of ``req``, the best
    device for a GPU share) of ``rows``. Rows without GPUs are 0 (after a share: +inf, no device
    fits); the others are computed once per distinct state."""
    n = rows.size
    has = table.gpu_count[rows] > 0
    if not has.all():
        share = _is_share(req)
        b = np.zeros(n) if before else None
        a = np.full(n, np.inf if share else 0.0)
        dev = np.zeros(n, dtype=np.intp) if share else None
        sel = np.flatnonzero(has)
        if sel.size:
            b2, a[sel], d2 = compute(wl, table, req, rows[sel], acc[sel], before)
            if b is not None and b2 is not None:
                b[sel] = b2
            if dev is not None and d2 is not None:
                dev[sel] = d2
        return b, a, dev
    if n > 64:
        _, first, inverse = np.unique(state_key(table, rows), axis=0, return_index=True, return_inverse=True)
        if first.size < n:
            inv = inverse.reshape(-1)
            b, a, dev = _fused(wl, table, req, rows[first], acc[first], before)
            return None if b is None else b[inv], a[inv], None if dev is None else dev[inv]
    return _fused(wl, table, req, rows, acc, before)


def _fused(wl: TargetWorkload, table: NodeTable, req: Resources, rows: IDX, acc: B,
           before: bool) -> tuple[F64 | None, F64, IDX | None]:
    g = table.gpu_free[rows]
    cpu = table.cpu_free[rows]
    if _is_share(req):
        now, per_device = share_before_after(wl, g, cpu, acc, req, before)
        return now, per_device.min(axis=1), share_device(per_device, g)
    g_after = take_whole(g, req.gpus) if req.gpus else g
    if not before:
        return None, node_frag(wl, g_after, cpu - req.cpu_milli, acc), None
    n = rows.size
    both = node_frag(wl, np.concatenate([g, g_after]), np.concatenate([cpu, cpu - req.cpu_milli]),
                     np.concatenate([acc, acc]))
    return both[:n], both[n:], None


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
    device: IDX | None  # GPU shares: the best device of each row (as ``best_share_device``)


def _packed(a: npt.NDArray[np.int32]) -> npt.NDArray[np.generic]:
    """The same bytes as fewer, wider items (two int32 per int64) so that row comparisons are cheaper."""
    if a.ndim == 2 and a.shape[1] % 2 == 0 and a.dtype == np.int32 and a.flags.c_contiguous:
        return a.view(np.int64)
    return a


class FragCache:
    """Memoized :func:`frag_delta`: each row is recomputed only after it changed.

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
        b, dirty = self._changed(table)
        n = len(table)
        key = (req.cpu_milli, req.gpus, req.gpu_milli)
        e = self._entries.get(key)
        if e is None:
            if len(self._entries) >= self.max_shapes:
                self._entries.clear()
            dev = np.zeros(n, dtype=np.intp) if _is_share(req) else None
            e = self._entries[key] = _Entry(np.zeros(n), np.full(n, -1, dtype=np.int64), dev)
        if dirty.size:
            self._refresh(b, table, dirty, req, e)
        full = rows.size == n
        stale = np.flatnonzero(e.seen != b.ver) if full else rows[e.seen[rows] != b.ver[rows]]
        if stale.size:
            _, e.after[stale], dev = compute(self.workload, table, req, stale, b.acc[stale], before=False)
            if e.device is not None and dev is not None:
                e.device[stale] = dev
            e.seen[stale] = b.ver[stale]
        if full:
            return b.before.copy(), e.after.copy(), b.free.copy()
        return b.before[rows], e.after[rows], b.free[rows]

    def share_device(self, table: NodeTable, row: int, req: Resources) -> int:
        """:func:`best_share_device` of ``row``: the one found when the row was last scored for
        ``req``, if neither changed since."""
        b, e = self._base, self._entries.get((req.cpu_milli, req.gpus, req.gpu_milli))
        if (b is not None and e is not None and e.device is not None and b.changes is table.changes
                and b.pos == len(table.changes) and e.seen[row] == b.ver[row]):
            return int(e.device[row])
        return best_share_device(self.workload, table, row, req)

    def _changed(self, table: NodeTable) -> tuple[_Base, IDX]:
        """The shared per-row state (reset for a table of another shape or GPU model list) and the
        rows changed since it last saw ``table``; their shape access is brought up to date."""
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
                return b, _NONE
            dirty = np.fromiter(set(table.changes[b.pos:]), dtype=np.intp)
            b.pos = len(table.changes)
            # A row without GPUs stays at 0 (its GPUs cannot change within one table): skip it.
            return b, dirty[table.gpu_count[dirty] > 0]
        else:  # another table (a new cycle's copy, an emptied one): compare the free columns
            g32 = np.ascontiguousarray(gpu_free, dtype=np.int32)
            changed = (_packed(b.gpu) != _packed(g32)).any(axis=1)
            changed |= (b.cpu != table.cpu_free) | (b.model != table.gpu_model)
            dirty = np.flatnonzero(changed)
            b.changes = table.changes
        b.pos = len(table.changes)
        b.acc[dirty] = self.workload.accessible(table, dirty)
        return b, dirty

    def _refresh(self, b: _Base, table: NodeTable, dirty: IDX, req: Resources, e: _Entry) -> None:
        """Recompute the changed rows: their shared state and, in the same pass, ``req``'s after."""
        g = table.gpu_free[dirty]
        b.gpu[dirty], b.cpu[dirty], b.model[dirty] = g, table.cpu_free[dirty], table.gpu_model[dirty]
        b.free[dirty] = np.add.reduce(np.maximum(g, 0), axis=1)
        b.clock += 1
        b.ver[dirty] = b.clock
        before, e.after[dirty], dev = compute(self.workload, table, req, dirty, b.acc[dirty], before=True)
        assert before is not None
        b.before[dirty] = before
        if e.device is not None and dev is not None:
            e.device[dirty] = dev
        e.seen[dirty] = b.clock
