"""A small decoder-only transformer language model on a synthetic Markov language.

Each token of the vocabulary has ``successors`` likely next tokens (uniform among them, 5% noise), so
the loss starts near ln(vocab) and falls towards about ln(successors) as the model learns the table.
The baseline computes attention explicitly (matmul, mask, softmax, matmul); the fast path calls
``scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU) with the same parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from kernels.configs import TransformerConfig
from kernels.torch_common import (
    Batch,
    LossFn,
    amp_dtype,
    autocast,
    compiling,
    cross_entropy,
    device_of,
    finish,
    generator,
    make_optimizer,
)

Config = TransformerConfig
COMPILE_BY_DEFAULT = True  # inductor fuses layer norms, GELU and the optimizer-free elementwise tail


class Block(nn.Module):
    def __init__(self, d: int, heads: int, sdpa: bool) -> None:
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.sdpa:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
            mask = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
            out = scores.masked_fill(mask, float("-inf")).softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TransformerLM(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.blocks = nn.Sequential(*(Block(cfg.d_model, cfg.heads, cfg.fast) for _ in range(cfg.layers)))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        self.amp: torch.dtype | None = amp_dtype(cfg)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        with autocast(tokens.device.type, self.amp):
            return self.head(self.ln_f(self.blocks(self.tok(tokens) + self.pos(positions))))


def make_batch(cfg: TransformerConfig, index: int) -> Batch:
    """Batch ``index``: sequences of the Markov language; targets are the inputs shifted by one."""
    succ = torch.randint(0, cfg.vocab, (cfg.vocab, cfg.successors), generator=generator(cfg.seed, -1))
    g = generator(cfg.seed, index)
    n, length = cfg.batch_size, cfg.seq_len + 1
    choice = torch.randint(0, cfg.successors, (n, length), generator=g)
    noise = torch.randint(0, cfg.vocab, (n, length), generator=g)
    noisy = torch.rand(n, length, generator=g) < 0.05
    cols = [noise[:, 0]]
    for t in range(1, length):  # vectorized over the batch; sequential only along the sequence
        cols.append(torch.where(noisy[:, t], noise[:, t], succ[cols[-1], choice[:, t]]))
    seq = torch.stack(cols, dim=1)
    dev = device_of(cfg)
    return seq[:, :-1].to(dev), seq[:, 1:].to(dev)


def train_flops_per_sample(cfg: TransformerConfig) -> float:
    """Forward+backward FLOPs of one sequence (6 per weight per token plus causal attention)."""
    d, n = cfg.d_model, cfg.seq_len
    weights = cfg.layers * 12 * d * d + d * cfg.vocab
    return 6.0 * weights * n + 6.0 * cfg.layers * n * n * d  # 2 matmuls x 2 (fwd) x 3 (fwd+bwd) / 2 causal


def build(cfg: TransformerConfig) -> tuple[nn.Module, torch.optim.Optimizer, LossFn]:
    torch.manual_seed(cfg.seed)
    with device_of(cfg):
        model = TransformerLM(cfg)
    optimizer = make_optimizer(model.parameters(), cfg)
    loss_fn: LossFn = cross_entropy
    if cfg.device == "cuda" and compiling(cfg, COMPILE_BY_DEFAULT, model.head.weight):
        # Fused upcast + log-softmax + NLL: the bf16 logits are read once instead of being copied to
        # fp32 (batch x seq x vocab x 4 bytes: 2 GiB at batch 16, seq 1024, vocab 32k) and re-read.
        loss_fn = torch.compile(cross_entropy)  # type: ignore[assignment]
    return finish(model, cfg, COMPILE_BY_DEFAULT, model.head.weight, cfg.compile_mode), optimizer, loss_fn


def factory(**kwargs: Any) -> tuple[nn.Module, torch.optim.Optimizer, Batch, LossFn]:
    """(model, optimizer, (inputs, targets), loss_fn) for the memory estimator and the worker."""
    cfg = TransformerConfig.from_kwargs(**kwargs)
    model, optimizer, loss_fn = build(cfg)
    return model, optimizer, make_batch(cfg, 0), loss_fn
