"""The simulator says how far it got on stderr (policy, seed, pods placed, ETA) while stdout keeps
the report alone, with worker processes too; ``--nodes-scale`` replicates the cluster."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from jobsched.cli.sim_progress import SimProgress
from jobsched.sim.suite import Tick, packing_report

DATA = Path(__file__).parent / "data"
NODES, PODS = str(DATA / "nodes.csv"), str(DATA / "pods.csv")
ROOT = Path(__file__).resolve().parents[2]


def test_cli_prints_one_line_per_run_on_stderr_and_only_the_report_on_stdout() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "jobsched.cli.main", "simulate", "--nodes", NODES, "--pods", PODS,
                           "--policy", "fgd", "--policy", "jobsched", "--seeds", "2", "--jobs", "2", "-o", "json"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # nothing but the report on stdout
    lines = [ln for ln in proc.stderr.splitlines() if " seed " in ln]
    for policy in ("fgd", "jobsched"):
        for seed in (42, 43):
            line = next(ln for ln in lines if ln.startswith(f"packing: {policy} seed {seed}:"))
            placed = report["policies"][policy]
            assert "pods placed of" in line and "ETA" in line, line
            assert placed["placed"] > 0
    assert lines[-1].endswith("(4/4 runs, ETA 0m00s)")
    assert report["runtime"]["jobs"] == 2 and report["runtime"]["max_rss_mib_worker"] > 0


def test_ticks_come_from_every_run_with_worker_processes() -> None:
    ticks: list[Tick] = []
    rep = packing_report(NODES, PODS, ["bestfit", "jobsched"], [42, 43], jobs=2, ticks=ticks.append)
    done = {(t.policy, t.seed): t for t in ticks if t.done}
    assert set(done) == {("bestfit", 42), ("bestfit", 43), ("jobsched", 42), ("jobsched", 43)}
    for policy in ("bestfit", "jobsched"):
        mean_placed = sum(done[(policy, s)].placed for s in (42, 43)) / 2
        assert rep["policies"][policy]["placed"] == mean_placed  # type: ignore[index]
    assert all(0 <= t.step <= t.total for t in ticks)


def test_rich_display_on_a_terminal_shows_policy_seed_pods_placed_and_eta() -> None:
    out = io.StringIO()
    with SimProgress(Console(file=out, force_terminal=True, width=120)) as p:
        p.expect(2)
        p(Tick("fgd", 42, 1000, 4000, 990))
        bar = p._bar
        overall, line = bar.tasks
        assert overall.total == 2 and overall.completed == 0.25
        assert line.description.strip() == "fgd seed 42" and line.fields["placed"] == "990 pods placed"
        p(Tick("fgd", 42, 4000, 4000, 3900, done=True, seconds=1.0))
        assert [t.description for t in bar.tasks] == ["packing: 2 runs"]  # the finished run's line is gone
        assert bar.tasks[0].completed == 1.0 and bar.tasks[0].fields["placed"] == "1/2 runs"
        bar.refresh()
    assert "ETA" in out.getvalue()


def test_nodes_scale_replicates_the_cluster_and_the_pods() -> None:
    one = packing_report(NODES, PODS, ["bestfit"], [42])
    three = packing_report(NODES, PODS, ["bestfit"], [42], nodes_scale=3)
    assert three["cluster"] == {k: 3 * v for k, v in one["cluster"].items()}  # type: ignore[union-attr]
    assert three["pod_count"] == 3 * one["pod_count"]  # type: ignore[operator]
    assert three["nodes_scale"] == 3


def test_nodes_scale_is_checked() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "jobsched.cli.main", "simulate", "--nodes", NODES, "--pods", PODS,
                           "--nodes-scale", "0"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 2 and "--nodes-scale" in proc.stderr and "Traceback" not in proc.stderr
