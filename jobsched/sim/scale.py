"""``--nodes-scale K``: the same cluster K times over, with the pod list K times over to match.

Each node is repeated K times (names suffixed ``#k``), each pod K times (names suffixed ``#k``), so
the shapes and their mix, the target workload and the ratio of arrivals to capacity stay the same
while the number of nodes (and of placements per run) grows K-fold: a way to measure placements per
second at 12k (openb x 10) and 60k (x 50) nodes.
"""

from __future__ import annotations

import numpy as np

from jobsched.core.nodes import NodeTable
from jobsched.sim.trace import PodTrace


def scale_nodes(table: NodeTable, k: int) -> NodeTable:
    if k < 1:
        raise ValueError(f"nodes scale must be at least 1, got {k}")
    if k == 1:
        return table.copy()
    names = [f"{n}#{i}" if i else n for i in range(k) for n in table.names]
    return NodeTable.from_arrays(
        names, np.tile(table.cpu_cap, k), np.tile(table.mem_cap, k), np.tile(table.gpu_count, k),
        table.gpu_models_of() * k, [dict(lb) for lb in table.labels] * k, np.tile(table.price, k).tolist(),
        np.tile(table.schedulable, k).tolist(), np.tile(table.gpu_mem, k).tolist())


def scale_pods(pods: PodTrace, k: int) -> PodTrace:
    if k < 1:
        raise ValueError(f"nodes scale must be at least 1, got {k}")
    if k == 1:
        return pods
    return PodTrace(
        names=[f"{n}#{i}" if i else n for i in range(k) for n in pods.names],
        cpu=np.tile(pods.cpu, k), mem=np.tile(pods.mem, k), gpus=np.tile(pods.gpus, k),
        milli=np.tile(pods.milli, k), models=pods.models * k, created=np.tile(pods.created, k),
        duration=np.tile(pods.duration, k), replicas=np.tile(pods.replicas, k), placement=pods.placement * k)
