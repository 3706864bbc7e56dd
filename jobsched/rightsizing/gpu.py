"""The largest GPU memory a job could get: the cap of CUDA-OOM resizing (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from jobsched.core.fit import feasible
from jobsched.core.gang import PodGroup, allowed_mask
from jobsched.core.nodes import NodeTable
from jobsched.core.snapshot import NodeShape


def largest_gpu_memory(table: NodeTable, group: PodGroup, shapes: Sequence[NodeShape] = ()) -> int | None:
    """Bytes per GPU of the largest GPU, on a node that exists (``table``) or could be added
    (``shapes``), that could host one replica of ``group`` were GPU memory no object (selector, GPU
    model, cpu, memory and GPU count fit on the empty node). None: no such GPU of known memory."""
    req = group.request
    if not req.gpus:
        return None
    any_size = replace(req, gpu_memory=0, gpu_share=False, gpu_milli=1000 if req.gpu_share else req.gpu_milli)
    empty = table.emptied()
    mask = allowed_mask(empty, group) & feasible(empty, any_size) & (empty.gpu_mem > 0)
    sizes = [int(empty.gpu_mem[mask].max())] if mask.any() else []
    for sh in shapes:
        r = sh.resources
        if (sh.max_count < 1 or not sh.gpu_memory or r.gpus < any_size.gpus or r.cpu_milli < req.cpu_milli
                or r.memory < req.memory):
            continue
        if any(sh.labels.get(k) != v for k, v in group.node_selector.items()):
            continue
        if group.gpu_models and sh.gpu_model not in group.gpu_models:
            continue
        sizes.append(sh.gpu_memory)
    return max(sizes) if sizes else None
