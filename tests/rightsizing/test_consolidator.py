"""Consolidator: empty nodes go after a TTL; under-used nodes are drained only by moving whole
gangs; a node with a running replica is never deleted. Also the per-job cost accumulator."""

from __future__ import annotations

import numpy as np
import pytest

from jobsched.core import NodeTable, RunningGang
from jobsched.rightsizing.consolidator import consolidate
from jobsched.rightsizing.cost import CostAccumulator, split_node_cost
from jobsched.spec.resources import Resources
from tests.builders import make_job

GiB = 2**30


def nodes(*specs: tuple[str, int, int, float]) -> NodeTable:
    """(name, cpu cores, memory GiB, price per hour)"""
    return NodeTable.from_arrays([s[0] for s in specs], [s[1] * 1000 for s in specs],
                                 [s[2] * GiB for s in specs], [0] * len(specs), price=[s[3] for s in specs])


def final_placement(running: list[RunningGang], plan_moves: list) -> dict[str, list[str]]:
    out = {g.key: [a.node for a in g.assignments] for g in running}
    for m in plan_moves:
        out[m.key] = [a.node for a in m.assignments]
    return out


@pytest.mark.parametrize(("idle_for", "ttl", "deleted"), [(301.0, 300.0, ["b"]), (299.0, 300.0, []),
                                                          (None, 300.0, [])])
def test_empty_nodes_go_after_the_ttl(idle_for: float | None, ttl: float, deleted: list[str]) -> None:
    table = nodes(("a", 8, 32, 1.0), ("b", 8, 32, 1.0))
    run = [make_job("j").cpu(6000).running_on("a")]
    idle = {"b": 1000.0 - idle_for} if idle_for is not None else {}
    p = consolidate(table, run, idle, now=1000.0, ttl=ttl, repack=False)
    assert p.delete == deleted and not p.moves
    if deleted:
        assert p.savings_per_hour == 1.0 and "empty" in p.reasons["b"]


def test_a_node_with_a_running_replica_is_never_deleted_even_if_marked_idle() -> None:
    table = nodes(("a", 8, 32, 1.0), ("b", 8, 32, 1.0))
    run = [make_job("j").cpu(6000).running_on("a"), make_job("k").cpu(6000).running_on("b")]
    p = consolidate(table, run, {"a": 0.0, "b": 0.0}, now=1e6, ttl=1.0)
    assert p.delete == [] and p.moves == []


def test_under_used_node_is_drained_by_moving_its_gang_whole() -> None:
    table = nodes(("busy", 16, 64, 2.0), ("light", 16, 64, 3.0))
    run = [make_job("big").cpu(8000).mem(8).running_on("busy"),
           make_job("small").cpu(2000).mem(4).replicas(2).running_on("light", "light")]
    p = consolidate(table, run, {}, now=0.0, ttl=300.0)
    assert p.delete == ["light"] and p.savings_per_hour == 3.0
    (move,) = p.moves
    assert move.key == "small" and move.from_nodes == ("light",)
    assert [a.node for a in move.assignments] == ["busy", "busy"]
    assert "under-used" in p.reasons["light"]


def test_a_gang_that_cannot_move_whole_stays_and_its_node_stays() -> None:
    # "pair" spans x and y; y is under-used, but x has no room for the whole pair elsewhere.
    table = nodes(("x", 8, 32, 1.0), ("y", 8, 32, 1.0), ("z", 8, 32, 1.0))
    run = [make_job("pair").cpu(3000).replicas(2).running_on("x", "y"),
           make_job("fill").cpu(4000).running_on("x"),
           make_job("zz").cpu(6000).running_on("z")]
    p = consolidate(table, run, {}, now=0.0, ttl=300.0)
    assert p.delete == [] and p.moves == []


def test_non_preemptible_gangs_are_not_moved() -> None:
    table = nodes(("busy", 16, 64, 2.0), ("light", 16, 64, 3.0))
    pinned = make_job("pinned").cpu(2000).running_on("light")
    pinned = RunningGang(pinned.key, pinned.request, pinned.assignments, preemptible=False)
    run = [make_job("big").cpu(8000).running_on("busy"), pinned]
    assert consolidate(table, run, {}, now=0.0, ttl=300.0).delete == []


def test_moved_gangs_never_land_on_empty_nodes() -> None:
    table = nodes(("empty", 16, 64, 1.0), ("light", 16, 64, 3.0))
    run = [make_job("small").cpu(2000).running_on("light")]
    p = consolidate(table, run, {"empty": 990.0}, now=1000.0, ttl=300.0)
    assert p.delete == [] and p.moves == []


@pytest.mark.parametrize("seed", range(8))
def test_random_clusters_keep_every_gang_whole_and_every_deleted_node_empty(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 8
    table = NodeTable.from_arrays([f"n{i}" for i in range(n)], [16000] * n, [64 * GiB] * n, [0] * n,
                                  price=rng.uniform(0.5, 3.0, n).round(2).tolist())
    free = {f"n{i}": [16000, 64 * GiB] for i in range(n)}
    run = []
    for j in range(10):
        b = make_job(f"g{j}").cpu(int(rng.choice([1000, 2000, 4000]))).mem(int(rng.choice([1, 4, 8])))
        reps = int(rng.integers(1, 4))
        req = b.replicas(reps).request()
        where = []
        for _ in range(reps):
            ok = [k for k, v in free.items() if v[0] >= req.cpu_milli and v[1] >= req.memory]
            if not ok:
                break
            k = ok[int(rng.integers(len(ok)))]
            free[k][0] -= req.cpu_milli
            free[k][1] -= req.memory
            where.append(k)
        if len(where) == reps:
            run.append(b.running_on(*where))
    idle = {k: 0.0 for k, v in free.items() if v == [16000, 64 * GiB]}
    p = consolidate(table, run, idle, now=1000.0, ttl=100.0)
    final = final_placement(run, p.moves)
    for g in run:
        assert len(final[g.key]) == len(g.assignments)  # whole gang, same replica count
        assert not set(final[g.key]) & set(p.delete)
    used: dict[str, list[int]] = {}
    by_key = {g.key: g for g in run}
    for key, where in final.items():
        for node in where:
            u = used.setdefault(node, [0, 0])
            u[0] += by_key[key].request.cpu_milli
            u[1] += by_key[key].request.memory
    assert all(c <= 16000 and m <= 64 * GiB for c, m in used.values())
    assert len(set(p.delete)) == len(p.delete)
    assert p.savings_per_hour == pytest.approx(sum(float(table.price[table.index[d]]) for d in p.delete))


def test_node_cost_is_shared_by_requests_and_idle_is_left_over() -> None:
    cap = Resources(8000, 32 * GiB, 4, 1000)
    charges, idle = split_node_cost(4.0, 3600.0, cap, {"a": Resources(1000, 4 * GiB, 2, 1000),
                                                       "b": Resources(4000, 4 * GiB, 0, 0)})
    assert charges == {"a": pytest.approx(2.0), "b": pytest.approx(2.0)}  # half the GPUs, half the cpu
    assert idle == pytest.approx(0.0)
    charges, idle = split_node_cost(4.0, 1800.0, cap, {"a": Resources(2000, 4 * GiB, 0, 0)})
    assert charges["a"] == pytest.approx(0.5) and idle == pytest.approx(1.5)


def test_cost_accumulator_charges_the_state_in_force() -> None:
    acc = CostAccumulator()
    cap = Resources(8000, 32 * GiB)
    acc.observe(0.0, {"n": (cap, 2.0)}, [("a", "n", Resources(4000, GiB))])
    acc.observe(3600.0, {"n": (cap, 2.0)}, [("a", "n", Resources(4000, GiB)), ("a", "n", Resources(4000, GiB))])
    acc.observe(7200.0, {}, [])
    assert acc.job("a") == pytest.approx(1.0 + 2.0)
    assert acc.idle == pytest.approx(1.0) and acc.total() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="backwards"):
        acc.observe(1.0, {}, [])


def test_moves_respect_the_gang_selector_and_unknown_gangs_stay_on_like_nodes() -> None:
    table = NodeTable.from_arrays(["busy-a", "busy-b", "light-a"], [16000] * 3, [64 * GiB] * 3, [0] * 3,
                                  labels=[{"zone": "a"}, {"zone": "b"}, {"zone": "a"}], price=[1.0, 1.0, 3.0])
    run = [make_job("x").cpu(13000).running_on("busy-a"), make_job("y").cpu(8000).running_on("busy-b"),
           make_job("z").cpu(4000).running_on("light-a")]
    # z needs zone a; busy-a has only 3 cores left, so z could go only to busy-b (zone b): no move.
    spec = {"z": make_job("z").cpu(4000).selector(zone="a").build()}
    assert consolidate(table, run, {}, now=0.0, ttl=300.0, groups=spec).delete == []
    # Without its spec, z may only go to nodes labelled like the one it runs on: no move either.
    assert consolidate(table, run, {}, now=0.0, ttl=300.0).delete == []
    # A spec that allows zone b lets it move.
    free = {"z": make_job("z").cpu(4000).build()}
    p = consolidate(table, run, {}, now=0.0, ttl=300.0, groups=free)
    assert p.delete == ["light-a"] and [a.node for a in p.moves[0].assignments] == ["busy-b"]
