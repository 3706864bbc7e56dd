"""Provisioner: the cheapest set of new nodes that fits every pending gang; pools and provider."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jobsched.core.gang import PodGroup, place_gang
from jobsched.core.nodes import NodeTable
from jobsched.core.policies import make_policy
from jobsched.rightsizing.pools import InstanceType, SimulatedProvider, load_pool
from jobsched.rightsizing.provisioner import plan
from jobsched.spec.errors import SpecError
from jobsched.spec.node import GPU_MODEL_LABEL
from tests.builders import make_job, make_nodes

GiB = 2**30


def itype(name: str, cpu: int, mem_gib: int, price: float, gpus: int = 0, model: str = "", max_count: int = 8,
          **labels: str) -> InstanceType:
    return InstanceType(name=name, cpu=cpu, memory=f"{mem_gib}Gi", gpus=gpus, gpu_model=model,
                        price_per_hour=price, max_count=max_count, labels=labels)


SMALL = itype("small", 8, 32, 1.0)
BIG = itype("big", 32, 128, 3.5)
GPU4 = itype("gpu4", 48, 192, 5.67, gpus=4, model="A10G")
GPU8 = itype("gpu8", 96, 1152, 12.0, gpus=8, model="A100")


@pytest.mark.parametrize(("gangs", "pools", "want", "cost"), [
    # 4 x (4 cpu, 20 GiB): one big (3.5) beats four small (4.0)
    ([make_job("a").cpu(4000).mem(20).replicas(4)], [SMALL, BIG], [("big", 1)], 3.5),
    # one replica of 6 GiB: one small
    ([make_job("a").cpu(2000).mem(6)], [SMALL, BIG], [("small", 1)], 1.0),
    # a gang that needs 2 nodes: 2 x 4 GPUs on two gpu4 (11.34) rather than one gpu8 (12)
    ([make_job("g").cpu(8000).mem(60).gpus(4).replicas(2)], [GPU4, GPU8], [("gpu4", 2)], 11.34),
    # same gang, when the gpu8 is cheaper than two gpu4
    ([make_job("g").cpu(8000).mem(60).gpus(4).replicas(2)], [GPU4, GPU8.model_copy(update={"price_per_hour": 10.0})],
     [("gpu8", 1)], 10.0),
    # memory too large for a gpu4: the gang needs gpu8 even though it is dearer
    ([make_job("g").cpu(8000).mem(300).gpus(4).replicas(2)], [GPU4, GPU8], [("gpu8", 1)], 12.0),
    # the CPU gang fits beside the GPU gang on the GPU node: no extra CPU node
    ([make_job("g").cpu(8000).mem(60).gpus(4), make_job("c").cpu(8000).mem(16).replicas(2)],
     [SMALL, GPU4], [("gpu4", 1)], 5.67),
    # StrictSpread: 3 replicas on 3 distinct nodes, however small
    ([make_job("s").cpu(1000).mem(1).replicas(3).placement("StrictSpread")], [SMALL, BIG], [("small", 3)], 3.0),
    # maxCount forces a mix: 8 x 20 GiB; one big (the only one allowed) holds 6, two small the rest
    ([make_job("m").cpu(2000).mem(20).replicas(8)], [SMALL.model_copy(update={"max_count": 8}),
                                                    BIG.model_copy(update={"max_count": 1})],
     [("small", 2), ("big", 1)], 5.5),
])
def test_cheapest_fitting_mix(gangs: list, pools: list[InstanceType], want: list[tuple[str, int]],
                              cost: float) -> None:
    groups = [g.build() for g in gangs]
    p = plan(groups, pools, {})
    assert sorted(p.nodes) == sorted(want)
    assert p.cost_per_hour == pytest.approx(cost)
    assert p.optimal and not p.unfit and not p.deferred
    for g in groups:
        assert len(p.placements[g.key]) == g.replicas


def test_existing_nodes_count_against_max_count() -> None:
    g = make_job("a").cpu(4000).mem(20).replicas(4).build()
    p = plan([g], [SMALL, BIG.model_copy(update={"max_count": 2})], {"big": 2})
    assert p.nodes == [("small", 4)]


def test_gpu_model_and_selector_pick_the_allowed_type() -> None:
    a100 = make_job("g").gpus(1).models("A100").build()
    assert plan([a100], [GPU4, GPU8], {}).nodes == [("gpu8", 1)]
    zone = make_job("z").selector(zone="b").build()
    zb = itype("zb", 8, 32, 2.0, zone="b")
    assert plan([zone], [SMALL, zb], {}).nodes == [("zb", 1)]


def test_gangs_that_can_never_fit_are_reported_not_planned() -> None:
    huge = make_job("huge").mem(4096).build()
    wide = make_job("wide").replicas(20).placement("StrictSpread").build()
    ok = make_job("ok").build()
    p = plan([huge, wide, ok], [SMALL, BIG], {})
    assert sorted(p.unfit) == ["huge", "wide"]
    assert "no instance type" in p.reasons["huge"] and "maxCount" in p.reasons["wide"]
    assert p.nodes == [("small", 1)]


def test_later_gangs_are_deferred_when_max_count_runs_out() -> None:
    one = [SMALL.model_copy(update={"max_count": 1})]
    first, second = make_job("first").cpu(6000).build(), make_job("second").cpu(6000).build()
    p = plan([first, second], one, {})
    assert p.deferred == ["second"] and p.nodes == [("small", 1)]


def test_free_room_on_current_nodes_is_used() -> None:
    current = make_nodes(1, cpu=8000, mem_gib=32)
    g = make_job("a").cpu(4000).mem(8).replicas(3).build()
    p = plan([g], [SMALL, BIG], {}, current=current)
    assert p.nodes == [("small", 1)]  # two replicas on n0, one on a new node
    assert sorted(p.placements["a"]).count("n0") == 2


def _fits(groups: list[PodGroup], pools: list[InstanceType], counts: tuple[int, ...]) -> bool:
    names, cpu, mem, gpus, models = [], [], [], [], []
    for t, c in zip(pools, counts, strict=True):
        r = t.resources()
        for j in range(c):
            names.append(f"{t.name}{j}")
            cpu.append(r.cpu_milli)
            mem.append(r.memory)
            gpus.append(r.gpus)
            models.append(t.gpu_model)
    table = NodeTable.from_arrays(names, cpu, mem, gpus, models)
    scorer, chooser = make_policy("bestfit")
    return all(place_gang(table, g, scorer, chooser) is not None
               for g in sorted(groups, key=lambda g: (g.total().gpu_total_milli, g.total().memory,
                                                      g.total().cpu_milli, g.key), reverse=True))


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_on_small_random_cases(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pools = [SMALL.model_copy(update={"max_count": 4}), BIG.model_copy(update={"max_count": 2}),
             GPU4.model_copy(update={"max_count": 3})]
    groups = []
    for i in range(int(rng.integers(1, 4))):
        b = make_job(f"j{i}").cpu(int(rng.choice([1000, 4000, 8000]))).mem(int(rng.choice([2, 12, 24])))
        b = b.replicas(int(rng.integers(1, 4)))
        if rng.random() < 0.4:
            b = b.gpus(int(rng.choice([1, 2])))
        groups.append(b.build())
    p = plan(groups, pools, {})
    best = min((sum(t.price_per_hour * c for t, c in zip(pools, counts, strict=True)), counts)
               for counts in itertools.product(*(range(t.max_count + 1) for t in pools))
               if _fits(groups, pools, counts))
    assert p.cost_per_hour == pytest.approx(best[0])


def test_pool_yaml_rejects_unknown_keys_and_names_the_field() -> None:
    text = """
name: gpu
instanceTypes:
  - {name: g5, cpu: 48, memory: 192Gi, gpus: 4, gpuModel: A10G, pricePerHour: 5.67, maxCount: 2}
"""
    pool = load_pool(text)
    assert pool.type("g5").resources().gpus == 4
    with pytest.raises(SpecError, match=r"instanceTypes\[0\]\.colour: unknown field"):
        load_pool(text.replace("maxCount: 2", "maxCount: 2, colour: red"))
    with pytest.raises(SpecError, match="memory"):
        load_pool(text.replace("192Gi", "lots"))
    with pytest.raises(SpecError, match="duplicate"):
        load_pool(text + "  - {name: g5, cpu: 1, memory: 1Gi, pricePerHour: 1, maxCount: 1}\n")


def test_simulated_provider_nodes_appear_after_the_delay() -> None:
    prov = SimulatedProvider([GPU4.model_copy(update={"max_count": 2})], delay=90.0, now=100.0)
    names = prov.create("gpu4", 2)
    assert len(names) == 2 and prov.list() == [] and prov.pending() == names
    prov.advance(189.0)
    assert prov.list() == []
    prov.advance(190.0)
    nodes = prov.list()
    assert [n.name for n in nodes] == names
    assert nodes[0].labels[GPU_MODEL_LABEL] == "A10G" and nodes[0].allocatable_vector().gpus == 4
    with pytest.raises(ValueError, match="maxCount"):
        prov.create("gpu4", 1)
    prov.delete(names[0])
    assert prov.counts() == {"gpu4": 1}
    with pytest.raises(KeyError):
        prov.delete(names[0])
    with pytest.raises(ValueError, match="backwards"):
        prov.advance(10.0)


def test_large_plans_place_every_replica_within_node_capacity() -> None:
    rng = np.random.default_rng(7)
    pools = [SMALL.model_copy(update={"max_count": 100}), BIG.model_copy(update={"max_count": 100}),
             GPU4.model_copy(update={"max_count": 100}), GPU8.model_copy(update={"max_count": 100})]
    groups = []
    for i in range(40):
        g = int(rng.choice([0, 0, 1, 2, 4]))
        b = make_job(f"j{i}").cpu(int(rng.choice([1000, 4000]))).mem(int(rng.choice([2, 12, 24])))
        groups.append(b.gpus(g).replicas(int(rng.integers(1, 5))).build() if g else
                      b.replicas(int(rng.integers(1, 5))).build())
    assert sum(g.replicas for g in groups) > 64  # past the exact search: greedy + local search
    p = plan(groups, pools, {})
    assert not p.unfit and not p.deferred
    by_type = {t.name: t for t in pools}
    assert p.cost_per_hour == pytest.approx(sum(by_type[n].price_per_hour * c for n, c in p.nodes))
    used: dict[str, list[int]] = {}
    for g in groups:
        assert len(p.placements[g.key]) == g.replicas
        for node in p.placements[g.key]:
            u = used.setdefault(node, [0, 0, 0])
            u[0] += g.request.cpu_milli
            u[1] += g.request.memory
            u[2] += g.request.gpus
    for node, (cpu, mem, gpus) in used.items():
        cap = by_type[node.split("#")[0]].resources()
        assert cpu <= cap.cpu_milli and mem <= cap.memory and gpus <= cap.gpus
    planned = {n: c for n, c in p.nodes}
    for name, count in planned.items():
        assert len({n for n in used if n.split("#")[0] == name}) == count  # no node planned idle


def test_plan_provide_place_idle_and_remove_round_trip() -> None:
    """The pieces compose as the controller uses them: plan -> create -> (delay) -> the scheduler
    places every gang on the new nodes -> the gangs finish -> the empty nodes go after the TTL."""
    from jobsched.core import Scheduler, Snapshot
    from jobsched.core.cycle import Admit
    from jobsched.rightsizing.consolidator import consolidate
    from jobsched.rightsizing.cost import CostAccumulator

    pool = [SMALL, BIG, GPU4.model_copy(update={"max_count": 4})]
    gangs = [make_job("train").cpu(8000).mem(60).gpus(4).replicas(2).build(),
             make_job("etl").cpu(4000).mem(20).replicas(3).build()]
    prov = SimulatedProvider(pool, delay=60.0, now=0.0)
    p = plan(gangs, pool, prov.counts())
    for name, count in p.nodes:
        prov.create(name, count)
    assert prov.list() == []
    prov.advance(60.0)
    table = NodeTable.from_nodes(prov.list())
    admitted = Scheduler("bestfit").cycle(Snapshot.build(table), gangs, now=60.0).of(Admit)
    assert sorted(a.key for a in admitted) == ["etl", "train"]
    acc = CostAccumulator()
    caps = {n.name: (n.allocatable_vector(), n.price_per_hour) for n in prov.list()}
    acc.observe(60.0, caps, [(a.key, x.node, a.request) for a in admitted for x in a.assignments])
    acc.observe(3660.0, caps, [])  # both finished after an hour
    assert acc.total() == pytest.approx(p.cost_per_hour)
    assert acc.job("train") > acc.job("etl") > 0
    later = consolidate(table, [], {n: 3660.0 for n in table.names}, now=3660.0 + 301.0, ttl=300.0)
    for node in later.delete:
        prov.delete(node)
    assert prov.list() == [] and later.savings_per_hour == pytest.approx(p.cost_per_hour)
