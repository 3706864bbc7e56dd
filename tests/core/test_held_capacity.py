"""Room held by other schedulers' pods is temporary: a job that fits the nodes as they are for good
waits (saying why) instead of failing, and is admitted once that room is given back."""

from __future__ import annotations

from jobsched.core import Admit, Reject, Scheduler, Snapshot, Wait
from jobsched.core.nodes import NodeTable
from jobsched.spec.node import Node
from tests.builders import make_job


def node(name: str, cpu: str = "8", gpus: int = 0, held: dict | None = None, pool: str = "p") -> Node:
    alloc = {"cpu": cpu, "memory": "32Gi", **({"nvidia.com/gpu": gpus} if gpus else {})}
    return Node(name=name, capacity=alloc, allocatable=alloc, labels={"pool": pool}, held=held or {})


def decide(nodes: list[Node], *jobs):
    snap = Snapshot.build(NodeTable.from_nodes(nodes))
    res = Scheduler().cycle(snap, [j.build() for j in jobs], now=1.0)
    return {d.key: d for d in res.decisions}


def test_job_pinned_to_a_node_a_foreign_pod_fills_waits_then_runs():
    pinned = make_job("pinned").cpu(7000).selector(pool="one")
    held = [node("n1", held={"cpu": "7"}, pool="one"), node("n2", pool="two")]
    d = decide(held, pinned)["pinned"]
    assert isinstance(d, Wait) and not isinstance(d, Reject)
    assert d.reason.startswith("waiting: capacity held by pods of other schedulers on 1 node; ")
    assert isinstance(decide([node("n1", pool="one"), node("n2", pool="two")], pinned)["pinned"], Admit)


def test_gpu_gang_waits_while_foreign_pods_hold_gpus():
    gang = make_job("g4").gpus(4).replicas(2)
    nodes = [node(f"n{i}", gpus=4, held={"nvidia.com/gpu": 1}) for i in range(2)]
    d = decide(nodes, gang)["g4"]
    assert isinstance(d, Wait) and "capacity held by pods of other schedulers on 2 nodes" in d.reason
    nodes[1] = node("n1", gpus=4)  # one node's foreign pod ended: still one short
    assert isinstance(decide(nodes, gang)["g4"], Wait)
    assert isinstance(decide([node(f"n{i}", gpus=4) for i in range(2)], gang)["g4"], Admit)


def test_what_can_never_fit_still_fails_and_ordinary_waits_say_nothing_of_foreign_pods():
    d = decide([node("n1", held={"cpu": "2"})], make_job("huge").cpu(9000))
    assert isinstance(d["huge"], Reject) and "even empty" in d["huge"].reason
    # Too big while another of jobsched's own gangs runs: no mention of other schedulers.
    nodes = [node("n1", held={"cpu": "1"})]
    snap = Snapshot.build(NodeTable.from_nodes(nodes), [make_job("r").cpu(6000).running_on("n1")])
    res = Scheduler().cycle(snap, [make_job("w").cpu(3000).build()], now=1.0)
    (w,) = res.decisions
    assert isinstance(w, Wait) and "other schedulers" not in w.reason


def test_held_room_is_taken_from_free_not_from_capacity():
    t = NodeTable.from_nodes([node("n1", gpus=4, held={"cpu": "3", "memory": "1Gi", "nvidia.com/gpu": 3})])
    assert (int(t.cpu_cap[0]), int(t.cpu_free[0]), int(t.gpu_full[0])) == (8000, 5000, 1)
    e = t.emptied()
    assert (int(e.cpu_free[0]), int(e.gpu_full[0])) == (8000, 4)
    back = t.without_held()
    assert (int(back.cpu_free[0]), int(back.mem_free[0]), int(back.gpu_full[0])) == (8000, 32 * 2**30, 4)
