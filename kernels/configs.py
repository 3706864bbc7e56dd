"""Hyperparameters of the training kernels, shared by the PyTorch and MXNet versions.

This module imports neither torch nor mxnet: the replica entrypoint parses flags with it, the
memory estimator maps a command line to factory kwargs with it, and the MXNet environment (which
has no torch) builds its models from it.

Every field is a factory kwarg and a command-line flag (``batch_size`` <-> ``--batch-size``).
``from_kwargs`` rejects unknown names and malformed values with a ValueError naming the field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, fields
from typing import Any, Self

OPTIMIZERS = ("adam", "sgd")
DEVICES = ("cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
# torch.compile modes: reduce-overhead captures CUDA graphs (launch-bound steps), max-autotune also
# benchmarks matmul tilings at compile time (minutes), -no-cudagraphs without the graphs.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """Convert a flag string (or a Python value) to the field's declared type."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):  # "bool | None": None passes, else the other type
        if value is None or (isinstance(value, str) and value.lower() in ("none", "default")):
            return None
        return _coerce(name, next(a for a in args if a is not type(None)), value)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        if not items or any(str(i).strip() == "" for i in items):
            raise ValueError(f"{name}: expected a comma-separated list of integers, got {value!r}")
        return tuple(_coerce(name, args[0], i) for i in items)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in _TRUE | _FALSE:
            return str(value).lower() in _TRUE
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected {'an integer' if kind is int else 'a number'}, "
                             f"got {value!r}") from None
    return str(value)


@dataclass(frozen=True)
class Common:
    """Hyperparameters every kernel has."""

    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | sgd
    device: str = "cpu"  # cpu | cuda
    fast: bool = False  # the optimized path (see docs/kernels.md); False: the eager baseline
    compile: bool | None = None  # torch.compile on the fast path; None: the kernel's measured default
    precision: str = "auto"  # auto (bf16 autocast on the fast path on cuda, else fp32) | fp32 | bf16
    seed: int = 0

    kernel = "common"

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Self:
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in known:
                raise ValueError(f"{cls.kernel}: unknown hyperparameter {key!r} "
                                 f"(known: {', '.join(sorted(known))})")
            values[key] = _coerce(key, hints[key], value)
        return cls(**values)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            vals = v if isinstance(v, tuple) else (v,)
            if f.name != "seed" and any(isinstance(x, int | float) and not isinstance(x, bool) and x <= 0
                                        for x in vals):
                raise ValueError(f"{f.name}: must be positive, got {v!r}")
        for name, choices in (("optimizer", OPTIMIZERS), ("device", DEVICES), ("precision", PRECISIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}: must be one of {', '.join(choices)}, got {getattr(self, name)!r}")

    def as_kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MLPConfig(Common):
    input_dim: int = 64
    hidden: tuple[int, ...] = (256, 256)
    classes: int = 10
    lr: float = 1e-2
    kernel = "mlp"


@dataclass(frozen=True)
class CNNConfig(Common):
    image_size: int = 24
    in_channels: int = 3
    channels: tuple[int, ...] = (16, 32)
    classes: int = 10
    batch_size: int = 32
    lr: float = 1e-2
    kernel = "cnn"


@dataclass(frozen=True)
class TransformerConfig(Common):
    vocab: int = 128
    seq_len: int = 64
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    successors: int = 4  # each token of the synthetic Markov language has this many likely successors
    batch_size: int = 16
    lr: float = 3e-3
    compile_mode: str = "default"  # torch.compile mode on the fast path (COMPILE_MODES)
    kernel = "transformer"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode: must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model: must be divisible by heads ({self.heads}), got {self.d_model}")
        if self.successors > self.vocab:
            raise ValueError(f"successors: must not exceed vocab ({self.vocab}), got {self.successors}")


@dataclass(frozen=True)
class LogRegConfig(Common):
    features: int = 128
    batch_size: int = 256
    lr: float = 0.05
    kernel = "logreg"


CONFIGS: dict[str, type[Common]] = {
    "mlp": MLPConfig, "cnn": CNNConfig, "transformer": TransformerConfig, "logreg": LogRegConfig,
}
