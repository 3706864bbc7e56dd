"""MLP classifier on a synthetic teacher task: labels come from a fixed random 2-layer teacher net."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kernels.configs import MLPConfig
from kernels.torch_common import (
    Batch,
    LossFn,
    amp_dtype,
    autocast,
    cross_entropy,
    device_of,
    finish,
    generator,
    make_optimizer,
)

Config = MLPConfig
COMPILE_BY_DEFAULT = False  # inductor does not beat eager on these small matmuls (docs/kernels.md)


class MLP(nn.Module):
    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        dims = [cfg.input_dim, *cfg.hidden]
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], cfg.classes))
        self.net = nn.Sequential(*layers)
        self.amp: torch.dtype | None = amp_dtype(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(x.device.type, self.amp):
            return self.net(x)


def make_batch(cfg: MLPConfig, index: int) -> Batch:
    """Batch ``index`` of the data set: x ~ N(0, I), y = argmax(teacher(x)), deterministic."""
    task = generator(cfg.seed, -1)
    w1 = torch.randn(cfg.input_dim, 32, generator=task) / cfg.input_dim**0.5
    w2 = torch.randn(32, cfg.classes, generator=task)
    x = torch.randn(cfg.batch_size, cfg.input_dim, generator=generator(cfg.seed, index))
    y = (torch.tanh(x @ w1) @ w2).argmax(dim=1)
    dev = device_of(cfg)
    return x.to(dev), y.to(dev)


def build(cfg: MLPConfig) -> tuple[nn.Module, torch.optim.Optimizer, LossFn]:
    torch.manual_seed(cfg.seed)
    with device_of(cfg):
        model = MLP(cfg)
    optimizer = make_optimizer(model.parameters(), cfg)
    probe = next(model.parameters())
    return finish(model, cfg, COMPILE_BY_DEFAULT, probe), optimizer, cross_entropy


def factory(**kwargs: Any) -> tuple[nn.Module, torch.optim.Optimizer, Batch, LossFn]:
    """(model, optimizer, (inputs, targets), loss_fn) for the memory estimator and the worker."""
    cfg = MLPConfig.from_kwargs(**kwargs)
    model, optimizer, loss_fn = build(cfg)
    return model, optimizer, make_batch(cfg, 0), loss_fn
