"""The provisioner and the sizing cap with GPU-memory requests: the cheapest instance type whose
GPUs hold the request; shares sized on the GPU of the chosen type."""

from __future__ import annotations

import pytest

from jobsched.core.snapshot import NodeShape
from jobsched.rightsizing.policy import largest_host_memory
from jobsched.rightsizing.pools import InstanceType
from jobsched.rightsizing.provisioner import plan
from tests.builders import make_job, make_nodes

GiB = 2**30


def gpu_type(name: str, model: str, gpu_gib: int, price: float, gpus: int = 1, mem_gib: int = 64) -> InstanceType:
    return InstanceType(name=name, cpu=16, memory=f"{mem_gib}Gi", gpus=gpus, gpu_model=model,
                        gpu_memory=f"{gpu_gib}Gi", price_per_hour=price, max_count=4)


L4 = gpu_type("g6.xlarge", "L4", 24, 0.8)
A100 = gpu_type("p4.1g", "A100-40GB", 40, 2.0)
H100 = gpu_type("p5.1g", "H100-80GB", 80, 4.0)
POOL = [H100, L4, A100]


@pytest.mark.parametrize(("job", "want"), [
    (make_job("j").gpus(1), [("g6.xlarge", 1)]),
    (make_job("j").gpus(1).gpu_mem(20), [("g6.xlarge", 1)]),
    (make_job("j").gpus(1).gpu_mem(30), [("p4.1g", 1)]),
    (make_job("j").gpus(1).gpu_mem(70), [("p5.1g", 1)]),
    (make_job("j").gpus(1).gpu_mem(30).models("H100-80GB"), [("p5.1g", 1)]),
    # 4 shares of 10Gi: two per L4 (417 each) -> 2 x L4 (1.6) beats one A100 holding all four (2.0)
    (make_job("s").gpus(1).gpu_mem(10, share=True).replicas(4), [("g6.xlarge", 2)]),
    # restricted to A100s: one A100 holds all four shares (225 each)
    (make_job("s").gpus(1).gpu_mem(9, share=True).replicas(4).models("A100-40GB"), [("p4.1g", 1)]),
    # 3 shares of 12Gi: 500 each on an L4 (two per L4) -> 2 x L4 (1.6) beats one A100 (2.0, 300 x 3)
    (make_job("s").gpus(1).gpu_mem(12, share=True).replicas(3), [("g6.xlarge", 2)]),
])
def test_cheapest_instance_type_whose_gpus_fit(job, want):
    p = plan([job.build()], POOL, {})
    assert p.nodes == want and not p.unfit


def test_no_instance_type_has_gpus_that_large():
    p = plan([make_job("big").gpus(1).gpu_mem(100).build()], POOL, {})
    assert p.unfit == ["big"] and p.nodes == []


def test_shape_carries_gpu_memory_and_the_host_cap_skips_small_gpus():
    assert A100.shape().gpu_memory == 40 * GiB
    assert A100.node("n").gpu_memory_bytes == 40 * GiB
    big_host_small_gpu = NodeShape("fat", L4.model_copy(update={"memory": "512Gi"}).resources(), 1, "L4",
                                   gpu_memory=24 * GiB)
    g = make_job("j").gpus(1).gpu_mem(30).build()
    assert largest_host_memory(make_nodes(0), g, [big_host_small_gpu, A100.shape()]) == 64 * GiB
