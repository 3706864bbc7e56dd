"""GPU memory in placement: whole GPUs only where they hold the request, memory-sized shares, and
jobs no GPU can ever hold rejected at once (virtual GPU nodes with models and memory)."""

from __future__ import annotations

import pytest

from jobsched.core import Admit, Reject, Scheduler, Snapshot, Wait
from jobsched.core.fit import feasible, fits
from jobsched.core.snapshot import NodeShape
from jobsched.spec.resources import Resources
from tests.builders import GiB, gpu_nodes, make_job, snapshot


def cluster():
    return gpu_nodes(("a10", 2, "A10G", 24), ("a100", 1, "A100-40GB", 40), ("h100", 2, "H100-80GB", 80))


def decide(snap, *jobs):
    res = Scheduler().cycle(snap, [j.build() for j in jobs], now=1.0)
    return {d.key: d for d in res.decisions}


@pytest.mark.parametrize(("gib", "nodes"), [
    (0, {"a10", "a100", "h100"}),
    (20, {"a10", "a100", "h100"}),
    (24, {"a10", "a100", "h100"}),
    (30, {"a100", "h100"}),
    (60, {"h100"}),
    (81, set()),
])
def test_whole_gpu_only_on_gpus_with_enough_memory(gib, nodes):
    t = cluster()
    req = make_job("j").gpus(1).gpu_mem(gib).request()
    assert {t.names[i] for i in feasible(t, req).nonzero()[0]} == nodes


def test_gpu_models_still_restrict_the_choice():
    d = decide(snapshot(cluster()), make_job("j").gpus(1).gpu_mem(30).models("A10G"))
    assert isinstance(d["j"], Reject)


def test_job_no_gpu_can_hold_is_rejected_at_once_with_the_reason():
    d = decide(snapshot(cluster()), make_job("big").gpus(1).gpu_mem(100))
    assert isinstance(d["big"], Reject)
    assert "GPU memory below 100Gi" in d["big"].reason


def test_a_provisionable_shape_with_larger_gpus_keeps_it_pending():
    shape = NodeShape("p5e", Resources(32000, 512 * GiB, 8, 1000), 2, "H200", gpu_memory=141 * GiB)
    snap = Snapshot.build(cluster(), provisionable=[shape])
    d = decide(snap, make_job("big").gpus(1).gpu_mem(100))
    assert isinstance(d["big"], Wait) and d["big"].for_capacity


@pytest.mark.parametrize(("node", "gpu_gib", "want_milli"), [
    ("a10", 24, 417), ("a100", 40, 250), ("h100", 80, 125)])
def test_share_is_sized_from_the_memory_of_the_gpu_it_lands_on(node, gpu_gib, want_milli):
    t = cluster()
    req = make_job("s").gpus(1).gpu_mem(10, share=True).request()
    row = t.index[node]
    assert t.resolve(req, row).gpu_milli == want_milli
    assert fits(req, t, row).ok
    t.allocate(row, req, (0,))
    assert t.gpu_free[row, 0] == 1000 - want_milli
    t.release(row, req, (0,))
    assert t.gpu_free[row, 0] == 1000


def test_shares_pack_one_gpu_until_its_memory_is_used():
    t = gpu_nodes(("g", 1, "L4", 24))
    jobs = [make_job(f"s{i}").gpus(1).gpu_mem(10, share=True).created(i) for i in range(3)]
    d = decide(snapshot(t), *jobs)
    assert isinstance(d["s0"], Admit) and isinstance(d["s1"], Admit)
    assert d["s0"].assignments[0].gpus == d["s1"].assignments[0].gpus == (0,)
    assert isinstance(d["s2"], Wait)  # 3 x 417 > 1000: the third waits, it is not rejected


def test_running_share_is_accounted_at_its_size_on_that_node():
    t = gpu_nodes(("g", 1, "L4", 24))
    running = [make_job("r").gpus(1).gpu_mem(12, share=True).running_on("g", gpus=((0,),))]
    snap = snapshot(t, running)
    assert snap.table.gpu_free[0, 0] == 500
    d = decide(snap, make_job("a").gpus(1).gpu_mem(13, share=True), make_job("b").gpus(1).gpu_mem(11, share=True))
    assert isinstance(d["b"], Admit) and isinstance(d["a"], Wait)


def test_share_larger_than_a_gpu_is_a_whole_larger_gpu():
    t = cluster()
    req = make_job("s").gpus(1).gpu_mem(30, share=True).request()
    ok = {t.names[i] for i in feasible(t, req).nonzero()[0]}
    assert ok == {"a100", "h100"}
    assert t.resolve(req, t.index["a100"]).gpu_milli == 750


def test_fixed_share_must_offer_the_requested_memory():
    t = cluster()
    req = make_job("f").gpus(1, milli=500).gpu_mem(16).request()  # half a GPU, 16Gi of it
    assert {t.names[i] for i in feasible(t, req).nonzero()[0]} == {"a100", "h100"}


def test_gpus_of_unknown_memory_are_not_checked_and_shares_there_take_a_whole_gpu():
    t = gpu_nodes(("u", 2, "", 0))
    whole = make_job("w").gpus(1).gpu_mem(40).request()
    share = make_job("s").gpus(1).gpu_mem(4, share=True).request()
    assert feasible(t, whole)[0] and feasible(t, share)[0]
    assert t.resolve(share, 0).gpu_milli == 1000


def test_memory_sized_share_needs_one_gpu():
    with pytest.raises(ValueError, match="gpus == 1"):
        Resources(0, 0, 2, 1000, GiB, True)
    # with_gpu_memory only shares a single whole GPU
    assert not Resources(0, 0, 2, 1000).with_gpu_memory(GiB, True).gpu_share
    assert not Resources(0, 0, 1, 300).with_gpu_memory(GiB, True).gpu_share
