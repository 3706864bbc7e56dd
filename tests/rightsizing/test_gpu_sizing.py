"""Admission sizing of an Auto GPU job (jobsched.server.estimation): the container's memory comes
from the estimator's host figure, and the device figure is stored for the GPU-memory request as
``sizing["device_estimate"]`` (bytes per replica per GPU). The estimate runs in a real child
process, on CPU, with CUDA accounting."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from jobsched.server.estimation import Estimator
from jobsched.spec import TrainingJob
from jobsched.spec.status import JobPhase
from jobsched.store import JobRow, Store

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
HOST, CONTEXT = 1400 * MiB, 300 * MiB


class Controller:
    """What the estimator asks of the controller: the largest node, and a wake-up."""

    def max_node_memory(self) -> int:
        return 64 << 30

    def wake(self) -> None:
        pass


@pytest.mark.torch
def test_auto_gpu_job_gets_host_memory_from_the_host_figure_and_a_device_estimate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("JOBSCHED_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("JOBSCHED_CUDA_HOST_BASELINE_BYTES", str(HOST))
    monkeypatch.setenv("JOBSCHED_CUDA_BASELINE_BYTES", str(CONTEXT))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    argv = ["python", "-m", "workers.train", "--kernel", "transformer", "--device", "cuda", "--fast", "--steps", "60"]
    job = TrainingJob.model_validate({"metadata": {"name": "auto-gpu"}, "spec": {
        "memoryPolicy": "Auto",
        "template": {"command": argv, "resources": {"requests": {"nvidia.com/gpu": 1, "memory": "512Mi"}}}}})
    store = Store(tmp_path / "state.db")
    row = JobRow(uid=str(uuid.uuid4()), namespace="default", name=job.name, manifest=job.to_manifest(),
                 queue=job.spec.queue, priority=0, phase=JobPhase.PENDING.value, reason="EstimatingMemory",
                 message=None, created_at=0.0, admitted_at=None, finished_at=None, family=job.family(),
                 memory=512 * MiB, sizing={}, sizing_ready=False, retries_used=0, cancel_requested=False, cost=0.0)
    store.insert_job(row)
    Estimator(store, Controller(), clock=lambda: 1.0, timeout=240).size(row)  # type: ignore[arg-type]
    sized = store.job_by_uid(row.uid)
    assert sized is not None and sized.sizing_ready, sized
    host, device = sized.sizing["estimated_memory"], sized.sizing["device_estimate"]
    assert host >= HOST and sized.memory >= host  # the container fits a CUDA process's host side
    assert CONTEXT < device < host  # this small model's device peak is its own figure, not the host's
