"""Training kernels: vectorized PyTorch models with synthetic data, an eager baseline and a fast path.

``kernels.<name>.factory(**kwargs) -> (model, optimizer, (inputs, targets), loss_fn)`` for
name in :data:`NAMES`. Importing this package imports neither torch nor mxnet.
"""

from __future__ import annotations

NAMES = ("mlp", "cnn", "transformer", "logreg")
MXNET_NAMES = ("mlp", "cnn")


def factory_path(name: str) -> str:
    """"kernels.<name>:factory" for a kernel name; ValueError naming the known kernels otherwise."""
    if name not in NAMES:
        raise ValueError(f"kernel: unknown kernel {name!r} (known: {', '.join(NAMES)})")
    return f"kernels.{name}:factory"
