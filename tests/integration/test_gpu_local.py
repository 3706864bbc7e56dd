"""GPU jobs on the local backend with virtual GPU nodes (no GPU needed): device isolation in the
environment, memory-sized shares, CUDA OOM resized on the device dimension, GPU-memory rejection.

FAKE_CUDA is a fake training program (named so: there is no GPU here) that behaves like a CUDA job
needing NEED bytes of device memory: below its ``JOBSCHED_GPU_MEMORY_LIMIT`` it prints torch's CUDA
OOM message and the workers runtime's device-peak line, and exits 1."""

from __future__ import annotations

import pytest

from tests.integration.helpers import PY, manifest, wait_for

pytestmark = pytest.mark.slow
GiB = 2**30

FAKE_CUDA = r"""
import os, sys
need = int(sys.argv[1])
limit = int(os.environ.get("JOBSCHED_GPU_MEMORY_LIMIT") or 0)
print("CVD=%r NVD=%r limit=%d" % (os.environ.get("CUDA_VISIBLE_DEVICES"),
      os.environ.get("NVIDIA_VISIBLE_DEVICES"), limit), flush=True)
if limit < need:
    print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB. GPU 0 has a total "
          "capacity of 79.19 GiB of which 0 bytes is free.", file=sys.stderr)
    print("jobsched: CUDA out of memory: device_peak_bytes=%d" % (need - (3 << 29)), file=sys.stderr)
    sys.exit(1)
print("trained within", limit, flush=True)
"""


def gpu_job(name: str, need_gib: float, gpu_memory: str, **spec):
    m = manifest(name, [PY, "-c", FAKE_CUDA, str(int(need_gib * GiB))], **spec)
    m["spec"]["template"]["resources"]["requests"].update({"nvidia.com/gpu": 1, "jobsched.io/gpu-memory": gpu_memory})
    return m


L4 = {"name": "l4", "cpu": 2, "memory": "2Gi", "gpus": 1, "gpuModel": "L4", "gpuMemory": "24Gi"}
H100 = {"name": "h100", "cpu": 16, "memory": "16Gi", "gpus": 1, "gpuModel": "H100", "gpuMemory": "80Gi"}


def test_zero_gpu_replica_sees_no_gpu(runtime):
    prog = "import os; print(repr(os.environ['CUDA_VISIBLE_DEVICES']), os.environ['NVIDIA_VISIBLE_DEVICES'])"
    runtime.service.submit(manifest("nogpu", [PY, "-c", prog]))
    assert wait_for(runtime.service, "nogpu").phase.value == "Succeeded"
    assert runtime.service.logs("default", "nogpu")[0].split() == ["''", "void"]


def test_cuda_oom_grows_the_share(make_runtime):
    rt = make_runtime(nodes_config=[L4])
    rt.service.submit(gpu_job("share", 10, "6Gi", gpuSharing="Auto", maxRetries=2))
    st = wait_for(rt.service, "share")
    assert st.phase.value == "Succeeded", st.message
    a0, a1 = st.attempts
    assert a0.reason == "CudaOOM" and a1.reason == "Completed"
    r0, r1 = a0.resources.requests, a1.resources.requests
    assert r0["jobsched.io/gpu-milli"] == 250 and r0["jobsched.io/gpu-memory"] == 6 * GiB
    # device peak 10Gi x 1.15 -> 11.5Gi: a bigger share of the same GPU, never the same size
    assert r1["jobsched.io/gpu-memory"] > 11 * GiB and 250 < r1["jobsched.io/gpu-milli"] < 1000
    assert st.sizing.gpu_memory == r1["jobsched.io/gpu-memory"]
    assert any(e.reason == "Resized" and "CUDA out of memory" in e.message for e in st.events)
    logs = rt.service.logs("default", "share", attempt=0)[0]
    assert "CVD='0' NVD='0' limit=6442450944" in logs


def test_cuda_oom_moves_to_a_gpu_model_with_more_memory(make_runtime):
    rt = make_runtime(nodes_config=[L4, H100])
    rt.service.submit(gpu_job("grow", 30, "20Gi", maxRetries=2))
    st = wait_for(rt.service, "grow")
    assert st.phase.value == "Succeeded", st.message
    assert [a.reason for a in st.attempts] == ["CudaOOM", "Completed"]
    assert [a.node for a in st.attempts] == ["l4", "h100"]  # best fit first, then the only larger GPU
    assert st.attempts[1].resources.requests["jobsched.io/gpu-memory"] > 30 * GiB


def test_no_larger_gpu_fails_with_a_hint_and_too_large_a_request_is_rejected(make_runtime):
    rt = make_runtime(nodes_config=[L4])
    rt.service.submit(gpu_job("stuck", 30, "20Gi", maxRetries=2))
    st = wait_for(rt.service, "stuck")
    assert st.phase.value == "Failed" and st.reason == "GpuMemoryCapReached"
    assert "gradient accumulation" in st.message and len(st.attempts) == 1
    rt.service.submit(gpu_job("huge", 1, "40Gi"))
    st = wait_for(rt.service, "huge")
    assert st.phase.value == "Failed" and st.reason == "Unschedulable" and not st.attempts
    assert "GPU memory below 40Gi" in st.message
