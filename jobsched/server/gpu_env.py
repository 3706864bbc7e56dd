"""What a replica is told about its GPUs: which devices it sees, and how much device memory a share
may use (enforced in the replica by the ``workers`` runtime, and by MPS where it runs).

* ``CUDA_VISIBLE_DEVICES`` / ``NVIDIA_VISIBLE_DEVICES``: the devices it was given on its node; the
  empty string (``void`` for the NVIDIA container runtime) for a replica without GPUs, so it never
  sees the host's GPUs. Backends that isolate devices themselves (Kubernetes' device plugin, Ray's
  ``num_gpus``) replace them.
* ``JOBSCHED_GPU_MEMORY_LIMIT``: bytes of each of its GPUs it may use: a share's
  ``share / 1000 x GPU memory``, or the whole GPU (only where the node's GPU memory is known);
  ``workers`` applies it with ``torch.cuda.set_per_process_memory_fraction``. For a share, where an
  MPS control daemon runs, also ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` (``0=<MiB>M``: device 0 of
  those it sees).
"""

from __future__ import annotations

import os
from pathlib import Path

from jobsched.spec.resources import Resources

MIB = 2**20


def mps_running() -> bool:
    pipe = os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or "/tmp/nvidia-mps"
    return Path(pipe, "control").exists()


def replica_gpu(request: Resources, gpus: tuple[int, ...], gpu_capacity: int, mps: bool = False
                ) -> tuple[Resources, dict[str, str], int | None]:
    """(the concrete request on that node, env, device bytes per GPU it gets or None if unknown)."""
    concrete = request.on_gpu(gpu_capacity)
    visible = ",".join(map(str, gpus))
    env = {"CUDA_VISIBLE_DEVICES": visible, "NVIDIA_VISIBLE_DEVICES": visible or "void"}
    if not gpus or not gpu_capacity:
        return concrete, env, None
    device = concrete.device_bytes(gpu_capacity)
    env["JOBSCHED_GPU_MEMORY_LIMIT"] = str(device)
    if concrete.gpu_milli < 1000 and mps:
        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={device // MIB}M"
    return concrete, env, device
