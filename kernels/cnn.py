"""Convolutional image classifier on synthetic images: class-specific oriented gratings in noise."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from kernels.configs import CNNConfig
from kernels.torch_common import (
    Batch,
    LossFn,
    amp_dtype,
    autocast,
    cross_entropy,
    device_of,
    finish,
    generator,
    is_fake,
    make_optimizer,
)

Config = CNNConfig
COMPILE_BY_DEFAULT = False  # see docs/kernels.md for the measurement behind this


class CNN(nn.Module):
    def __init__(self, cfg: CNNConfig) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = cfg.in_channels
        for c_out in cfg.channels:
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, cfg.classes)
        self.amp: torch.dtype | None = amp_dtype(cfg)
        self.channels_last = cfg.fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(x.device.type, self.amp):
            return self.head(self.features(x).mean(dim=(2, 3)))


def make_batch(cfg: CNNConfig, index: int) -> Batch:
    """Batch ``index``: a grating whose orientation, frequency and colour encode the class, with a
    random phase per image, plus Gaussian noise. Deterministic."""
    task = generator(cfg.seed, -1)
    colour = torch.rand(cfg.classes, cfg.in_channels, generator=task) * 2 - 1
    g = generator(cfg.seed, index)
    n, s = cfg.batch_size, cfg.image_size
    y = torch.randint(0, cfg.classes, (n,), generator=g)
    angle = math.pi * y.float() / cfg.classes
    freq = 2.0 + (y % 3).float()  # cycles per image
    phase = torch.rand(n, generator=g) * 2 * math.pi
    coords = torch.arange(s, dtype=torch.float32) / s
    u, v = coords.view(1, s, 1), coords.view(1, 1, s)
    wave = torch.cos(2 * math.pi * freq.view(n, 1, 1) * (angle.cos().view(n, 1, 1) * u
                                                          + angle.sin().view(n, 1, 1) * v)
                     + phase.view(n, 1, 1))
    x = colour[y].view(n, cfg.in_channels, 1, 1) * wave.unsqueeze(1)
    x = x + 0.5 * torch.randn(n, cfg.in_channels, s, s, generator=g)
    dev = device_of(cfg)
    if cfg.fast:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(dev), y.to(dev)


def build(cfg: CNNConfig) -> tuple[nn.Module, torch.optim.Optimizer, LossFn]:
    torch.manual_seed(cfg.seed)
    with device_of(cfg):
        model = CNN(cfg)
    if cfg.fast and not is_fake(model.head.weight):  # same bytes either way; fake tensors can't swap
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model.parameters(), cfg)
    return finish(model, cfg, COMPILE_BY_DEFAULT, model.head.weight), optimizer, cross_entropy


def factory(**kwargs: Any) -> tuple[nn.Module, torch.optim.Optimizer, Batch, LossFn]:
    """(model, optimizer, (inputs, targets), loss_fn) for the memory estimator and the worker."""
    cfg = CNNConfig.from_kwargs(**kwargs)
    model, optimizer, loss_fn = build(cfg)
    return model, optimizer, make_batch(cfg, 0), loss_fn
