"""The runtime's own memory baseline, and the real-step runner that measures peaks.

``measure_peak`` runs real training steps of a factory in *this* process and reports its peak:
peak RSS (``getrusage``) on CPU; CUDA context plus the caching allocator's peak reserved bytes on
CUDA. The CPU baseline is that runner's peak for a small probe model in a fresh subprocess, minus
the probe's traced peak: interpreter, torch, its kernels and their working buffers, the autograd
engine, allocator arenas. It is measured once per (torch, Python, device, thread setting) and
cached in ``$JOBSCHED_HOME/cache/``.

``python -m jobsched.rightsizing.baseline --factory m:f --kwargs JSON [--device D] [--steps N]``
prints ``{"peak_bytes": ...}``; ``--probe`` measures the baseline itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBE_FACTORY = "jobsched.rightsizing.baseline:probe_factory"
PROBE_VERSION = 3  # part of the cache key: bump when probe_factory or the runner changes
MEASURE_STEPS = 3


def jobsched_home() -> Path:
    return Path(os.environ.get("JOBSCHED_HOME") or Path.home() / ".jobsched")


def probe_factory(batch: int = 32) -> tuple[Any, Any, Any, Any]:
    """One of each common layer kind (convolution, batch norm, pooling, embedding, LSTM, GRU,
    attention, layer norm, linear) with Adam, at a size where the math libraries set up their
    working buffers: the runner's peak minus the traced peak is the runtime's own footprint."""
    import torch
    from torch import nn

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.MaxPool2d(2))
            self.proj = nn.Linear(16, 64)
            self.pos = nn.Embedding(64, 64)
            self.register_buffer("positions", torch.arange(64))
            self.lstm = nn.LSTM(64, 64, batch_first=True)
            self.gru = nn.GRU(64, 64, batch_first=True)
            self.attn = nn.TransformerEncoderLayer(64, 4, 256, batch_first=True, norm_first=True)
            self.head = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seq = self.proj(self.conv(x).flatten(2).transpose(1, 2)) + self.pos(self.positions)
            seq = self.gru(self.lstm(seq)[0])[0]
            return self.head(self.attn(seq).mean(1))

    model = Probe()
    data = (torch.randn(batch, 3, 16, 16), torch.randint(0, 10, (batch,)))
    return model, torch.optim.Adam(model.parameters()), data, nn.functional.cross_entropy


def peak_rss_bytes() -> int:
    """This process's own peak RSS (``VmHWM`` on Linux): ``getrusage``'s ``ru_maxrss`` carries the
    *parent's* peak over ``exec`` (a runner started by a 1.4 GB pytest or server process reported
    1.4 GB for a 0.8 GB run)."""
    from workers.rendezvous import own_peak_rss

    return own_peak_rss()


def measure_peak(factory: str, kwargs: dict[str, Any], device: str = "cpu",
                 steps: int = MEASURE_STEPS) -> dict[str, Any]:
    """Run ``steps`` real training steps in this process; the peak memory on ``device``."""
    import torch

    from jobsched.rightsizing.estimator import load_factory, train_step, unpack

    fn = load_factory(factory)
    target = torch.device(device)
    stages: dict[str, int] = {}
    if target.type == "cuda":
        stages = _context_stages(target)
        torch.cuda.reset_peak_memory_stats(target)
    with target:
        model, opt, inputs, targets, loss_fn = unpack(factory, fn(**kwargs))
        for _ in range(steps):
            train_step(model, opt, inputs, targets, loss_fn)
    if target.type != "cuda":
        return {"peak_bytes": peak_rss_bytes()}
    torch.cuda.synchronize(target)
    free, total = torch.cuda.mem_get_info(target)
    reserved = torch.cuda.memory_reserved(target)
    # Device memory not held by the caching allocator: the CUDA context, cuBLAS/cuDNN handles (an
    # upper bound on a GPU shared with other processes).
    context = max(0, total - free - reserved)
    return {"peak_bytes": context + torch.cuda.max_memory_reserved(target), "context_bytes": context,
            "peak_reserved_bytes": torch.cuda.max_memory_reserved(target),
            "peak_allocated_bytes": torch.cuda.max_memory_allocated(target),
            "host_peak_bytes": peak_rss_bytes(), "cublas_workspace_bytes": _cublas_workspace(),
            "context_stages": {**stages, "cudnn": max(0, context - sum(stages.values()))}}


def _cublas_workspace() -> int:
    import torch

    try:
        return int(torch.backends.cuda.cublas_workspace_size())
    except (AttributeError, RuntimeError):  # an older torch: its documented default for this GPU
        from jobsched.rightsizing.cuda import CUBLAS_WORKSPACE_FALLBACK

        return CUBLAS_WORKSPACE_FALLBACK


def _context_stages(target: Any) -> dict[str, int]:
    """Device memory outside the allocator after creating the context ("base") and what the first
    matmul (cuBLAS) adds; the caller attributes the rest of the run's context to cuDNN."""
    import torch

    def outside() -> int:
        torch.cuda.synchronize(target)
        free, total = torch.cuda.mem_get_info(target)
        return max(0, total - free - torch.cuda.memory_reserved(target))

    torch.empty(1, device=target)
    base = outside()
    a = torch.ones(64, 64, device=target)
    b = a @ a
    del a, b
    torch.cuda.empty_cache()  # the run measured next starts with only cuBLAS's workspace cached
    return {"base": base, "cublas": max(0, outside() - base)}


def _cache_path(device: str) -> Path:
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "default")
    key = (f"probe{PROBE_VERSION}-torch{torch.__version__}-py{platform.python_version()}-{platform.machine()}"
           f"-{torch.device(device).type}-threads{threads}")
    return jobsched_home() / "cache" / f"baseline-{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}.json"


def measure_baseline(device: str = "cpu", timeout: float = 120.0) -> int:
    """Measured now (never cached): the probe's real peak in a fresh subprocess minus its traced
    peak on CPU; the device memory outside the caching allocator (CUDA context) on CUDA."""
    from jobsched.rightsizing.estimator import trace_peak

    argv = [sys.executable, "-m", "jobsched.rightsizing.baseline", "--probe", "--device", device]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"baseline probe for {device} failed: {proc.stderr.strip()[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if "context_bytes" in result:
        return int(result["context_bytes"])
    return int(result["peak_bytes"]) - sum(trace_peak(PROBE_FACTORY, {}, device).values())


def baseline_bytes(device: str = "cpu", refresh: bool = False) -> int:
    """The runtime's own peak on ``device`` (cached): RSS of a tiny training run on CPU, the
    non-allocator device memory (CUDA context) on CUDA."""
    import torch

    path = _cache_path(device)
    if path.exists() and not refresh:
        try:
            return int(json.loads(path.read_text())["baseline_bytes"])
        except (ValueError, KeyError, OSError):
            pass  # unreadable cache: measure again
    if torch.device(device).type == "cuda":
        return sum(cuda_baseline(refresh).context.values())
    value = measure_baseline(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"baseline_bytes": value, "device": device, "probe": PROBE_FACTORY}))
    os.replace(tmp, path)  # atomic: concurrent estimators never read a half-written file
    return value


@dataclass(frozen=True)
class CudaBaseline:
    """A CUDA process's own memory: host RSS, and device memory outside the caching allocator per
    library ("base" context, "cublas", "cudnn"). ``measured`` is False for the fallbacks."""

    host_bytes: int
    context: dict[str, int]
    measured: bool
    cublas_workspace: int = 0


def cuda_baseline(refresh: bool = False, timeout: float = 180.0) -> CudaBaseline:
    """Measured by the probe on this machine's GPU (cached per torch/CUDA version and GPU model);
    without a GPU, ``$JOBSCHED_CUDA_BASELINE_BYTES`` (the whole context) and
    ``$JOBSCHED_CUDA_HOST_BASELINE_BYTES``, else the constants of jobsched.rightsizing.cuda."""
    import torch

    from jobsched.rightsizing.cuda import CONTEXT_FALLBACK, CUBLAS_WORKSPACE_FALLBACK, HOST_BASELINE_FALLBACK

    ctx_env, host_env = (os.environ.get(k) for k in ("JOBSCHED_CUDA_BASELINE_BYTES",
                                                      "JOBSCHED_CUDA_HOST_BASELINE_BYTES"))
    if not torch.cuda.is_available():
        return CudaBaseline(int(host_env) if host_env else HOST_BASELINE_FALLBACK,
                            {"base": int(ctx_env)} if ctx_env else dict(CONTEXT_FALLBACK), False,
                            CUBLAS_WORKSPACE_FALLBACK)
    path = _cache_path("cuda").with_name(_cache_path("cuda").stem + "-" + re.sub(
        r"[^A-Za-z0-9_.-]", "_", torch.cuda.get_device_name()) + ".json")
    try:
        if refresh:
            raise OSError("refresh")
        data = json.loads(path.read_text())
        found = CudaBaseline(int(data["host_bytes"]), {k: int(v) for k, v in data["context"].items()}, True,
                             int(data["cublas_workspace"]))
    except (ValueError, KeyError, OSError):
        argv = [sys.executable, "-m", "jobsched.rightsizing.baseline", "--probe", "--device", "cuda"]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"CUDA baseline probe failed: {proc.stderr.strip()[-2000:]}") from None
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        found = CudaBaseline(int(r["host_peak_bytes"]), {k: int(v) for k, v in r["context_stages"].items()}, True,
                             int(r.get("cublas_workspace_bytes", CUBLAS_WORKSPACE_FALLBACK)))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"host_bytes": found.host_bytes, "context": found.context,
                                   "cublas_workspace": found.cublas_workspace}))
        os.replace(tmp, path)
    if ctx_env or host_env:  # an explicit setting wins over the measurement
        found = CudaBaseline(int(host_env) if host_env else found.host_bytes,
                             {"base": int(ctx_env)} if ctx_env else found.context, found.measured,
                             found.cublas_workspace)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobsched.rightsizing.baseline")
    p.add_argument("--factory", default=PROBE_FACTORY)
    p.add_argument("--kwargs", default="{}")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=MEASURE_STEPS)
    p.add_argument("--probe", action="store_true", help="measure the baseline (the probe factory)")
    a = p.parse_args(argv)
    factory = PROBE_FACTORY if a.probe else a.factory
    print(json.dumps(measure_peak(factory, json.loads(a.kwargs), a.device, a.steps)))
    return 0


if __name__ == "__main__":
    from jobsched.rightsizing.baseline import main as _main

    sys.exit(_main())
