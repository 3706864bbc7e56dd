"""GPU-memory mode: whole GPUs vs memory-blind gpu_milli vs memory-aware shares sized from device peaks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jobsched.sim import gpumem
from jobsched.sim.gpumem import GiB, attach_peaks, end_times, gpumem_report, load_peaks, run_policy
from jobsched.sim.trace import load_nodes, load_pods
from tests.sim.test_cli import app

HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,creation_time,deletion_time,scheduled_time\n"


def write(tmp_path: Path, nodes: list[str], pods: list[str]) -> tuple[Path, Path]:
    n, p = tmp_path / "nodes.csv", tmp_path / "pods.csv"
    n.write_text("sn,cpu_milli,memory_mib,gpu,model\n" + "\n".join(nodes) + "\n")
    p.write_text(HEADER + "\n".join(pods) + "\n")
    return n, p


def crafted(tmp_path: Path) -> tuple[Path, Path]:
    """Two T4s (16 GiB); two sharers that ask for half a GPU each but peak at 10 GiB, overlapping in time."""
    return write(tmp_path, ["t4,32000,131072,2,T4"],
                 ["a,1000,2048,1,500,,0,100,0", "b,1000,2048,1,500,,10,60,10"])


def run(tmp_path: Path, policy: str, peak: int = 10 * GiB) -> dict[str, object]:
    n, p = crafted(tmp_path)
    pods = load_pods(p)
    peaks = np.array([peak, peak], dtype=np.int64)
    return run_policy(load_nodes(n), pods, end_times(pods, p), peaks, peaks, policy, seed=1)


def test_memory_blind_sharing_ooms_where_memory_aware_does_not(tmp_path: Path) -> None:
    blind = run(tmp_path, "milli-blind")
    aware = run(tmp_path, "memory-aware")
    whole = run(tmp_path, "whole-gpu")
    assert blind["cuda_ooms"] == 1  # 10 + 10 GiB on one 16 GiB T4: the second sharer dies
    assert aware["cuda_ooms"] == 0 and aware["own_cap_ooms"] == 0 and aware["placed"] == 2
    assert whole["cuda_ooms"] == 0
    # 11.5 GiB (10 GiB + 15 %) is 719 milli of a T4, so the two go to separate GPUs: 60 GPU-seconds +
    # 100 GPU-seconds, as with whole GPUs.
    assert aware["gpu_hours"] == whole["gpu_hours"] == round(150 / 3600, 1)


def test_small_peaks_share_a_gpu_under_caps(tmp_path: Path) -> None:
    aware = run(tmp_path, "memory-aware", peak=4 * GiB)  # 4.6 GiB: 288 milli each, one GPU holds both
    whole = run(tmp_path, "whole-gpu", peak=4 * GiB)
    assert aware["cuda_ooms"] == 0 and aware["sharers_per_shared_gpu"] > whole["sharers_per_shared_gpu"] == 1.0
    assert aware["jobs_per_gpu"] > whole["jobs_per_gpu"]


def test_a_sharer_above_its_predicted_peak_plus_margin_hits_its_own_cap(tmp_path: Path) -> None:
    n, p = crafted(tmp_path)
    pods = load_pods(p)
    predicted = np.array([4 * GiB, 4 * GiB], dtype=np.int64)
    true = np.array([4 * GiB, 6 * GiB], dtype=np.int64)  # 50 % above the estimate, past the 15 % margin
    out = run_policy(load_nodes(n), pods, end_times(pods, p), predicted, true, "memory-aware", seed=1)
    assert out["own_cap_ooms"] == 1 and out["cuda_ooms"] == 1  # its own OOM; the neighbour runs on


def test_peaks_attach_to_sharers_only_and_deterministically(tmp_path: Path) -> None:
    _, p = write(tmp_path, [], ["w,1000,1024,1,1000,,0,10,0", "s,1000,1024,1,300,,0,10,0",
                                "c,1000,1024,0,0,,0,10,0"])
    pods, peaks = load_pods(p), load_peaks()
    pred, true, names = attach_peaks(pods, 7, peaks, error=0.1)
    assert pred[0] == pred[2] == 0 and pred[1] > 0 and names[1] in {n for n, _ in peaks}
    assert abs(true[1] / pred[1] - 1) <= 0.1
    again = attach_peaks(pods, 7, peaks, error=0.1)
    assert (again[0] == pred).all() and (again[1] == true).all()


def synthetic(tmp_path: Path, n: int = 240) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    nodes = [f"g{k},96000,786432,8,{m}" for k, m in enumerate(["T4", "G2", "V100M32", "P100"])]
    pods = []
    for i in range(n):
        t = float(rng.uniform(0, 20000))
        share = rng.random() < 0.6
        gpus, milli = (1, int(rng.choice([230, 320, 470, 650, 810]))) if share else (int(rng.choice([0, 1, 2])), 1000)
        pods.append(f"p{i},2000,4096,{gpus},{milli if gpus else 0},,{t:.0f},{t + rng.uniform(60, 3000):.0f},{t:.0f}")
    return write(tmp_path, nodes, pods)


def test_report_on_a_small_trace_meets_the_goals(tmp_path: Path) -> None:
    n, p = synthetic(tmp_path)
    lines: list[str] = []
    rep = gpumem_report(n, p, [42, 43], progress=lines.append)
    pol = rep["policies"]
    assert set(pol) == set(gpumem.POLICIES)
    assert pol["memory-aware"]["cuda_ooms"] == 0
    assert pol["whole-gpu"]["jobs_per_gpu"] <= pol["memory-aware"]["jobs_per_gpu"]
    assert pol["memory-aware"]["gpu_hours"] <= pol["whole-gpu"]["gpu_hours"]
    assert all(r["unplaced"] == 0 for r in pol.values())
    assert sum("done in" in line for line in lines) == 6  # a progress line per policy and seed
    assert "memory-aware" in gpumem.format_table(rep)


def test_cli_gpumem_json_and_text(tmp_path: Path) -> None:
    n, p = synthetic(tmp_path, 60)
    r = CliRunner().invoke(app(), ["simulate", "--mode", "gpumem", "--nodes", str(n), "--pods", str(p),
                                   "--seeds", "1", "-o", "json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["mode"] == "gpumem" and rep["seeds"] == [42]
    assert "gpumem: memory-aware seed 42: done" in r.stderr
    r = CliRunner().invoke(app(), ["simulate", "--mode", "gpumem", "--nodes", str(n), "--pods", str(p),
                                   "--seeds", "1", "--policy", "bestfit"])
    assert r.exit_code == 0 and "CUDA OOMs" in r.stdout and "bestfit" in r.stdout


@pytest.mark.parametrize(("args", "option"), [
    (["--margin", "-1"], "--margin"), (["--peak-error", "1.5"], "--peak-error"),
    (["--policy", "fgd", "--policy", "bestfit"], "--policy"),
])
def test_cli_gpumem_bad_options_exit_2(tmp_path: Path, args: list[str], option: str) -> None:
    n, p = crafted(tmp_path)
    r = CliRunner().invoke(app(), ["simulate", "--mode", "gpumem", "--nodes", str(n), "--pods", str(p), *args])
    assert r.exit_code == 2 and option in r.output


def test_cli_gpumem_needs_times(tmp_path: Path) -> None:
    n, _ = crafted(tmp_path)
    p = tmp_path / "untimed.csv"
    p.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\na,1000,1024,1,500\n")
    r = CliRunner().invoke(app(), ["simulate", "--mode", "gpumem", "--nodes", str(n), "--pods", str(p)])
    assert r.exit_code == 2 and "--pods" in r.output and "deletion_time" in r.output
