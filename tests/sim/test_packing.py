"""Packing mode: accounting on hand-made traces, exact GPU-share arithmetic, determinism per seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jobsched.core.nodes import NodeTable
from jobsched.sim.packing import arrival_order, run_packing, summarize
from jobsched.sim.trace import MIB, TraceError, load_nodes, load_pods

DATA = Path(__file__).parent / "data"
POLICIES = ("random", "bestfit", "dotprod", "packing", "clustering", "fgd", "jobsched")


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_trace_loading_units_and_columns() -> None:
    nodes = load_nodes(DATA / "nodes.csv")
    assert nodes.names == ["n0", "n1", "n2", "n3"]
    assert list(nodes.gpu_count) == [4, 4, 2, 0]
    assert nodes.mem_cap[0] == 131072 * MIB
    assert nodes.models == ["T4", "V100"] and nodes.gpu_model[3] == -1
    pods = load_pods(DATA / "pods.csv")
    assert len(pods) == 8
    assert pods.request(1).gpu_milli == 500 and pods.request(4).gpus == 0 and pods.request(4).gpu_milli == 0
    assert pods.models[2] == ("V100",)
    assert pods.duration[0] == 100 and pods.created[3] == 30
    assert list(pods.gpu_milli_total()) == [1000, 500, 500, 2000, 0, 250, 4000, 750]


@pytest.mark.parametrize(("text", "match"), [
    ("name,cpu_milli,num_gpu\np,1,0\n", "lacks column.*memory_mib"),
    ("cpu_milli,memory_mib,num_gpu,gpu_milli\n1,1,x,0\n", "row 2: column 'num_gpu' is not a number"),
    ("cpu_milli,memory_mib,num_gpu,gpu_milli\n1,1,1,1500\n", "gpu_milli' must be at most 1000"),
    ("cpu_milli,memory_mib,num_gpu,gpu_milli\n1,1,2,500\n", "needs num_gpu 1"),
    ("cpu_milli,memory_mib,num_gpu,gpu_milli\n-1,1,0,0\n", "'cpu_milli' is negative"),
])
def test_bad_pod_lists_name_the_problem(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(TraceError, match=match):
        load_pods(write(tmp_path, "p.csv", text))


def test_missing_file_is_named() -> None:
    with pytest.raises(TraceError, match="nodes file 'nope.csv' does not exist"):
        load_nodes("nope.csv")


def test_arrivals_are_inflated_to_the_target_and_cut_there() -> None:
    req = np.array([1000, 500, 0, 250], dtype=np.int64)
    order = arrival_order(req, capacity_milli=10_000, seed=3, inflate=1.3)
    cum = np.cumsum(req[order])
    assert cum[-1] >= 13_000 and cum[-2] < 13_000  # stops at the first arrival reaching 130 %
    assert set(order[:4]) == {0, 1, 2, 3}  # the whole list once (shuffled) before any resampling
    with pytest.raises(ValueError, match="requests no GPUs"):
        arrival_order(np.zeros(3, dtype=np.int64), 1000, 0, 1.3)


@pytest.mark.parametrize("policy", POLICIES)
def test_accounting_no_overcommit_every_pod_accounted(policy: str) -> None:
    nodes, pods = load_nodes(DATA / "nodes.csv"), load_pods(DATA / "pods.csv")
    run = run_packing(nodes, pods, policy, seed=42, keep_table=True)
    t = run.table
    assert t is not None
    assert run.placed + run.dropped == len(run.arrived_pct)
    assert (t.cpu_free >= 0).all() and (t.mem_free >= 0).all()
    g = t.gpu_free[t.gpu_free != -1]
    assert ((g >= 0) & (g <= 1000)).all()
    assert np.all(np.diff(run.arrived_pct) >= 0) and np.all(np.diff(run.allocated_pct) >= 0)
    assert run.arrived_pct[-1] >= 130.0
    assert run.allocated_pct[-1] == pytest.approx(100.0 * t.gpu_used_milli() / t.gpu_total_milli())
    assert (run.allocated_pct <= run.arrived_pct + 1e-9).all()
    assert (nodes.gpu_free == np.where(nodes.gpu_free >= 0, 1000, -1)).all()  # input left untouched


def test_gpu_share_arithmetic_is_exact(tmp_path: Path) -> None:
    nodes = NodeTable.from_arrays(["n"], [8000], [1 << 34], [1], ["T4"])
    pods = load_pods(write(tmp_path, "p.csv", "cpu_milli,memory_mib,num_gpu,gpu_milli\n"
                                              "1000,1,1,500\n1000,1,1,300\n1000,1,1,200\n"))
    for policy in POLICIES:
        run = run_packing(nodes, pods, policy, seed=1, inflate=1.0, keep_table=True)
        assert run.placed == 3 and run.dropped == 0, policy  # 500 + 300 + 200 fill one GPU exactly
        assert run.allocated_pct[-1] == 100.0 and run.table is not None and run.table.gpu_free[0, 0] == 0


def test_a_seed_makes_a_run_deterministic() -> None:
    nodes, pods = load_nodes(DATA / "nodes.csv"), load_pods(DATA / "pods.csv")
    for policy in ("random", "fgd", "jobsched"):
        a = run_packing(nodes, pods, policy, seed=5)
        b = run_packing(nodes, pods, policy, seed=5)
        assert np.array_equal(a.allocated_pct, b.allocated_pct) and a.placed == b.placed
    orders = {tuple(arrival_order(pods.gpu_milli_total(), 14000, s, 1.3)) for s in range(5)}
    assert len(orders) > 1


def test_summary_reports_mean_and_spread_at_each_point() -> None:
    nodes, pods = load_nodes(DATA / "nodes.csv"), load_pods(DATA / "pods.csv")
    runs = [run_packing(nodes, pods, "bestfit", seed=s) for s in (42, 43, 44)]
    out = summarize(runs)
    pts = out["allocated_pct"]
    assert isinstance(pts, dict) and set(pts) == {"90", "100", "110", "120", "130"}
    assert pts["100"] == pytest.approx(round(float(np.mean([r.at(100) for r in runs])), 2))
    assert out["spread"]["100"] == pytest.approx(round(float(np.std([r.at(100) for r in runs])), 2))  # type: ignore[index]
