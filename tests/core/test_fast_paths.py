"""The speed-ups change no placement: the shared fragmentation cache against the uncached
definition, the per-class score cache of a cycle against scoring every node, on mixed workloads
(GPU shares, whole and multi-GPU gangs, Pack/Spread/StrictSpread, node selectors, GPU models)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from jobsched.core.cycle import Admit, Scheduler, Wait
from jobsched.core.fragcache import FragCache
from jobsched.core.fragmentation import TargetWorkload, best_share_device, frag_delta
from jobsched.core.gang import PodGroup
from jobsched.core.nodes import NodeTable
from jobsched.core.policies import make_policy
from jobsched.core.policies.baselines import FGD
from jobsched.core.policies.basic import BestFit, JobschedDefault
from jobsched.core.snapshot import Snapshot
from jobsched.sim.packing import run_packing
from jobsched.sim.trace import load_nodes, load_pods
from jobsched.spec.resources import Resources

GI = 1 << 30
DATA = Path(__file__).parents[1] / "sim" / "data"


def cluster(n: int, seed: int) -> NodeTable:
    rng = np.random.default_rng(seed)
    gpus = rng.choice([0, 2, 4, 8], size=n).tolist()
    models = [str(rng.choice(["T4", "V100", "A100"])) if g else "" for g in gpus]
    labels = [{"zone": str(rng.choice(["a", "b"]))} for _ in range(n)]
    return NodeTable.from_arrays([f"n{i}" for i in range(n)], rng.choice([16000, 32000, 96000], size=n).tolist(),
                                 [256 * GI] * n, gpus, models, labels)


def pending(n: int, seed: int) -> list[PodGroup]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = rng.random()
        if k < 0.3:
            r = Resources(int(rng.choice([500, 2000, 8000])), 2 * GI)
        elif k < 0.6:
            r = Resources(2000, 4 * GI, 1, int(rng.choice([250, 500, 700])))
        else:
            g = int(rng.choice([1, 2, 4]))
            r = Resources(2000 * g, 8 * GI * g, g, 1000)
        out.append(PodGroup(f"ns/j{i}", r, replicas=int(rng.choice([1, 1, 1, 2, 3])), created=float(i),
                            placement=str(rng.choice(["Pack", "Spread", "StrictSpread"])),
                            node_selector={"zone": "a"} if rng.random() < 0.2 else {},
                            gpu_models=("T4", "A100") if r.gpus and rng.random() < 0.3 else ()))
    return out


def decisions(policy: str, table: NodeTable, pods: list[PodGroup]) -> list[tuple[str, object]]:
    res = Scheduler(policy, seed=0, preemption=False).cycle(Snapshot.build(table), pods, now=0.0)
    return [(d.key, d.assignments if isinstance(d, Admit) else getattr(d, "reason", "")) for d in res.decisions]


@pytest.mark.parametrize("policy", ["jobsched", "bestfit", "fgd", "packing", "dotprod"])
def test_cycle_with_score_cache_places_exactly_as_scoring_every_node(policy: str, monkeypatch) -> None:
    table, pods = cluster(60, 1), pending(400, 2)
    fast = decisions(policy, table, pods)
    assert sum(1 for _, a in fast if isinstance(a, tuple)) > 100  # most of them placed, some waiting
    monkeypatch.setattr(type(make_policy(policy, 0)[0]), "row_local", False)
    assert decisions(policy, table, pods) == fast


def test_scores_that_read_more_than_one_node_are_never_cached() -> None:
    """Random draws per scoring and jobsched's model-demand cost reads every node's free GPUs once
    pods pin GPU models: neither may reuse a cached score. The baselines' node order is fixed per
    node, so theirs may."""
    assert not getattr(make_policy("random", 0)[0], "row_local", False)
    for name in ("bestfit", "dotprod", "packing", "clustering", "fgd"):
        assert make_policy(name, 0)[0].row_local
    assert JobschedDefault().row_local
    pinned = TargetWorkload.from_shapes({(2000, 1, 1000, ()): 3, (1000, 1, 1000, ("T4",)): 1})
    assert not JobschedDefault(pinned).row_local


def test_frag_cache_matches_the_definition_across_changes_and_tables() -> None:
    t = cluster(40, 3)
    wl = TargetWorkload.from_shapes({(2000, 1, 500, ()): 3, (4000, 2, 1000, ()): 2, (1000, 1, 1000, ("T4",)): 1,
                                     (8000, 4, 1000, ("A100", "V100")): 1})
    cache = FragCache(wl)
    rng = np.random.default_rng(4)
    rows = np.arange(len(t))
    reqs = [Resources(2000, GI, 1, 300), Resources(4000, GI, 2, 1000), Resources(1000, GI)]
    for step in range(200):
        if step == 100:  # a table the cache has not seen: compared column by column
            t = t.emptied()
        req = reqs[step % 3]
        sub = rows if step % 2 else np.sort(rng.choice(rows, size=7, replace=False))
        b, a, free = cache.delta_with_free(t, req, sub)
        b0, a0 = frag_delta(wl, t, req, sub)
        np.testing.assert_array_equal(b, b0)
        np.testing.assert_array_equal(a, a0)
        np.testing.assert_array_equal(free, np.maximum(t.gpu_free[sub], 0).sum(axis=1))
        if req.gpu_milli < 1000:  # the device kept with a share's score is the one the chooser computes
            for row in sub[:8]:
                assert cache.share_device(t, int(row), req) == best_share_device(wl, t, int(row), req)
        r = int(rng.integers(len(t)))
        if t.cpu_free[r] >= 1000 and t.gpu_max_free[r] >= 250:
            t.allocate(r, Resources(1000, 0, 1, 250), (int(np.argmax(t.gpu_free[r])),))


def test_packing_placements_unchanged_with_the_caches(monkeypatch) -> None:
    nodes, pods = load_nodes(DATA / "nodes.csv"), load_pods(DATA / "pods.csv")

    def digest() -> dict[str, str]:
        out = {}
        for policy in ("jobsched", "fgd", "bestfit"):
            run = run_packing(nodes, pods, policy, 42, 3.0, keep_table=True)
            assert run.table is not None
            out[policy] = hashlib.sha1(run.table.gpu_free.tobytes() + run.table.cpu_free.tobytes()
                                       + run.allocated_pct.tobytes()).hexdigest()
        return out

    fast = digest()

    def uncached(self: FragCache, table: NodeTable, req: Resources, rows: np.ndarray) -> tuple:
        b, a = frag_delta(self.workload, table, req, rows)
        return b, a, np.maximum(table.gpu_free[rows], 0).sum(axis=1).astype(np.float64)

    monkeypatch.setattr(FragCache, "delta_with_free", uncached)
    monkeypatch.setattr(JobschedDefault, "row_local", False)
    monkeypatch.setattr(BestFit, "row_local", False)
    monkeypatch.setattr(FGD, "row_local", False)
    assert digest() == fast


def test_waits_keep_their_reasons_with_the_cache() -> None:
    table = cluster(5, 5)
    pods = [PodGroup(f"ns/big{i}", Resources(1000, GI, 8, 1000)) for i in range(40)]
    res = Scheduler("jobsched", preemption=False).cycle(Snapshot.build(table), pods, now=0.0)
    assert any(isinstance(d, Wait) and "fit" in d.reason for d in res.decisions)
