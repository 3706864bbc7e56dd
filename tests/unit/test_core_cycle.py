"""Table tests of the pure scheduling core: quota, priority, gangs, preemption, never-fits."""

from __future__ import annotations

import pytest

from jobsched.core import Admit, Preempt, Reject, Scheduler, Wait
from jobsched.core.fit import feasible, fits
from jobsched.core.snapshot import QueueInfo
from tests.builders import GiB, make_job, make_nodes, snapshot


def decide(snap, *jobs, policy="jobsched"):
    res = Scheduler(policy).cycle(snap, [j.build() for j in jobs], now=100.0)
    return {d.key if not isinstance(d, Preempt) else f"preempt:{d.victim}": d for d in res.decisions}


def test_gang_all_or_nothing_places_every_replica():
    d = decide(snapshot(make_nodes(2, gpus=4)), make_job("a").gpus(1).replicas(8))
    assert isinstance(d["a"], Admit)
    assert len(d["a"].assignments) == 8
    gpus_used = {(a.node, g) for a in d["a"].assignments for g in a.gpus}
    assert len(gpus_used) == 8  # no GPU handed out twice


def test_gang_that_does_not_fit_now_places_nothing_and_says_why():
    table = make_nodes(2, gpus=4)
    running = [make_job("r").gpus(3).running_on("n0")]
    d = decide(snapshot(table, running), make_job("a").gpus(1).replicas(6))
    assert isinstance(d["a"], Wait)
    assert "only 5 of 6 replicas fit" in d["a"].reason
    assert d["a"].for_capacity


def test_never_fits_is_rejected_at_once_with_reason():
    d = decide(snapshot(make_nodes(2, gpus=4)), make_job("big").gpus(8), make_job("fat").mem(64))
    assert isinstance(d["big"], Reject) and "can never fit" in d["big"].reason
    assert isinstance(d["fat"], Reject) and "insufficient memory" in d["fat"].reason


def test_never_fits_gang_even_if_each_replica_fits():
    d = decide(snapshot(make_nodes(2, gpus=4)), make_job("g").gpus(4).replicas(3))
    assert isinstance(d["g"], Reject)
    assert "only 2 of 3 replicas" in d["g"].reason


def test_priority_orders_admission():
    d = decide(snapshot(make_nodes(1, gpus=4)), make_job("low").gpus(4).priority(0).created(1),
               make_job("high").gpus(4).priority(10).created(2))
    assert isinstance(d["high"], Admit)
    assert isinstance(d["low"], Wait)


def test_fifo_within_priority():
    d = decide(snapshot(make_nodes(1, gpus=4)), make_job("second").gpus(4).created(2),
               make_job("first").gpus(4).created(1))
    assert isinstance(d["first"], Admit) and isinstance(d["second"], Wait)


def test_queue_quota_blocks_and_reports():
    q = QueueInfo("team", gpu_quota=4)
    snap = snapshot(make_nodes(2, gpus=4), [make_job("r").gpus(2).queue("team").running_on("n0")], [q])
    d = decide(snap, make_job("a").gpus(4).queue("team"), make_job("b").gpus(2).queue("team"))
    assert isinstance(d["a"], Wait) and "quota exceeded" in d["a"].reason
    assert isinstance(d["b"], Admit)  # BestEffortFIFO: a smaller job behind still fits the quota


def test_strict_fifo_queue_does_not_let_later_jobs_pass():
    q = QueueInfo("team", gpu_quota=4, strict_fifo=True)
    snap = snapshot(make_nodes(2, gpus=4), [make_job("r").gpus(2).queue("team").running_on("n0")], [q])
    d = decide(snap, make_job("a").gpus(4).queue("team").created(1), make_job("b").gpus(2).queue("team").created(2))
    assert isinstance(d["a"], Wait) and isinstance(d["b"], Wait)
    assert "StrictFIFO" in d["b"].reason


def test_job_bigger_than_quota_is_rejected():
    q = QueueInfo("team", gpu_quota=2)
    d = decide(snapshot(make_nodes(2, gpus=4), queues=[q]), make_job("a").gpus(1).replicas(3).queue("team"))
    assert isinstance(d["a"], Reject) and "quota" in d["a"].reason


def test_unknown_queue_is_rejected():
    d = decide(snapshot(make_nodes(1)), make_job("a").queue("nope"))
    assert isinstance(d["a"], Reject) and "does not exist" in d["a"].reason


def test_preemption_evicts_whole_lower_priority_gangs_only():
    table = make_nodes(2, gpus=4)
    running = [make_job("low").gpus(2).replicas(2).priority(0).running_on("n0", "n1", gpus=((0, 1), (0, 1)))]
    d = decide(snapshot(table, running), make_job("high").gpus(4).replicas(1).priority(5))
    assert isinstance(d["preempt:low"], Preempt)
    assert "preempted by default" not in d["preempt:low"].reason
    assert "high" in d["preempt:low"].reason
    assert isinstance(d["high"], Wait) and "preempting low" in d["high"].reason


def test_preemption_picks_lowest_priority_and_reprieves_the_rest():
    table = make_nodes(2, gpus=4)
    running = [make_job("p1").gpus(4).priority(1).running_on("n0", started=1.0),
               make_job("p2").gpus(4).priority(2).running_on("n1", started=2.0)]
    d = decide(snapshot(table, running), make_job("high").gpus(4).priority(5))
    assert "preempt:p1" in d and "preempt:p2" not in d


def test_no_preemption_of_equal_or_higher_priority():
    table = make_nodes(1, gpus=4)
    running = [make_job("same").gpus(4).priority(5).running_on("n0")]
    d = decide(snapshot(table, running), make_job("new").gpus(4).priority(5))
    assert isinstance(d["new"], Wait) and not any(k.startswith("preempt:") for k in d)


def test_preemptor_waits_for_terminating_victims_without_new_victims():
    from dataclasses import replace

    table = make_nodes(1, gpus=4)
    victim = replace(make_job("low").gpus(4).running_on("n0"), terminating_for="default/high")
    snap = snapshot(table, [victim])
    res = Scheduler().cycle(snap, [make_job("default/high").gpus(4).priority(5).build(),
                                   make_job("other").gpus(4).priority(1).build()], 0.0)
    kinds = {type(d).__name__ for d in res.decisions}
    assert "Preempt" not in kinds and "Admit" not in kinds  # held for the preemptor


def test_gpu_sharing_packs_shares_on_one_gpu():
    d = decide(snapshot(make_nodes(1, gpus=2)), make_job("a").gpus(1, 500).replicas(2))
    a = d["a"].assignments
    assert a[0].gpus == a[1].gpus  # both halves on the same device


def test_node_selector_and_gpu_model():
    table = make_nodes(2, gpus=4, labels=[{"zone": "a"}, {"zone": "b"}])
    d = decide(snapshot(table), make_job("a").selector(zone="b").gpus(1), make_job("m").gpus(1).models("H100"))
    assert d["a"].assignments[0].node == "n1"
    assert isinstance(d["m"], Reject)


def test_strict_spread_uses_distinct_nodes():
    d = decide(snapshot(make_nodes(3)), make_job("s").cpu(500).replicas(3).placement("StrictSpread"))
    assert len({a.node for a in d["s"].assignments}) == 3


def test_pack_keeps_gang_together():
    d = decide(snapshot(make_nodes(3)), make_job("p").cpu(500).replicas(3))
    assert len({a.node for a in d["p"].assignments}) == 1


def test_cpu_jobs_avoid_gpu_nodes_by_default():
    from jobsched.core import NodeTable

    t = NodeTable.from_arrays(["gpu", "cpu"], [8000, 8000], [32 * GiB] * 2, [4, 0], ["A100", ""])
    d = decide(snapshot(t), make_job("c").cpu(1000))
    assert d["c"].assignments[0].node == "cpu"


@pytest.mark.parametrize("req,ok", [((8000, 32, 0), True), ((8001, 1, 0), False), ((1, 33, 0), False),
                                    ((1, 1, 4), True), ((1, 1, 5), False)])
def test_fits_exported_check(req, ok):
    t = make_nodes(1, gpus=4)
    r = make_job("x").cpu(req[0]).mem(req[1]).gpus(req[2]).request()
    assert fits(r, t, 0).ok is ok
    assert bool(feasible(t, r)[0]) is ok


def test_cycle_is_deterministic_and_does_not_mutate_snapshot():
    table = make_nodes(50, gpus=8)
    snap = snapshot(table)
    before = snap.table.gpu_free.copy()
    jobs = [make_job(f"j{i}").gpus(1 + i % 4).replicas(1 + i % 3).created(i) for i in range(60)]
    r1 = Scheduler().cycle(snap, [j.build() for j in jobs], 0.0)
    r2 = Scheduler().cycle(snap, [j.build() for j in jobs], 0.0)
    assert r1.decisions == r2.decisions
    assert (snap.table.gpu_free == before).all()
