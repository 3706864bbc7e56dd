"""PyTorch pieces shared by the kernels: optimizers, the fast path switches, synthetic-data seeding.

Fast path (``fast=True``), each part applied only where it beats the eager baseline on the same
model (figures in docs/kernels.md):
- fused optimizers (``Adam(fused=True)`` / ``SGD(fused=True)``; the baseline uses torch's default);
- ``torch.compile`` where the kernel's ``COMPILE_BY_DEFAULT`` says it wins (override: ``compile=``);
- bf16 autocast on CUDA (``precision=auto``), or wherever ``precision=bf16`` asks for it;
- per kernel: channels-last (CNN), fused scaled-dot-product / flash attention (transformer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from kernels.configs import Common

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator of synthetic batch ``index`` (or of the task itself for index -1)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + index + 1) % (2**63))


def device_of(cfg: Common) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(cfg.device)


def amp_dtype(cfg: Common) -> torch.dtype | None:
    """The autocast dtype of the forward pass, or None for plain fp32."""
    if cfg.precision == "bf16" or (cfg.precision == "auto" and cfg.fast and cfg.device == "cuda"):
        return torch.bfloat16
    return None


@contextlib.contextmanager
def autocast(device_type: str, dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None:
        yield
    else:
        with torch.autocast(device_type=device_type, dtype=dtype):
            yield


def make_optimizer(params: Any, cfg: Common) -> torch.optim.Optimizer:
    fused = True if cfg.fast else None  # None: torch's default implementation (the baseline)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, fused=fused)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, fused=fused)


def is_fake(t: torch.Tensor) -> bool:
    """True under the memory estimator's fake-tensor (or meta) mode, where compiling is pointless."""
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(t, FakeTensor) or t.device.type == "meta"


def compiling(cfg: Common, compile_by_default: bool, probe: torch.Tensor) -> bool:
    """Whether the fast path compiles here (the kernel's default, or ``compile=``; never under fakes)."""
    wanted = cfg.compile if cfg.compile is not None else compile_by_default
    return bool(cfg.fast and wanted and not is_fake(probe))


def finish(model: nn.Module, cfg: Common, compile_by_default: bool, probe: torch.Tensor,
           mode: str = "default") -> nn.Module:
    """Apply torch.compile on the fast path when the kernel (or ``compile=``) asks for it."""
    if compiling(cfg, compile_by_default, probe):
        if cfg.device == "cuda":  # TF32 for whatever fp32 matmuls remain outside autocast
            torch.set_float32_matmul_precision("high")
        return torch.compile(model, mode=None if mode == "default" else mode)  # type: ignore[return-value]
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile's OptimizedModule and DistributedDataParallel wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
