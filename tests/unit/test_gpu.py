"""GPU inventory (a fake NVML), the GFD labels of Kubernetes nodes, virtual GPU nodes, the GPU
memory request in the spec, CUDA OOM classification from a recorded output, and the device-size
resize decision."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from jobsched.backends.local import gpus
from jobsched.backends.local.backend import LocalBackend, virtual_node
from jobsched.backends.local.shim import classify_exit, device_peak
from jobsched.rightsizing.policy import next_attempt_memory
from jobsched.server.gpu_env import replica_gpu
from jobsched.spec.job import TrainingJob
from jobsched.spec.node import gfd_gpu
from jobsched.spec.resources import Resources

GiB = 2**30
RECORDED = Path(__file__).parent.parent / "data" / "cuda_oom_share.stderr"


# --- a fake NVML: the pynvml functions inventory() calls, over a list of (name, bytes) ---------
def fake_nvml(devices: list[tuple[str | bytes, int]], init_error: Exception | None = None) -> types.ModuleType:
    m = types.ModuleType("pynvml")  # FakeNVML: stands in for nvidia-ml-py without a GPU

    def init() -> None:
        if init_error is not None:
            raise init_error

    m.nvmlInit = init  # type: ignore[attr-defined]
    m.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    m.nvmlDeviceGetCount = lambda: len(devices)  # type: ignore[attr-defined]
    m.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    m.nvmlDeviceGetName = lambda h: devices[h][0]  # type: ignore[attr-defined]
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=devices[h][1])  # type: ignore[attr-defined]
    return m


@pytest.fixture
def nvml(monkeypatch):
    def install(module: types.ModuleType | None) -> None:
        monkeypatch.setitem(sys.modules, "pynvml", module)  # None: "not installed" (ImportError)
    return install


def test_local_node_reads_gpu_model_and_memory_through_nvml(nvml, tmp_path):
    nvml(fake_nvml([(b"NVIDIA H100 80GB HBM3", 85_520_809_984)] * 2))
    node = LocalBackend(tmp_path).nodes()[0]
    assert node.allocatable_vector().gpus == 2
    assert node.gpu_model == "NVIDIA-H100-80GB-HBM3"  # written as GFD labels it
    assert node.gpu_memory_bytes == 85_520_809_984


@pytest.mark.parametrize(("module", "note"), [
    (None, "nvidia-ml-py package is not installed"),
    (fake_nvml([], init_error=OSError("NVML Shared Library Not Found")), "NVML Shared Library Not Found"),
    (fake_nvml([]), "NVML found no GPU"),
])
def test_no_gpu_found_says_why(nvml, tmp_path, module, note):
    nvml(module)
    be = LocalBackend(tmp_path)
    node = be.nodes()[0]
    assert node.allocatable_vector().gpus == 0 and node.gpu_memory_bytes == 0
    assert note in be.gpu_note()


def test_mixed_gpus_report_the_smallest_memory(nvml):
    nvml(fake_nvml([("NVIDIA A100-SXM4-40GB", 40 * GiB), ("NVIDIA A100-SXM4-80GB", 80 * GiB)]))
    inv = gpus.inventory()
    assert inv.count == 2 and inv.memory == 40 * GiB


def test_virtual_gpu_nodes_take_model_and_memory():
    n = virtual_node({"name": "v", "cpu": 8, "memory": "32Gi", "gpus": 2, "gpuModel": "L4", "gpuMemory": "24Gi"})
    assert n.gpu_model == "L4" and n.gpu_memory_bytes == 24 * GiB
    assert virtual_node({"name": "c", "gpuModel": "L4", "gpuMemory": "24Gi"}).gpu_memory_bytes == 0  # no GPUs
    with pytest.raises(ValueError, match="gpu_memory|gpuMemory"):
        virtual_node({"name": "v", "gpus": 1, "gpuMemory": "lots"})


@pytest.mark.parametrize(("labels", "want"), [
    ({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB", "nvidia.com/gpu.memory": "40960"},
     ("NVIDIA-A100-SXM4-40GB", 40 * GiB)),
    ({"nvidia.com/gpu.product": "Tesla-T4", "nvidia.com/gpu.memory": "15360",
      "jobsched.io/gpu-model": "T4"}, ("T4", 15 * GiB)),
    ({"nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.memory": "n/a"}, ("NVIDIA-L4", 0)),
    ({}, ("", 0)),
])
def test_gfd_labels(labels, want):
    assert gfd_gpu(labels) == want


# --- the spec ---------------------------------------------------------------------------------
def job(resources: dict, **spec) -> TrainingJob:
    return TrainingJob.model_validate({"metadata": {"name": "j"}, "spec": {
        **spec, "template": {"command": ["true"], "resources": {"requests": resources}}}})


def test_gpu_memory_request_and_sharing_opt_in():
    r = job({"nvidia.com/gpu": 1, "jobsched.io/gpu-memory": "30Gi"}).requests()
    assert (r.gpus, r.gpu_milli, r.gpu_memory, r.gpu_share) == (1, 1000, 30 * GiB, False)
    shared = job({"nvidia.com/gpu": 1, "jobsched.io/gpu-memory": "10Gi"}, gpuSharing="Auto").requests()
    assert shared.gpu_share and shared.gpu_memory == 10 * GiB
    fixed = job({"nvidia.com/gpu": 1, "jobsched.io/gpu-milli": 250}).requests()
    assert fixed.gpu_milli == 250 and not fixed.gpu_share


@pytest.mark.parametrize(("resources", "spec", "field"), [
    ({"jobsched.io/gpu-memory": "10Gi"}, {}, "jobsched.io/gpu-memory needs nvidia.com/gpu"),
    ({"nvidia.com/gpu": 1, "jobsched.io/gpu-milli": 300}, {"gpuSharing": "Never"}, "gpuSharing"),
    ({"nvidia.com/gpu": 1}, {"gpuSharing": "Sometimes"}, "gpuSharing"),
    ({"nvidia.com/gpu": 1, "jobsched.io/gpu-memory": "-1Gi"}, {}, "jobsched.io/gpu-memory"),
])
def test_bad_gpu_spec_names_the_field(resources, spec, field):
    with pytest.raises(ValueError, match=field):
        job(resources, **spec)


# --- the replica's environment ----------------------------------------------------------------
def test_zero_gpu_replica_sees_no_gpu_and_a_share_gets_its_limit():
    _, env, device = replica_gpu(Resources(1000, GiB), (), 80 * GiB)
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["NVIDIA_VISIBLE_DEVICES"] == "void" and device is None
    share = Resources(1000, GiB, 1, 1000).with_gpu_memory(10 * GiB, True)
    concrete, env, device = replica_gpu(share, (1,), 24 * GiB, mps=True)
    assert concrete.gpu_milli == 417 and env["CUDA_VISIBLE_DEVICES"] == "1"
    assert int(env["JOBSCHED_GPU_MEMORY_LIMIT"]) == device >= 10 * GiB
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == f"0={device // 2**20}M"
    _, env, device = replica_gpu(Resources(0, 0, 2, 1000), (0, 1), 80 * GiB)
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and device == 80 * GiB
    assert env["JOBSCHED_GPU_MEMORY_LIMIT"] == str(80 * GiB)


# --- CUDA OOM ---------------------------------------------------------------------------------
def test_cuda_oom_is_classified_from_a_recorded_output():
    text = RECORDED.read_text()
    reason, msg, _ = classify_exit(1, False, text, None, None, "cgroup-v2", True)
    assert reason == "CudaOOM" and msg.startswith("jobsched: CUDA out of memory")
    assert device_peak(text) == 18897436672 + int(1.5 * GiB)  # the runtime's peak + the failed allocation
    torch_only = "\n".join(ln for ln in text.splitlines() if not ln.startswith("jobsched:"))
    assert device_peak(torch_only) == int(18.16 * GiB) + int(1.5 * GiB)
    assert classify_exit(1, False, "MemoryError: batch", None, None, "cgroup-v2", True)[0] == "InProgramOOM"


@pytest.mark.parametrize(("had", "peak", "cap", "want"), [
    (6 * GiB, 8 * GiB, 80 * GiB, int(8 * GiB * 1.15)),  # a bigger share: peak x (1 + margin)
    (6 * GiB, None, 80 * GiB, 9 * GiB),  # no peak: previous x growth
    (24 * GiB, 26 * GiB, 80 * GiB, 36 * GiB),  # past a 24Gi GPU: a model with more memory
    (60 * GiB, 79 * GiB, 80 * GiB, 80 * GiB),  # capped at the largest GPU
])
def test_cuda_oom_grows_the_device_size_never_the_same_twice(had, peak, cap, want):
    d = next_attempt_memory(reason="CudaOOM", previous=4 * GiB, observed_peak=peak, margin=0.15,
                            growth=1.5, cap=4 * GiB, max_memory=None, gpu_memory=had, gpu_cap=cap)
    assert d.memory == 4 * GiB  # host memory stays
    assert d.gpu_memory is not None and d.gpu_memory > had
    assert abs(d.gpu_memory - want) < 2**20


def test_cuda_oom_on_the_largest_gpu_fails_with_a_hint():
    d = next_attempt_memory(reason="CudaOOM", previous=4 * GiB, observed_peak=90 * GiB, margin=0.15,
                            growth=1.5, cap=4 * GiB, max_memory=None, gpu_memory=80 * GiB, gpu_cap=80 * GiB)
    assert d.memory is None and d.gpu_memory is None
    for word in ("batch size", "gradient accumulation", "activation checkpointing"):
        assert word in d.reason


def test_ray_gets_a_share_as_fractional_num_gpus():
    from jobsched.backends.ray.cluster import actor_resources

    share = Resources(1000, GiB, 1, 1000).with_gpu_memory(20 * GiB, True)
    concrete, env, _ = replica_gpu(share, (0,), 80 * GiB)  # what the controller hands the backend
    assert actor_resources(concrete)["num_gpus"] == 0.25
    assert actor_resources(Resources(1000, GiB, 2, 1000))["num_gpus"] == 2
