"""Taints/tolerations and node affinity in placement (core/constraints.py), on hand-built NodeTables:
a GPU node tainted like real clusters takes only jobs that tolerate the taint, required node
affinity narrows the nodes, and a job no node could ever accept is rejected with the reason."""

from __future__ import annotations

import pytest

from jobsched.core import Admit, Reject, Scheduler, Snapshot, Wait
from jobsched.core.constraints import NodeConstraintsFilter, from_template, tolerates
from jobsched.core.gang import PodGroup
from jobsched.core.nodes import NodeTable
from jobsched.core.snapshot import NodeShape
from jobsched.spec.resources import Resources

GiB = 2**30
GPU_TAINT = ("nvidia.com/gpu", "present", "NoSchedule")


def table(taints=None, labels=None) -> NodeTable:
    names = ["cpu-0", "cpu-1", "gpu-0", "gpu-1"]
    return NodeTable.from_arrays(
        names, [8000] * 4, [32 * GiB] * 4, [0, 0, 8, 8], ["", "", "H100", "H100"],
        labels or [{"zone": "a", "rank": "1"}, {"zone": "b", "rank": "5"},
                   {"zone": "a", "rank": "10", "gpu": "true"}, {"zone": "b", "gpu": "true"}],
        taints=taints if taints is not None else [(), (), (GPU_TAINT,), (GPU_TAINT,)])


def group(key="j", gpus=0, replicas=1, tolerations=(), affinity=None) -> PodGroup:
    return PodGroup(key, Resources(1000, GiB, gpus, 1000 if gpus else 0), replicas,
                    constraints=from_template(list(tolerations), affinity))


def allowed(t: NodeTable, g: PodGroup) -> set[str]:
    mask = NodeConstraintsFilter().filter(t, g.request, g)
    return {t.names[i] for i in mask.nonzero()[0]}


def decide(snap: Snapshot, *groups: PodGroup):
    return {d.key: d for d in Scheduler().cycle(snap, list(groups), now=1.0).decisions}


def required(*exprs, fields=()) -> dict:
    term = {"matchExpressions": list(exprs)}
    if fields:
        term["matchFields"] = list(fields)
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


@pytest.mark.parametrize(("toleration", "ok"), [
    ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),
    ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
    ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}, True),
    ({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}, True),
    ({"operator": "Exists"}, True),  # the empty key with Exists tolerates everything
    ({"key": "nvidia.com/gpu", "value": "absent"}, False),
    ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
    ({"key": "other", "operator": "Exists"}, False),
])
def test_toleration_matching_follows_kubernetes(toleration, ok):
    c = from_template([toleration], None)
    assert tolerates(c.tolerations, GPU_TAINT) is ok


def test_tainted_gpu_nodes_take_only_jobs_that_tolerate_the_taint():
    t = table()
    assert allowed(t, group()) == {"cpu-0", "cpu-1"}
    tol = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert allowed(t, group(tolerations=tol)) == {"cpu-0", "cpu-1", "gpu-0", "gpu-1"}
    d = decide(Snapshot.build(t), group("gpu", gpus=8, tolerations=tol))
    assert isinstance(d["gpu"], Admit) and d["gpu"].assignments[0].node.startswith("gpu-")


def test_a_gpu_job_that_tolerates_no_taint_is_rejected_with_the_taint_named():
    d = decide(Snapshot.build(table()), group("gpu", gpus=1))
    assert isinstance(d["gpu"], Reject)
    assert "2 had untolerated taint {nvidia.com/gpu=present:NoSchedule}" in d["gpu"].reason
    assert "2 insufficient nvidia.com/gpu" in d["gpu"].reason


def test_an_untainted_node_the_provisioner_could_add_keeps_the_job_waiting():
    shape = NodeShape("gpu-pool", Resources(8000, 32 * GiB, 8), 2, gpu_model="H100")
    d = decide(Snapshot.build(table(), provisionable=[shape]), group("gpu", gpus=1))
    assert isinstance(d["gpu"], Wait) and d["gpu"].for_capacity


@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_noschedule_and_noexecute_filter_but_prefernoschedule_does_not(effect):
    t = table(taints=[(), (), (("dedicated", "ml", effect),), (("dedicated", "ml", "PreferNoSchedule"),)])
    assert allowed(t, group()) == {"cpu-0", "cpu-1", "gpu-1"}
    tol = [{"key": "dedicated", "value": "ml", "effect": effect}]
    assert allowed(t, group(tolerations=tol)) == {"cpu-0", "cpu-1", "gpu-0", "gpu-1"}


def test_every_taint_of_a_node_must_be_tolerated():
    t = table(taints=[(), (), (GPU_TAINT, ("team", "x", "NoSchedule")), (GPU_TAINT,)])
    tol = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert allowed(t, group(tolerations=tol)) == {"cpu-0", "cpu-1", "gpu-1"}


@pytest.mark.parametrize(("expr", "nodes"), [
    ({"key": "zone", "operator": "In", "values": ["a"]}, {"cpu-0", "gpu-0"}),
    ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {"cpu-1", "gpu-1"}),
    ({"key": "gpu", "operator": "Exists"}, {"gpu-0", "gpu-1"}),
    ({"key": "gpu", "operator": "DoesNotExist"}, {"cpu-0", "cpu-1"}),
    ({"key": "rank", "operator": "Gt", "values": ["4"]}, {"cpu-1", "gpu-0"}),
    ({"key": "rank", "operator": "Lt", "values": ["5"]}, {"cpu-0"}),  # a node without the label: no match
])
def test_required_node_affinity_operators(expr, nodes):
    t = table(taints=[])
    assert allowed(t, group(affinity=required(expr))) == nodes


def test_affinity_terms_are_ored_expressions_anded_and_match_fields_name_nodes():
    t = table(taints=[])
    both = required({"key": "zone", "operator": "In", "values": ["a"]}, {"key": "gpu", "operator": "Exists"})
    assert allowed(t, group(affinity=both)) == {"gpu-0"}
    two_terms = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["cpu-0"]}]}]}}}
    assert allowed(t, group(affinity=two_terms)) == {"cpu-0", "cpu-1", "gpu-1"}
    not_named = required(fields=[{"key": "metadata.name", "operator": "NotIn", "values": ["gpu-1", "cpu-1"]}])
    assert allowed(t, group(affinity=not_named)) == {"cpu-0", "gpu-0"}
    empty = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}
    assert allowed(t, group(affinity=empty)) == set()  # an empty term matches no node


def test_a_gang_is_placed_only_on_nodes_its_affinity_and_tolerations_allow():
    tol = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    aff = required({"key": "zone", "operator": "In", "values": ["b"]})
    d = decide(Snapshot.build(table()), group("g", gpus=4, replicas=2, tolerations=tol, affinity=aff))
    assert isinstance(d["g"], Admit)
    assert {a.node for a in d["g"].assignments} == {"gpu-1"}


def test_affinity_no_node_matches_is_rejected_with_the_reason():
    aff = required({"key": "zone", "operator": "In", "values": ["mars"]})
    d = decide(Snapshot.build(table()), group("j", affinity=aff))
    assert isinstance(d["j"], Reject)
    assert "4 didn't match the job's node affinity" in d["j"].reason


def test_masks_are_computed_once_per_node_set_and_untainted_clusters_skip_the_filter():
    t = table()
    tol = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    g1, g2 = group("a", tolerations=tol), group("b", tolerations=tol)
    m1 = NodeConstraintsFilter().filter(t, g1.request, g1)
    m2 = NodeConstraintsFilter().filter(t.copy(), g2.request, g2)
    assert m1 is m2  # shared by the table's working copies
    plain = table(taints=[])
    from jobsched.core.constraints import constraints_mask

    assert constraints_mask(plain, group().constraints) is None


def test_preferred_node_affinity_picks_among_the_nodes_that_fit():
    t = table(taints=[])
    prefer_b = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
        {"weight": 90, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}}]}}
    d = decide(Snapshot.build(t), group("p", affinity=prefer_b))
    assert d["p"].assignments[0].node in ("cpu-1", "gpu-1")  # zone b
    assert allowed(t, group(affinity=prefer_b)) == set(t.names)  # a preference never filters


def test_prefernoschedule_taints_are_avoided_while_other_nodes_fit_then_used():
    soft = ("spot", "true", "PreferNoSchedule")
    t = NodeTable.from_arrays(["spot-0", "spot-1", "steady"], [8000] * 3, [32 * GiB] * 3, [0, 0, 0],
                              taints=[(soft,), (soft,), ()])
    snap = Snapshot.build(t)
    d = decide(snap, group("a"))
    assert d["a"].assignments[0].node == "steady"
    d = decide(snap, group("gang", replicas=3))  # the preferred node first, then Pack keeps it together
    assert {a.node for a in d["gang"].assignments} == {"steady"}
    full = Snapshot.build(t)
    full.table.allocate(2, Resources(8000, 32 * GiB), ())
    d = decide(full, group("b"))
    assert d["b"].assignments[0].node.startswith("spot-")  # no other node fits: the taint does not filter
    tolerant = group("c", tolerations=[{"key": "spot", "operator": "Exists"}])
    assert decide(snap, tolerant)["c"].assignments[0].node  # tolerating it, any node will do
