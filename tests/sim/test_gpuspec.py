"""GPU-model constraints: the gpuspec variant generator, and a constrained trace on which the jobsched
policy places the pinned pods that the baselines strand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jobsched.core.fragmentation import TargetWorkload
from jobsched.core.gang import PodGroup, place_gang
from jobsched.core.nodes import NodeTable
from jobsched.core.policies import make_policy
from jobsched.sim.packing import configure
from jobsched.sim.trace import MIB, PodTrace, load_pods
from jobsched.sim.variants import gpuspec_variant, main, write_pods_csv
from jobsched.spec.resources import Resources

GI = 1 << 30


def cluster() -> NodeTable:
    """Four T4 nodes with one GPU, two G2 nodes with eight."""
    return NodeTable.from_arrays([f"n{i}" for i in range(6)], [16_000] * 4 + [96_000] * 2, [256 * GI] * 6,
                                 [1, 1, 1, 1, 8, 8], ["T4"] * 4 + ["G2"] * 2)


def pods(n1: int = 100, n8: int = 10, ncpu: int = 20) -> PodTrace:
    n = n1 + n8 + ncpu
    gpus = np.array([1] * n1 + [8] * n8 + [0] * ncpu, dtype=np.int64)
    return PodTrace([f"p{i}" for i in range(n)], np.full(n, 4000, dtype=np.int64), np.full(n, GI, dtype=np.int64),
                    gpus, np.where(gpus > 0, 1000, 0).astype(np.int64), [()] * n, np.zeros(n),
                    np.full(n, np.inf), np.ones(n, dtype=np.int64), ["Pack"] * n)


def test_variant_restricts_the_fraction_to_models_that_can_host_each_pod() -> None:
    t, p = cluster(), pods()
    v = gpuspec_variant(p, t, 0.33, seed=5)
    pinned = [i for i in range(len(v)) if v.models[i]]
    assert len(pinned) == round(0.33 * 110)
    assert all(v.gpus[i] > 0 for i in pinned)  # CPU-only pods are never pinned
    assert all(v.models[i] == ("G2",) for i in pinned if v.gpus[i] == 8)  # no T4 node holds 8 GPUs
    assert {m for i in pinned for m in v.models[i]} == {"T4", "G2"}
    assert gpuspec_variant(p, t, 0.33, seed=5).models == v.models  # deterministic per seed
    assert p.models == [()] * len(p)  # the input is left alone
    # By nodes (default) T4 has 4 of 6 nodes: most single-model 1-GPU pins name it; by GPUs (4 of 20) few do.
    t4 = sum(v.models[i] == ("T4",) for i in pinned)
    by_gpu = gpuspec_variant(p, t, 0.33, seed=5, by="gpus")
    assert t4 > sum(by_gpu.models[i] == ("T4",) for i in range(len(p)))


def test_variant_rejects_a_bad_fraction_and_the_cli_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="fraction must be in"):
        gpuspec_variant(pods(), cluster(), 1.5)
    nodes_csv = tmp_path / "nodes.csv"
    nodes_csv.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,16000,65536,1,T4\nn1,96000,262144,8,G2\n")
    pods_csv = tmp_path / "pods.csv"
    write_pods_csv(pods(4, 1, 1), pods_csv)
    assert main(["--nodes", str(nodes_csv), "--pods", str(pods_csv), "--fraction", "2", "-o", "x.csv"]) == 2
    assert "fraction must be in [0, 1]" in capsys.readouterr().err
    out = tmp_path / "v.csv"
    assert main(["--nodes", str(nodes_csv), "--pods", str(pods_csv), "--fraction", "1", "-o", str(out)]) == 0
    back = load_pods(out)
    assert all(back.models[i] for i in range(5)) and back.models[5] == ()
    assert back.mem[0] == GI and back.mem[0] % MIB == 0


def constrained_cluster() -> NodeTable:
    """Two T4 nodes, each with one of two GPUs and half its CPU taken; two idle V100 nodes."""
    t = NodeTable.from_arrays(["t0", "t1", "v0", "v1"], [32_000] * 4, [256 * GI] * 4, [2] * 4,
                              ["T4", "T4", "V100", "V100"])
    return t


def place_sequence(policy: str) -> dict[str, int]:
    """Two flexible pods, then two pods that accept only T4: how many of each are placed."""
    t = constrained_cluster()
    scorer, chooser = make_policy(policy, 0)
    taken = Resources(16_000, GI, 1, 1000)
    observe = getattr(scorer, "observe", None)
    for row in (0, 1):
        t.allocate(row, taken, (0,))
        if observe is not None:
            observe(row, taken)
    req = Resources(16_000, GI, 1, 1000)
    wl = TargetWorkload.from_shapes({(16_000, 1, 1000, ()): 0.5, (16_000, 1, 1000, ("T4",)): 0.5})
    configure(scorer, chooser, wl)
    placed = {"flexible": 0, "T4-only": 0}
    for kind, models in (("flexible", ()), ("flexible", ()), ("T4-only", ("T4",)), ("T4-only", ("T4",))):
        got = place_gang(t, PodGroup(kind, req, gpu_models=models), scorer, chooser)
        if got is not None:
            placed[kind] += 1
            if observe is not None:
                observe(got[0].row, req)
    return placed


@pytest.mark.parametrize(("policy", "pinned_placed"), [
    ("jobsched", 2), ("fgd", 2),  # flexible pods go to the V100s, the T4s stay for the pinned pods
    ("bestfit", 0), ("packing", 0), ("dotprod", 0), ("clustering", 0),  # they fill the T4s first
])
def test_constrained_trace_table(policy: str, pinned_placed: int) -> None:
    got = place_sequence(policy)
    assert got["flexible"] == 2
    assert got["T4-only"] == pinned_placed


def test_simulate_gpuspec_flag_runs_on_the_variant_and_rejects_a_bad_fraction() -> None:
    from typer.testing import CliRunner

    from tests.sim.test_cli import NODES, PODS, app

    r = CliRunner().invoke(app(), ["simulate", "--nodes", NODES, "--pods", PODS, "--policy", "jobsched",
                                   "--seeds", "1", "--gpuspec", "0.5", "-o", "json"])
    assert r.exit_code == 0, r.output
    assert "_gpuspec.csv" in r.stdout
    r = CliRunner().invoke(app(), ["simulate", "--nodes", NODES, "--pods", PODS, "--gpuspec", "1.5"])
    assert r.exit_code == 2 and "--gpuspec" in r.output and "must be a number in [0, 1]" in r.output
