"""The workers runtime's side of GPU sharing and CUDA-OOM resizing. There is no GPU here, so a fake
CUDA (the few ``torch.cuda`` functions involved, monkeypatched and named FakeCuda) stands in."""

from __future__ import annotations

import types

import pytest
import torch

from jobsched.backends.local.shim import device_peak
from workers import torch_loop

pytestmark = pytest.mark.torch
GiB = 2**30


@pytest.fixture
def fake_cuda(monkeypatch):
    """FakeCuda: an 80 GiB device 0 that records the memory fraction set on it."""
    state = {"fraction": None}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: types.SimpleNamespace(total_memory=80 * GiB))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda f, d=None: state.__setitem__("fraction", (f, d)))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: 7 * GiB)
    return state


def test_share_limit_becomes_the_process_memory_fraction(fake_cuda, monkeypatch):
    monkeypatch.setenv("JOBSCHED_GPU_MEMORY_LIMIT", str(20 * GiB))
    assert torch_loop.apply_gpu_memory_limit() == 0.25
    assert fake_cuda["fraction"] == (0.25, 0)


def test_no_limit_no_fraction(fake_cuda, monkeypatch):
    monkeypatch.delenv("JOBSCHED_GPU_MEMORY_LIMIT", raising=False)
    assert torch_loop.apply_gpu_memory_limit() is None and fake_cuda["fraction"] is None


def test_cuda_oom_report_is_what_jobsched_reads(fake_cuda, monkeypatch, capsys):
    monkeypatch.setenv("JOBSCHED_GPU_MEMORY_LIMIT", str(8 * GiB))
    torch_loop.report_cuda_oom()
    err = capsys.readouterr().err
    assert "CUDA out of memory" in err and device_peak(err) == 7 * GiB
