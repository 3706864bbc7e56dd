"""Feasibility: the exported pure checks ``fits(req, table, row)`` and the vectorized ``feasible``."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from jobsched.core.framework import SUCCESS, Status
from jobsched.core.nodes import NodeTable
from jobsched.spec.resources import Resources

B = npt.NDArray[np.bool_]


def feasible(table: NodeTable, req: Resources) -> B:
    """Rows where one replica with request ``req`` fits now (resources only)."""
    mask = table.schedulable & (table.cpu_free >= req.cpu_milli) & (table.mem_free >= req.memory)
    if req.gpus:
        mask &= gpu_room(table, req)
        if req.gpu_memory:
            mask &= table.gpu_mem_ok(req)
    return mask


def feasible_rows(table: NodeTable, req: Resources, rows: npt.NDArray[np.intp]) -> B:
    """``feasible(table, req)[rows]``, computed on ``rows`` only (for requests of a fixed share)."""
    mask = table.schedulable[rows] & (table.cpu_free[rows] >= req.cpu_milli) & (table.mem_free[rows] >= req.memory)
    if req.gpus:
        if req.gpu_share:
            mask &= gpu_room(table, req)[rows]
        elif req.gpu_milli >= 1000:
            mask &= table.gpu_full[rows] >= req.gpus
        else:
            mask &= table.gpu_max_free[rows] >= req.gpu_milli
        if req.gpu_memory:
            mask &= table.gpu_mem_ok(req)[rows]
    return mask


def gpu_room(table: NodeTable, req: Resources) -> B:
    """Rows with free GPUs (or a free share of one) for ``req``, whatever their memory."""
    if req.gpu_share:
        need = table.share_need(req)
        return (need <= 1000) & (table.gpu_max_free >= need)
    if req.gpu_milli >= 1000:
        return table.gpu_full >= req.gpus
    return table.gpu_max_free >= req.gpu_milli


def fits(req: Resources, table: NodeTable, row: int) -> Status:
    """Does one replica fit on node ``row``? The reason names the first missing resource."""
    if not table.schedulable[row]:
        return Status.unschedulable("node is unschedulable")
    if table.cpu_free[row] < req.cpu_milli:
        return Status.unschedulable("insufficient cpu")
    if table.mem_free[row] < req.memory:
        return Status.unschedulable("insufficient memory")
    if req.gpus:
        if req.gpu_memory and not table.gpu_mem_ok(req)[row]:
            return Status.unschedulable("insufficient GPU memory")
        r = table.resolve(req, row)
        if r.gpu_milli >= 1000 and table.gpu_full[row] < req.gpus:
            return Status.unschedulable("insufficient nvidia.com/gpu")
        if r.gpu_milli < 1000 and table.gpu_max_free[row] < r.gpu_milli:
            return Status.unschedulable("insufficient nvidia.com/gpu share")
    return SUCCESS


def insufficiency(table: NodeTable, req: Resources, allowed: B, excluded: dict[str, int] | None = None) -> str:
    """kube-scheduler style summary: '0/5 nodes are available: 3 insufficient memory, ...'.
    ``excluded``: why the rows outside ``allowed`` are (core/constraints.py's exclusions)."""
    n = len(table)
    counts: dict[str, int] = {}
    left = allowed.copy()
    not_allowed = int((~allowed).sum())
    if excluded:
        counts.update(excluded)
    elif not_allowed:
        counts["node selector/GPU model mismatch"] = not_allowed
    checks: list[tuple[str, B]] = [
        ("unschedulable", ~table.schedulable),
        ("insufficient cpu", table.cpu_free < req.cpu_milli),
        ("insufficient memory", table.mem_free < req.memory),
    ]
    if req.gpus:
        if req.gpu_memory:
            checks.append((f"GPU memory below {_gib(req.gpu_memory)}", ~table.gpu_mem_ok(req)))
        checks.append(("insufficient nvidia.com/gpu", ~gpu_room(table, req)))
    for label, bad in checks:
        hit = int((bad & left).sum())
        if hit:
            counts[label] = hit
        left &= ~bad
    avail = int(left.sum())
    detail = ", ".join(f"{v} {k}" for k, v in counts.items())
    return f"{avail}/{n} nodes are available" + (f": {detail}" if detail else "")


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g}Gi"


def choose_gpus_bestfit(table: NodeTable, row: int, req: Resources) -> tuple[int, ...]:
    """Whole GPUs: the lowest-numbered free devices. Shares: the fullest device that still fits."""
    if not req.gpus:
        return ()
    req = table.resolve(req, row)
    g = table.gpu_free[row]
    if req.gpu_milli >= 1000:
        return tuple(int(x) for x in np.flatnonzero(g == 1000)[: req.gpus])
    ok = np.flatnonzero(g >= req.gpu_milli)
    return (int(ok[np.argmin(g[ok])]),)


class BestFitGpus:
    def choose(self, table: NodeTable, row: int, req: Resources) -> tuple[int, ...]:
        return choose_gpus_bestfit(table, row, req)
