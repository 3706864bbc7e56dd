"""Kubernetes quantities ("500m", "4Gi", "1.5G", 2) parsed exactly.

The parsing itself is the kubernetes client's ``parse_quantity`` (Decimal arithmetic), imported
lazily because importing the client costs ~0.15 s.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

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
    return q


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
