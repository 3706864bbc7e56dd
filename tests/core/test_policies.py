"""Placement policies give the known answer on hand-built clusters; fragmentation matches its definition."""

from __future__ import annotations

import numpy as np
import pytest

from jobsched.core.fragcache import FragCache
from jobsched.core.fragmentation import TargetWorkload, frag_after_share, frag_delta, node_frag
from jobsched.core.gang import PodGroup, place_gang
from jobsched.core.nodes import NodeTable
from jobsched.core.policies import make_policy, names
from jobsched.spec.resources import Resources

GI = 1 << 30


def table(gpus: list[int], cpu: list[int] | None = None, models: list[str] | None = None) -> NodeTable:
    n = len(gpus)
    return NodeTable.from_arrays([f"n{i}" for i in range(n)], cpu or [32000] * n, [256 * GI] * n, gpus,
                                 models or ["V100" if g else "" for g in gpus])


def use(t: NodeTable, row: int, gpu: int, milli: int, cpu: int = 0) -> None:
    t.allocate(row, Resources(cpu, 0, 1, milli), (gpu,))


def pick(policy: str, t: NodeTable, req: Resources, workload: TargetWorkload | None = None,
         seed: int = 0) -> tuple[int, tuple[int, ...]]:
    scorer, chooser = make_policy(policy, seed)
    if workload is not None:
        scorer.set_workload(workload)  # type: ignore[attr-defined]
    got = place_gang(t, PodGroup("j", req), scorer, chooser)
    assert got is not None
    return got[0].row, got[0].gpus


def wl(shapes: dict[tuple[int, int, int], float]) -> TargetWorkload:
    return TargetWorkload.from_shapes({(c, g, m, ()): f for (c, g, m), f in shapes.items()})


def brute_frag(free: list[int], cpu: int, w: TargetWorkload) -> float:
    """The published definition, one node and one shape at a time."""
    total = sum(max(x, 0) for x in free)
    out = 0.0
    for s in range(len(w)):
        d, k, c = int(w.milli[s]), int(w.gpus[s]), int(w.cpu[s])
        if cpu >= c and sum(1 for x in free if x >= d) >= k:
            out += w.freq[s] * sum(x for x in free if 0 <= x < d)
        else:
            out += w.freq[s] * total
    return out


def test_registry_lists_every_policy_and_rejects_unknown() -> None:
    assert {"random", "bestfit", "dotprod", "packing", "clustering", "fgd", "jobsched"} <= set(names())
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        make_policy("nope")


def test_node_frag_known_values() -> None:
    t = table([2])
    use(t, 0, 1, 700)  # free [1000, 300]
    rows = np.array([0])
    half = wl({(1000, 1, 500): 1.0})
    assert node_frag(half, t.gpu_free[rows], t.cpu_free[rows], half.accessible(t, rows))[0] == pytest.approx(300)
    mix = wl({(1000, 1, 500): 1.0, (1000, 2, 1000): 1.0})  # 2 whole GPUs cannot fit: all 1300 free is fragment
    assert node_frag(mix, t.gpu_free[rows], t.cpu_free[rows], mix.accessible(t, rows))[0] == pytest.approx(800)
    starved = table([2], cpu=[500])
    assert node_frag(half, starved.gpu_free[rows], starved.cpu_free[rows],
                     half.accessible(starved, rows))[0] == pytest.approx(2000)  # too little CPU for any pod


def test_vectorized_frag_matches_definition_on_random_states() -> None:
    rng = np.random.default_rng(1)
    w = wl({(4000, 1, 1000): 3, (2000, 1, 500): 2, (8000, 2, 1000): 1, (1000, 1, 250): 2, (3000, 1, 700): 1})
    n = 40
    t = table(list(rng.choice([1, 2, 4, 8], n)), cpu=list(rng.integers(0, 16, n) * 1000))
    t.gpu_free[t.gpu_free >= 0] = rng.choice([0, 250, 300, 500, 750, 1000], int((t.gpu_free >= 0).sum()))
    t._refresh_gpu_rows(np.arange(n))
    rows = np.arange(n)
    acc = w.accessible(t, rows)
    got = node_frag(w, t.gpu_free, t.cpu_free, acc)
    assert np.allclose(got, [brute_frag(list(t.gpu_free[i]), int(t.cpu_free[i]), w) for i in range(n)])
    share = Resources(1000, 0, 1, 500)
    after = frag_after_share(w, t.gpu_free, t.cpu_free, acc, share)
    for i in range(n):
        for g in range(t.gpu_free.shape[1]):
            if t.gpu_free[i, g] >= 500:
                free = list(t.gpu_free[i])
                free[g] -= 500
                assert after[i, g] == pytest.approx(brute_frag(free, int(t.cpu_free[i]) - 1000, w))
            else:
                assert np.isinf(after[i, g])
    # The per-shape cache returns the same numbers, and notices a changed row.
    cache = FragCache(w)
    b0, a0 = frag_delta(w, t, share, rows)
    b1, a1 = cache.delta(t, share, rows)
    assert np.allclose(b0, b1) and np.allclose(a0, a1)
    row = int(np.flatnonzero(t.gpu_max_free >= 500)[0])
    gpu = int(np.flatnonzero(t.gpu_free[row] >= 500)[0])
    t.allocate(row, share, (gpu,))
    b2, a2 = cache.delta(t, share, rows)
    b3, a3 = frag_delta(w, t, share, rows)
    assert np.allclose(b2, b3) and np.allclose(a2, a3)


def test_fgd_fills_the_half_used_gpu_when_whole_gpus_are_typical() -> None:
    t = table([1, 1])
    use(t, 1, 0, 500)  # n1 has half a GPU free, n0 a whole one
    w = wl({(1000, 1, 1000): 1.0})
    assert pick("fgd", t, Resources(1000, GI, 1, 500), w) == (1, (0,))


def test_fgd_keeps_room_for_the_typical_share_and_picks_the_device() -> None:
    # n0: devices free [600, 1000]; a 400 pod on device 0 leaves 200 (a fragment for 400-shaped pods),
    # on device 1 it leaves 600 (room for one more). Typical pods ask 400: device 1 wastes least.
    t = table([2])
    use(t, 0, 0, 400)
    w = wl({(1000, 1, 400): 1.0})
    assert pick("fgd", t, Resources(1000, GI, 1, 400), w) == (0, (1,))
    # Free [400, 1000]: either device leaves no fragment for 400-shaped pods; jobsched breaks the tie
    # by filling the fuller device exactly.
    t2 = table([2])
    use(t2, 0, 0, 600)  # free [400, 1000]: a 400 pod fills device 0 exactly
    assert pick("jobsched", t2, Resources(1000, GI, 1, 400), w) == (0, (0,))


def test_bestfit_prefers_the_fuller_node() -> None:
    t = table([4, 4])
    use(t, 1, 0, 1000)
    assert pick("bestfit", t, Resources(1000, GI, 1, 1000))[0] == 1


def test_packing_prefers_shared_gpus_then_used_nodes_then_idle() -> None:
    t = table([2, 2, 2])
    use(t, 1, 0, 1000)  # n1: partly used node, no shared GPU
    use(t, 2, 0, 300)  # n2: a shared GPU with 700 free
    assert pick("packing", t, Resources(1000, GI, 1, 500)) == (2, (0,))
    t = table([2, 2])
    use(t, 1, 0, 1000)
    assert pick("packing", t, Resources(1000, GI, 1, 1000))[0] == 1


def test_dotprod_prefers_the_node_with_less_free_in_the_requested_dimensions() -> None:
    t = table([4, 4])
    use(t, 0, 0, 1000, cpu=16000)
    assert pick("dotprod", t, Resources(4000, GI, 1, 1000))[0] == 0


def test_clustering_groups_pods_with_the_same_gpu_request() -> None:
    # The published tags: every GPU share is "share-gpu", whole GPUs are tagged by their count.
    t = table([8, 8, 8])
    scorer, chooser = make_policy("clustering", 0)
    for row, req in ((1, Resources(1000, 0, 2, 1000)), (2, Resources(1000, 0, 1, 500))):
        t.allocate(row, req, tuple(range(req.gpus)))
        scorer.observe(row, req)  # type: ignore[attr-defined]
    got = place_gang(t, PodGroup("j", Resources(1000, GI, 1, 250)), scorer, chooser)
    assert got is not None and got[0].row == 2
    got = place_gang(t, PodGroup("k", Resources(1000, GI, 2, 1000)), scorer, chooser)
    assert got is not None and got[0].row == 1


def test_jobsched_keeps_cpu_jobs_off_gpu_nodes_and_packs_whole_gpu_jobs() -> None:
    t = table([4, 4, 0], cpu=[32000, 32000, 64000])
    assert pick("jobsched", t, Resources(8000, GI))[0] == 2  # no workload given: the default one
    use(t, 1, 0, 1000)
    assert pick("jobsched", t, Resources(4000, GI, 2, 1000)) == (1, (1, 2))


def test_jobsched_avoids_stranding_gpus_for_want_of_cpu() -> None:
    # Both nodes idle with 4 GPUs; n0 has just the CPU its GPUs need, n1 plenty. A CPU-heavy pod must
    # go where it does not strand GPUs (the typical GPU pod needs 7 cores per GPU).
    t = table([4, 4], cpu=[32000, 96000])
    w = wl({(7000, 1, 1000): 1.0})
    assert pick("jobsched", t, Resources(16000, GI), w)[0] == 1


def test_random_is_deterministic_for_a_seed() -> None:
    t = table([1] * 50)
    a = [pick("random", t.copy(), Resources(100, GI, 1, 1000), seed=7)[0] for _ in range(3)]
    assert len(set(a)) == 1
    b = {pick("random", t.copy(), Resources(100, GI, 1, 1000), seed=s)[0] for s in range(10)}
    assert len(b) > 1
