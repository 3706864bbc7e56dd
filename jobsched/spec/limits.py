"""Bounds on every user input that the specs accept (documented in docs/limits.md).

Each bound is generous: a value beyond it is surely a mistake (or an attack), and accepting it would
only fail later, deeper down (an int64 column in SQLite, a numpy table, ``execve``), as a 500 or a
stuck job. Bounds are checked when a manifest is validated, so the error names the field (HTTP 422,
CLI exit code 2) and nothing is stored.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import AfterValidator, Field

KiB, MiB, GiB, TiB, PiB, EiB = (1 << (10 * i) for i in range(1, 7))
INT64_MAX = 2**63 - 1

# Per replica or per node: memory (and GPU memory, ephemeral storage) at most 1 PiB, CPU at most
# 10^6 cores, at most 1024 GPUs; any other (extended) resource at most 2^53.
MAX_MEMORY = PiB
MAX_CPU_CORES = 10**6
MAX_GPUS = 1024
MAX_EXTENDED = 2**53
# Queue quotas are sums over many jobs: 1024x the per-replica bounds.
QUOTA_FACTOR = 1024
# Every quantity, before unit conversion: a larger number is refused before any arithmetic on it.
MAX_QUANTITY = 2**63

# Priority: like a Kubernetes PriorityClass value (user classes at most 10^9; we allow ±10^9).
MAX_PRIORITY = 10**9
# A byte offset into a log.
MAX_OFFSET = INT64_MAX
# Durations (backoff): at most ~31 years.
MAX_DURATION_S = 10**9

# Strings. Per argument and per environment value as Linux's MAX_ARG_STRLEN (128 KiB); all of the
# environment, and all of command + args, at most 1 MiB (Linux's ARG_MAX is about 2 MiB for both).
MAX_ARG = 128 * KiB
MAX_ARGS = 4096
MAX_ARGV_TOTAL = MiB
MAX_ENV_NAME = 4 * KiB
MAX_ENV_VALUE = 128 * KiB
MAX_ENV_VARS = 4096
MAX_ENV_TOTAL = MiB
MAX_PATH = 4096  # PATH_MAX
MAX_LABEL_KEY = 317  # a 253-character DNS prefix, '/', a 63-character name (Kubernetes)
MAX_LABEL_VALUE = KiB  # Kubernetes allows 63; jobsched is more lenient
MAX_LABELS = 256
MAX_ANNOTATIONS_TOTAL = 256 * KiB  # Kubernetes' TotalAnnotationSizeLimitB
MAX_SHORT = 1 * KiB  # image, queue, family, factory, uid, timestamps, GPU model names
MAX_LIST = 256  # gpuModels and similar short lists
MAX_TTL_SECONDS = 10 * 365 * 86400  # ttlSecondsAfterFinished: ten years


def no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL byte")
    return value


# Strings of bounded length without NUL bytes.
ShortStr = Annotated[str, Field(max_length=MAX_SHORT), AfterValidator(no_nul)]
PathStr = Annotated[str, Field(max_length=MAX_PATH), AfterValidator(no_nul)]
ArgStr = Annotated[str, Field(max_length=MAX_ARG), AfterValidator(no_nul)]
LabelKey = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_KEY), AfterValidator(no_nul)]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE), AfterValidator(no_nul)]
Priority = Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)]
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]


MAX_JSON_DEPTH = 32  # free-form values (rightSizing.factoryKwargs)


def check_json(value: object, max_depth: int = MAX_JSON_DEPTH) -> None:
    """A free-form value is plain JSON: nested at most ``max_depth`` deep, numbers finite. Raises
    ValueError naming the sub-path (``x.y[2]: ...``)."""
    stack: list[tuple[object, str, int]] = [(value, "", 0)]
    while stack:
        v, path, depth = stack.pop()
        where = f"{path}: " if path else ""
        if depth > max_depth:
            raise ValueError(f"{where}nested more than {max_depth} levels deep")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{where}must be a finite number, got {v}")
        if isinstance(v, dict):
            stack.extend((x, f"{path}.{k}" if path else str(k), depth + 1) for k, x in v.items())
        elif isinstance(v, list | tuple):
            stack.extend((x, f"{path}[{i}]", depth + 1) for i, x in enumerate(v))


def check_annotations(values: dict[str, str]) -> dict[str, str]:
    total = sum(len(k) + len(v) for k, v in values.items())
    if total > MAX_ANNOTATIONS_TOTAL:
        raise ValueError(f"annotations total {total} characters, at most {MAX_ANNOTATIONS_TOTAL} "
                         "(256 KiB) allowed")
    return values
