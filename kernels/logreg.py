"""Logistic regression (binary) on linearly separable synthetic data with 5% label noise."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kernels.configs import LogRegConfig
from kernels.torch_common import (
    Batch,
    LossFn,
    amp_dtype,
    autocast,
    device_of,
    finish,
    generator,
    make_optimizer,
)

Config = LogRegConfig
COMPILE_BY_DEFAULT = False  # see docs/kernels.md for the measurement behind this


class LogReg(nn.Module):
    def __init__(self, cfg: LogRegConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(cfg.features, 1)
        self.amp: torch.dtype | None = amp_dtype(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(x.device.type, self.amp):
            return self.linear(x).squeeze(-1)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(logits.float(), targets)


def make_batch(cfg: LogRegConfig, index: int) -> Batch:
    """Batch ``index``: x ~ N(0, I), y = [x . w > 0] with 5% of the labels flipped; deterministic."""
    w = torch.randn(cfg.features, generator=generator(cfg.seed, -1))
    g = generator(cfg.seed, index)
    x = torch.randn(cfg.batch_size, cfg.features, generator=g)
    flip = torch.rand(cfg.batch_size, generator=g) < 0.05
    y = ((x @ w > 0) ^ flip).float()
    dev = device_of(cfg)
    return x.to(dev), y.to(dev)


def build(cfg: LogRegConfig) -> tuple[nn.Module, torch.optim.Optimizer, LossFn]:
    torch.manual_seed(cfg.seed)
    with device_of(cfg):
        model = LogReg(cfg)
    optimizer = make_optimizer(model.parameters(), cfg)
    return finish(model, cfg, COMPILE_BY_DEFAULT, model.linear.weight), optimizer, loss_fn


def factory(**kwargs: Any) -> tuple[nn.Module, torch.optim.Optimizer, Batch, LossFn]:
    """(model, optimizer, (inputs, targets), loss_fn) for the memory estimator and the worker."""
    cfg = LogRegConfig.from_kwargs(**kwargs)
    model, optimizer, lf = build(cfg)
    return model, optimizer, make_batch(cfg, 0), lf
