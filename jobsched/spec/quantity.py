"""Kubernetes quantities ("500m", "4Gi", "1.5G", 2) parsed exactly.

The parsing itself is the kubernetes client's ``parse_quantity`` (Decimal arithmetic), imported
lazily because importing the client costs ~0.15 s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from jobsched.spec import limits
from jobsched.spec.units import format_bytes as format_bytes  # re-exported (no pydantic there)
from jobsched.spec.units import format_cpu as format_cpu

CPU = "cpu"
MEMORY = "memory"
GPU = "nvidia.com/gpu"
GPU_MILLI = "jobsched.io/gpu-milli"  # share of one GPU in thousandths (GPU sharing)
GPU_MEMORY = "jobsched.io/gpu-memory"  # memory each GPU (or GPU share) must offer, bytes
KNOWN_RESOURCES = (CPU, MEMORY, GPU, GPU_MILLI, GPU_MEMORY, "ephemeral-storage")
MIN_MEMORY = 2**20  # a memory request or limit below 1Mi is a mistake, never a real size


def parse_quantity(value: Any) -> Decimal:
    """Parse a Kubernetes quantity; raise ValueError naming the problem. Negative is an error."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"invalid quantity {value!r}")
    from kubernetes.utils.quantity import parse_quantity as _k8s_parse

    try:
        q: Decimal = _k8s_parse(value)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, ArithmeticError) as e:
        raise ValueError(f"invalid quantity {value!r}: {e}") from None
    if not q.is_finite():
        raise ValueError(f"invalid quantity {value!r}")
    if q < 0:
        raise ValueError(f"quantity must not be negative, got {value!r}")
    if q > limits.MAX_QUANTITY:
        raise ValueError(f"quantity {_short(value)} is out of range (memory at most 1Pi, cpu at most "
                         "10^6 cores, any quantity below 2^63: docs/limits.md)")
    return q


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# The largest value of each resource per replica or node, in the unit parse_quantity returns (cores,
# bytes, GPUs); see jobsched/spec/limits.py. Anything else (an extended resource): MAX_EXTENDED.
BOUNDS: dict[str, tuple[int, str]] = {
    CPU: (limits.MAX_CPU_CORES, f"{limits.MAX_CPU_CORES} cores"),
    MEMORY: (limits.MAX_MEMORY, "1Pi"), GPU_MEMORY: (limits.MAX_MEMORY, "1Pi"),
    "ephemeral-storage": (limits.MAX_MEMORY, "1Pi"),
    GPU: (limits.MAX_GPUS, str(limits.MAX_GPUS)), GPU_MILLI: (1000, "1000"),
}


def check_bounds(values: Mapping[str, Any], where: str, factor: int = 1) -> None:
    """ValueError ``{where}.{resource}: must be at most ...`` for the first resource in ``values``
    above its bound (times ``factor``, e.g. for queue quotas)."""
    for key, value in values.items():
        bound, text = BOUNDS.get(key, (limits.MAX_EXTENDED, "2^53"))
        if parse_quantity(value) > bound * factor:
            limit = text if factor == 1 else f"{factor} x {text}"
            raise ValueError(f"{where}.{key}: must be at most {limit}, got {_short(value)}")


def _validate_quantity(value: Any) -> str | int | float:
    parse_quantity(value)
    if isinstance(value, (int, float)):
        return value
    return str(value).strip()


Quantity = Annotated[
    str | int | float,
    BeforeValidator(_validate_quantity),
    PlainSerializer(lambda v: v, return_type=Any),
]


def cpu_milli(value: Any) -> int:
    """CPU in millicores, rounded up like Kubernetes does for sub-milli requests."""
    return int(math.ceil(parse_quantity(value) * 1000))


def memory_bytes(value: Any) -> int:
    return int(math.ceil(parse_quantity(value)))


def whole(value: Any, name: str) -> int:
    q = parse_quantity(value)
    if q != q.to_integral_value():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(q)
