"""Replay mode drives the real Scheduler over a simulated clock: arrivals, departures and gangs."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobsched.core.nodes import NodeTable
from jobsched.sim.replay import run_replay
from jobsched.sim.trace import load_nodes, load_pods

DATA = Path(__file__).parent / "data"
HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time,deletion_time,scheduled_time,replicas\n"


def cluster() -> NodeTable:
    return NodeTable.from_arrays(["a", "b"], [32000, 32000], [1 << 37, 1 << 37], [4, 4], ["V100", "V100"])


def test_gang_waits_for_room_and_small_jobs_backfill(tmp_path: Path) -> None:
    pods = tmp_path / "p.csv"
    pods.write_text(HEADER + "\n".join([
        "one,4000,1024,1,1000,0,100,0,1",      # holds one GPU until t=100
        "gang,4000,1024,4,1000,10,60,10,2",    # 2 x 4 GPUs: needs both nodes empty; runs 50 s
        "share,1000,1024,1,500,20,30,20,1",    # half a GPU for 10 s: backfills at once
        "huge,4000,1024,4,1000,25,35,25,3",    # 3 x 4 GPUs: never fits this cluster
    ]) + "\n")
    out = run_replay(cluster(), load_pods(pods), "jobsched")
    assert out["admitted"] == 3 and out["rejected"] == 1 and out["pending_at_end"] == 0
    assert "can never fit" in next(iter(out["rejections"].values()))
    delay, jct = out["queueing_delay_s"], out["jct_s"]
    assert delay["count"] == 3 and delay["max"] == 90.0  # the gang starts when 'one' leaves at t=100
    assert jct["count"] == 3 and jct["max"] == 140.0  # created at 10, starts at 100, runs 50 s
    assert jct["mean"] == pytest.approx((100 + 140 + 10) / 3, abs=0.01)
    series = out["series"]
    assert max(series["gpu_alloc_pct"]) == 100.0  # the gang used all 8 GPUs
    assert series["gpu_alloc_pct"][-1] == 0.0 and series["running"][-1] == 0
    # 1 GPU of 8 for 0-20 s and 30-100 s, 1.5 for 20-30 s, all 8 for 100-150 s: time-weighted mean.
    assert out["gpu_alloc_pct_mean"] == pytest.approx((20 * 12.5 + 10 * 18.75 + 70 * 12.5 + 50 * 100) / 150, abs=0.01)
    assert out["cost_usd"] > 0


def test_every_pod_is_accounted_for_on_the_sample_trace() -> None:
    nodes, pods = load_nodes(DATA / "nodes.csv"), load_pods(DATA / "pods.csv")
    for policy in ("jobsched", "fgd", "bestfit", "clustering"):
        out = run_replay(nodes, pods, policy, cycle_interval=5.0)
        total = out["admitted"] + out["rejected"] + out["pending_at_end"] + out["never_arrived"]
        assert total == len(pods), policy
        assert out["running_at_end"] == 0


def test_training_job_manifests_replay(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.yaml"
    doc = """apiVersion: jobsched.io/v1alpha1
kind: TrainingJob
metadata:
  name: {name}
  annotations: {{jobsched.io/sim-arrival: "{t}", jobsched.io/sim-duration: "{d}"}}
spec:
  replicas: {r}
  template:
    command: [python, train.py]
    resources: {{requests: {{cpu: "2", memory: 1Gi, nvidia.com/gpu: {g}}}}}
"""
    jobs.write_text(doc.format(name="first", t=0, d=50, r=2, g=4) + "---\n"
                    + doc.format(name="second", t=5, d=10, r=1, g=2))
    pods = load_pods(jobs)
    assert list(pods.replicas) == [2, 1] and pods.names[0] == "default/first"
    out = run_replay(cluster(), pods, "jobsched")
    assert out["admitted"] == 2
    assert out["queueing_delay_s"]["max"] == 45.0  # 'second' waits for the 8-GPU gang to finish at t=50
