"""Baseline scores against cases computed by hand from the FGD authors' simulator
(hkust-adsl/kubernetes-scheduler-simulator, pkg/simulator/plugin/*_score.go, pkg/utils/frag.go).

Scores there are integers 0..100; ties go to the first node of one seeded node order per run (the
authors' kube-scheduler fork keeps the smallest node name, names carry a seeded permutation). Ours add
that order below half a point, so ``floor(score)`` is the published integer.
"""

from __future__ import annotations

import numpy as np
import pytest

from jobsched.core.fragmentation import TargetWorkload, node_frag
from jobsched.core.gang import PodGroup
from jobsched.core.nodes import NodeTable
from jobsched.core.policies import make_policy
from jobsched.core.policies.baselines import sigmoid_score
from jobsched.spec.resources import Resources

GI = 1 << 30


def node(gpus: int, cpu: int = 96_000) -> NodeTable:
    return NodeTable.from_arrays(["n0"], [cpu], [512 * GI], [gpus], ["V100" if gpus else ""])


def integer_score(policy: str, t: NodeTable, req: Resources) -> int:
    scorer, _ = make_policy(policy, 0)
    s = scorer.score(t, req, np.array([0], dtype=np.intp), PodGroup("p", req))
    assert 0 < s[0] - np.floor(s[0]) < 0.5  # the node order stays below half a point
    return int(np.floor(s[0]))


def test_bestfit_published_score() -> None:
    # best_fit_score.go: 100 * (1 - (0.5 (cpuLeft - cpuReq) / 128000 + 0.5 (gpuLeft - gpuReq) / 8000))
    t = node(4, cpu=64_000)
    # 100 * (1 - 0.5 * 56000/128000 - 0.5 * 3000/8000) = 100 * (1 - 0.21875 - 0.1875) = 59.375
    assert integer_score("bestfit", t, Resources(8000, GI, 1, 1000)) == 59
    t.allocate(0, Resources(0, 0, 1, 1000), (0,))
    # 100 * (1 - 0.21875 - 0.5 * 2000/8000) = 65.625
    assert integer_score("bestfit", t, Resources(8000, GI, 1, 1000)) == 65


def test_dotprod_published_score_merge_max() -> None:
    # dot_product_score.go with -dimext merge -norm max: node (cpuLeft, gpuLeft) and pod (cpu, gpu),
    # each divided by (128000, 8000); 100 * (1 - dot / 2).
    t = node(4, cpu=64_000)
    # dot = 0.5 * 0.0625 + 0.5 * 0.125 = 0.09375 -> 100 * (1 - 0.046875) = 95.3
    assert integer_score("dotprod", t, Resources(8000, GI, 1, 1000)) == 95
    # a GPU share counts its milli-GPU: dot = 0.5 * 0.0625 + 0.5 * 0.0625 = 0.0625 -> 96.875
    assert integer_score("dotprod", t, Resources(8000, GI, 1, 500)) == 96


def test_packing_published_bands() -> None:
    # gpu_packing_score.go: idle node max(33 - freeGpus, freeGpus); free GPUs on a used node
    # max(50 - fullyFreeGpusUsed, 33); a shared GPU 100 - (left * 100 / 1000) / 10, at least 50.
    assert integer_score("packing", node(8), Resources(1000, GI, 1, 1000)) == 25
    assert integer_score("packing", node(2), Resources(1000, GI, 1, 1000)) == 31
    t = node(8)
    t.allocate(0, Resources(0, 0, 1, 400), (0,))  # device 0 has 600 left
    assert integer_score("packing", t, Resources(1000, GI, 1, 500)) == 94
    assert integer_score("packing", t, Resources(1000, GI, 2, 1000)) == 48
    assert integer_score("packing", t, Resources(1000, GI, 1, 700)) == 49  # must open a free GPU
    assert integer_score("packing", t, Resources(1000, GI)) == 0  # CPU-only pods: all equal


def test_clustering_published_bands_and_tags() -> None:
    # gpu_clustering_score.go: 25 * (8000 - gpuLeft) / 8000 plus 75 (only the pod's tag on the node),
    # 50 (the tag among others), 25 (no tag: idle), 0 (other tags). Every share is "share-gpu".
    t = node(8)
    scorer, _ = make_policy("clustering", 0)
    t.allocate(0, Resources(0, 0, 1, 500), (0,))
    scorer.observe(0, Resources(0, 0, 1, 500))  # type: ignore[attr-defined]
    rows = np.array([0], dtype=np.intp)

    def s(req: Resources) -> int:
        return int(np.floor(scorer.score(t, req, rows, PodGroup("p", req))[0]))

    assert s(Resources(0, 0, 1, 250)) == 25 * 500 // 8000 + 75  # 76: a share joins the share-gpu node
    assert s(Resources(0, 0, 2, 1000)) == 25 * 500 // 8000  # 1: another tag only
    scorer.observe(0, Resources(0, 0, 2, 1000))  # type: ignore[attr-defined]
    assert s(Resources(0, 0, 1, 250)) == 25 * 500 // 8000 + 50  # now the node holds two tags
    assert integer_score("clustering", node(8), Resources(0, 0, 1, 1000)) == 25  # idle node


def test_fgd_sigmoid_score_truncates() -> None:
    # fgd_score.go: int64(sigmoid((before - after) / 1000) * 100)
    got = sigmoid_score(np.array([2000.0, 1000.0, 0.0]), np.array([1000.0, 1000.0, 1500.0]))
    assert got.tolist() == [73.0, 50.0, 18.0]


def test_fgd_typical_pods_count_cpu_only_pods() -> None:
    # frag.go with isInvolvedCpuPods: a CPU-only typical pod makes every free GPU a fragment.
    counts = {(4000, 0, 0, ()): 1.0, (4000, 1, 1000, ()): 3.0}
    w = TargetWorkload.from_shapes(counts, popularity=1.0, step=1, cpu_pods=True)
    assert len(w) == 1 and w.freq.tolist() == [0.75]
    free = np.array([[1000, 1000]])
    acc = np.ones((1, 1), dtype=bool)
    assert node_frag(w, free, np.array([8000]), acc).tolist() == [500.0]  # 0.25 x 2000 + 0.75 x 0
    assert node_frag(w, free, np.array([1000]), acc).tolist() == [2000.0]  # too little CPU: all of it


def test_typical_pod_walk_keeps_the_most_frequent_shapes_to_the_threshold() -> None:
    counts = {(1000, 1, 1000, ()): 6.0, (2000, 1, 500, ()): 3.0, (3000, 2, 1000, ()): 1.0}
    w = TargetWorkload.from_shapes(counts, popularity=0.85, step=1)
    assert w.cpu.tolist() == [1000, 2000] and w.freq.tolist() == pytest.approx([6 / 9, 3 / 9])


def test_random_puts_a_share_on_a_random_device_that_fits() -> None:
    # open_gpu_share.go allocateGpuIdBasedOnRandomFit (the authors run Random with -gpusel random).
    t = node(3)
    t.allocate(0, Resources(0, 0, 1, 400), (1,))
    t.allocate(0, Resources(0, 0, 1, 800), (2,))  # free: 1000, 600, 200
    seen = set()
    for seed in range(20):
        _, chooser = make_policy("random", seed)
        seen.add(chooser.choose(t, 0, Resources(0, 0, 1, 500)))
    assert seen == {(0,), (1,)}


def _empty_gpu_nodes(names: list[str]) -> NodeTable:
    n = len(names)
    return NodeTable.from_arrays(names, [96_000] * n, [512 * GI] * n, [8] * n, ["V100"] * n)


@pytest.mark.parametrize("policy", ["packing", "clustering", "bestfit", "dotprod"])
def test_ties_go_to_the_first_node_of_one_seeded_order_for_the_whole_run(policy: str) -> None:
    """The authors' kube-scheduler fork keeps the smallest node name among equal scores, and the
    simulator names nodes after a seeded permutation: every tie of a run goes to the same node. A
    CPU-only pod scores 0 everywhere under packing and clustering, so such pods fill one node
    first instead of spreading over the cluster."""
    from jobsched.core.gang import place_gang

    names = [f"node-{i}" for i in range(12)]
    firsts = set()
    for seed in range(8):
        t = _empty_gpu_nodes(names)
        scorer, chooser = make_policy(policy, seed)
        rows = {place_gang(t, PodGroup(f"p{k}", Resources(8000, GI)), scorer, chooser)[0].row for k in range(5)}
        if policy in ("packing", "clustering"):
            assert len(rows) == 1  # all five on one node
        first = names[min(rows)] if len(rows) == 1 else None
        # The order belongs to the node names: the same node wins in a table listed the other way round.
        rev = _empty_gpu_nodes(names[::-1])
        scorer, chooser = make_policy(policy, seed)
        got = place_gang(rev, PodGroup("p0", Resources(8000, GI)), scorer, chooser)
        assert got is not None
        if first is not None:
            assert got[0].node == first
        firsts.add(got[0].node)
    assert len(firsts) > 1  # another seed, another order
