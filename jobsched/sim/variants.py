"""GPU-model-constrained variants of a pod list (the FGD paper's ``gpuspec`` lists).

``gpuspec_variant(pods, nodes, fraction, seed)`` restricts ``fraction`` of the GPU pods (counting
those already restricted) to one or several GPU models, drawn in proportion to the cluster's mix:
a model's chance is its share of the cluster's nodes (``by="nodes"``, the default) or GPUs
(``by="gpus"``), among the models whose nodes can host the pod at all (enough GPUs and CPU on one
node). By nodes, as in the FGD authors' gpuspec lists (e.g. their ``openb_pod_list_gpuspec33``, where
about 40 % of the restricted pods name T4, which has a third of the nodes but 14 % of the GPUs), the
small-GPU-count models get more pinned demand than their GPU share: the hard case. The number of models is 1 (60 %), 2 (30 %) or 3 (10 %),
at most the number of models that can host the pod. Pods are picked uniformly at random; the rest of
the list is unchanged.

``python -m jobsched.sim.variants --nodes N.csv --pods P.csv --fraction 0.33 -o out.csv`` writes one;
``jobsched simulate --gpuspec 0.33`` runs the simulator on one made on the fly.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from jobsched.core.nodes import NodeTable
from jobsched.sim.trace import MIB, PodTrace, load_nodes, load_pods

MODEL_COUNT_P = (0.6, 0.3, 0.1)  # P(1, 2, 3 accepted models)


def model_mix(nodes: NodeTable, by: str = "nodes") -> dict[str, int]:
    """Nodes (``by="nodes"``) or GPUs (``by="gpus"``) of each model in the cluster."""
    if by not in ("nodes", "gpus"):
        raise ValueError(f"by must be 'nodes' or 'gpus', got {by!r}")
    out = dict.fromkeys(nodes.models, 0)
    for code, count in zip(nodes.gpu_model.tolist(), nodes.gpu_count.tolist(), strict=True):
        if code >= 0:
            out[nodes.models[code]] += int(count) if by == "gpus" else 1
    return out


def _hosts(nodes: NodeTable, gpus: int, cpu: int) -> set[str]:
    """Models with at least one node that can hold the pod when empty."""
    ok = (nodes.gpu_count >= gpus) & (nodes.cpu_cap >= cpu) & (nodes.gpu_model >= 0)
    return {nodes.models[c] for c in np.unique(nodes.gpu_model[ok]).tolist()}


def gpuspec_variant(pods: PodTrace, nodes: NodeTable, fraction: float, seed: int = 0,
                    by: str = "nodes") -> PodTrace:
    """A copy of ``pods`` in which ``fraction`` of the GPU pods accept only some GPU models."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    mix = model_mix(nodes, by)
    gpu_pods = np.flatnonzero(pods.gpus > 0)
    free = [int(i) for i in gpu_pods if not pods.models[i]]
    want = int(round(fraction * gpu_pods.size)) - (gpu_pods.size - len(free))
    models = list(pods.models)
    for i in rng.permutation(free)[: max(want, 0)].tolist():
        ok = sorted(_hosts(nodes, int(pods.gpus[i]), int(pods.cpu[i])))
        if not ok:
            continue
        weight = np.array([mix[m] for m in ok], dtype=np.float64)
        k = min(int(rng.choice(len(MODEL_COUNT_P), p=MODEL_COUNT_P)) + 1, len(ok))
        pick = rng.choice(len(ok), size=k, replace=False, p=weight / weight.sum())
        models[i] = tuple(sorted(ok[j] for j in pick))
    return replace(pods, models=models)


def write_pods_csv(pods: PodTrace, path: str | Path) -> None:
    """The openb columns the loader reads (times are left out: packing mode does not use them)."""
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec"])
        for i in range(len(pods)):
            w.writerow([pods.names[i], int(pods.cpu[i]), int(pods.mem[i]) // MIB, int(pods.gpus[i]),
                        int(pods.milli[i]) if pods.gpus[i] else 0, "|".join(pods.models[i])])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jobsched.sim.variants", description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", required=True)
    ap.add_argument("--pods", required=True)
    ap.add_argument("--fraction", type=float, required=True, help="share of GPU pods restricted, 0..1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--by", choices=("nodes", "gpus"), default="nodes", help="model weights: node or GPU counts")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args(argv)
    try:
        variant = gpuspec_variant(load_pods(a.pods), load_nodes(a.nodes), a.fraction, a.seed, a.by)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_pods_csv(variant, a.output)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
