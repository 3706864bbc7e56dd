"""Benchmark (not a test): what the workflow engine adds on top of running the same steps as plain
jobsched jobs, on the local backend; and the cost of one reconcile pass over a large workflow.

    python tests/workflows/bench_workflows.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from jobsched.server.runtime import Runtime  # noqa: E402
from jobsched.spec.api import AttemptInfo, JobStatus  # noqa: E402
from jobsched.spec.status import JobPhase  # noqa: E402
from jobsched.workflows.controller import WorkflowController  # noqa: E402


def job(name: str) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"maxRetries": 0, "template": {"command": ["true"]}}}


def wait_jobs(rt: Runtime, names: list[str]) -> None:
    while not all(rt.service.get("default", n).phase.is_terminal() for n in names):
        time.sleep(0.02)


def workflow(name: str, n: int, chain: bool) -> dict[str, Any]:
    tasks = [{"name": f"t{i}", "template": "ok", **({"dependencies": [f"t{i - 1}"]} if chain and i else {})}
             for i in range(n)]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "dag": {"tasks": tasks}},
                {"name": "ok", "container": {"image": "x", "command": ["true"]}}]}}


def end_to_end(n_fan: int, n_chain: int) -> None:
    rt = Runtime(Path(tempfile.mkdtemp()) / "home")
    rt.start()
    ctl = WorkflowController.for_runtime(rt)
    ctl.start()
    try:
        t = time.perf_counter()
        names = [f"direct-{i}" for i in range(n_fan)]
        for name in names:
            rt.service.submit(job(name))
        wait_jobs(rt, names)
        direct_fan = time.perf_counter() - t
        t = time.perf_counter()
        ctl.submit(workflow("fan", n_fan, chain=False))
        assert ctl.wait("default", "fan", 300).phase == "Succeeded"
        wf_fan = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(n_chain):
            rt.service.submit(job(f"seq-{i}"))
            wait_jobs(rt, [f"seq-{i}"])
        direct_chain = time.perf_counter() - t
        t = time.perf_counter()
        ctl.submit(workflow("chain", n_chain, chain=True))
        assert ctl.wait("default", "chain", 300).phase == "Succeeded"
        wf_chain = time.perf_counter() - t
    finally:
        ctl.stop()
        rt.stop()
    print(f"{n_fan} parallel steps : direct jobs {direct_fan:6.2f} s   workflow {wf_fan:6.2f} s   "
          f"ratio {wf_fan / direct_fan:4.2f}")
    print(f"{n_chain} chained steps  : direct jobs {direct_chain:6.2f} s   workflow {wf_chain:6.2f} s   "
          f"ratio {wf_chain / direct_chain:4.2f}   (+{(wf_chain - direct_chain) / n_chain * 1000:.0f} ms/step)")


class InstantRunner:
    """A stand-in runner that runs nothing: every job has succeeded at once. Measures the engine alone."""

    def submit(self, manifest: dict[str, Any]) -> str:
        return str(manifest["metadata"]["name"])

    def status(self, namespace: str, name: str) -> JobStatus:
        return JobStatus(name=name, phase=JobPhase.SUCCEEDED,
                         attempts=[AttemptInfo(index=0, exit_code=0, reason="Completed", started_at=1.0,
                                               finished_at=2.0)])

    def logs(self, namespace: str, name: str, attempt: int | None = None) -> str:
        return "ok\n"

    def cancel(self, namespace: str, name: str) -> None:
        pass


def engine_pass(n: int) -> None:
    d = Path(tempfile.mkdtemp())
    ctl = WorkflowController(InstantRunner(), d / "state.db", d / "work")
    ctl.submit(workflow("big", n, chain=False))
    passes = 0
    t = time.perf_counter()
    while ctl.get("default", "big").phase not in ("Succeeded", "Failed", "Error"):
        ctl.reconcile()
        passes += 1
    total = time.perf_counter() - t
    ctl.stop()
    print(f"engine alone, {n}-task DAG: {passes} passes, {total:.2f} s, {total / passes * 1000:.0f} ms/pass")


if __name__ == "__main__":
    end_to_end(n_fan=20, n_chain=8)
    engine_pass(200)
