"""MXNet Gluon versions of the MLP and CNN kernels (same architectures and synthetic tasks).

``fast=True`` hybridizes the network (static graph, static memory); ``fast=False`` runs it imperatively,
the baseline. Data come from NumPy generators seeded by (seed, batch index), so a batch is the same in
every process and after a resume; they follow the torch kernels' recipes but not their exact values.
Runs only in the MXNet environment (see kernels/mxnet_compat.py); imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from kernels.configs import CNNConfig, Common, MLPConfig
from kernels.mxnet_compat import import_mxnet

mx = import_mxnet()
gluon, nd = mx.gluon, mx.nd


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index + 1])


def mlp_batch(cfg: MLPConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    task = _rng(cfg.seed, -1)
    w1 = task.standard_normal((cfg.input_dim, 32), dtype=np.float32) / cfg.input_dim**0.5
    w2 = task.standard_normal((32, cfg.classes), dtype=np.float32)
    x = _rng(cfg.seed, index).standard_normal((cfg.batch_size, cfg.input_dim), dtype=np.float32)
    return x, (np.tanh(x @ w1) @ w2).argmax(axis=1).astype(np.float32)


def cnn_batch(cfg: CNNConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    colour = _rng(cfg.seed, -1).random((cfg.classes, cfg.in_channels), dtype=np.float32) * 2 - 1
    g, n, s = _rng(cfg.seed, index), cfg.batch_size, cfg.image_size
    y = g.integers(0, cfg.classes, n)
    angle, freq = math.pi * y / cfg.classes, 2.0 + (y % 3)
    phase = g.random(n) * 2 * math.pi
    coords = np.arange(s, dtype=np.float32) / s
    u, v = coords.reshape(1, s, 1), coords.reshape(1, 1, s)
    wave = np.cos(2 * math.pi * freq.reshape(n, 1, 1) * (np.cos(angle).reshape(n, 1, 1) * u
                                                         + np.sin(angle).reshape(n, 1, 1) * v)
                  + phase.reshape(n, 1, 1))
    clean = colour[y].reshape(n, cfg.in_channels, 1, 1) * wave[:, None]
    noisy = clean + 0.5 * g.standard_normal((n, cfg.in_channels, s, s))
    return noisy.astype(np.float32), y.astype(np.float32)


def _mlp(cfg: MLPConfig) -> Any:
    net = gluon.nn.HybridSequential()
    d_in = cfg.input_dim
    for h in cfg.hidden:
        net.add(gluon.nn.Dense(h, activation="relu", in_units=d_in))
        d_in = h
    net.add(gluon.nn.Dense(cfg.classes, in_units=d_in))
    return net


def _cnn(cfg: CNNConfig) -> Any:
    net = gluon.nn.HybridSequential()
    c_in = cfg.in_channels
    for c in cfg.channels:
        net.add(gluon.nn.Conv2D(c, 3, padding=1, in_channels=c_in, activation="relu"), gluon.nn.MaxPool2D(2))
        c_in = c
    net.add(gluon.nn.GlobalAvgPool2D(), gluon.nn.Flatten(), gluon.nn.Dense(cfg.classes, in_units=c_in))
    return net


Arrays = tuple[np.ndarray, np.ndarray]
MODELS: dict[str, tuple[type[Common], Callable[[Any], Any], Callable[[Any, int], Arrays]]] = {
    "mlp": (MLPConfig, _mlp, mlp_batch), "cnn": (CNNConfig, _cnn, cnn_batch),
}


def config(name: str, **kwargs: Any) -> Common:
    if name not in MODELS:
        raise ValueError(f"kernel: mxnet has kernels {', '.join(MODELS)}, not {name!r}")
    cfg = MODELS[name][0].from_kwargs(**kwargs)
    if cfg.device != "cpu":
        raise ValueError("device: the MXNet kernels run on cpu only (the mxnet wheel is CPU-only)")
    return cfg


def build(name: str, cfg: Common, kvstore: Any = "device") -> tuple[Any, Any, Any]:
    """(net, trainer, loss_fn) for kernel ``name``; ``kvstore`` is a name or an ``mx.kv`` store."""
    mx.random.seed(cfg.seed)
    net = MODELS[name][1](cfg)
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    if cfg.fast:
        net.hybridize(static_alloc=True, static_shape=True)
    params = {"learning_rate": cfg.lr, **({"momentum": 0.9} if cfg.optimizer == "sgd" else {})}
    trainer = gluon.Trainer(net.collect_params(), cfg.optimizer, params, kvstore=kvstore,
                            update_on_kvstore=False)
    return net, trainer, gluon.loss.SoftmaxCrossEntropyLoss()


def start_in_step(trainer: Any, kvstore: Any) -> None:
    """With a distributed kvstore, put the parameters on the server and pull them on every worker
    before any worker pushes a gradient. Gluon does it lazily inside the first ``step``, and there a
    worker's initial pull can be answered after the first gradients were merged for that key: the
    worker then starts from summed gradients instead of weights (its loss read 12 to 27 at step 20 in
    about one run in three on a loaded 2-core machine). Every worker waits for its pulls, then a
    barrier: no gradient is pushed before all workers hold the same weights."""
    if isinstance(kvstore, str):
        return
    if not trainer._kv_initialized:  # Gluon 1.9.1 (the last release) keeps these private
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()
    nd.waitall()
    kvstore._barrier()


def batch(name: str, cfg: Common, index: int) -> tuple[Any, Any]:
    x, y = MODELS[name][2](cfg, index)
    return nd.array(x), nd.array(y)


def train_step(net: Any, trainer: Any, loss_fn: Any, x: Any, y: Any) -> Any:
    """One step; returns the mean loss as an (asynchronous) NDArray."""
    with mx.autograd.record():
        loss = loss_fn(net(x), y)
    loss.backward()
    trainer.step(x.shape[0])
    return loss.mean()


def named_params(net: Any) -> dict[str, Any]:
    """Parameters by structural name ("0.weight"), stable across processes (unlike prefixes)."""
    return dict(net._collect_params_with_prefix())


def param_digest(net: Any) -> str:
    """A fingerprint of the weights (exact: the sum of every parameter, in float64 hex): replicas
    of a ``dist_sync`` job must print the same one at the same step."""
    total = sum(float(p.data().astype("float64").sum().asscalar()) for p in named_params(net).values())
    return float(total).hex()
