"""Durations as Go-style strings ("500ms", "1m30s", "2h", and "1d" as Argo accepts) or plain seconds
(1.5, "10"), like Argo's ``retryStrategy.backoff.duration``. The one parser: the spec's backoff and
the workflow engine (deadlines, retry backoff) both use it."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from jobsched.spec.limits import MAX_DURATION_S

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")


def parse_duration(value: Any) -> float:
    """Seconds; ValueError naming the problem for anything else (negative, NaN, unknown unit)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"invalid duration {value!r}: expected seconds or a string like '500ms', '1m30s'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _PART.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos != len(text) or not text:
                raise ValueError(f"invalid duration {value!r}: expected seconds or a string like "
                                 "'500ms', '1m30s', '2h'") from None
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {value!r}: must be a finite time")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"invalid duration {value!r}: must be at most {MAX_DURATION_S} s (~31 years)")
    return seconds


def _validate(value: Any) -> str | int | float:
    parse_duration(value)
    return value if isinstance(value, int | float) else str(value).strip()


Duration = Annotated[
    str | int | float,
    BeforeValidator(_validate),
    PlainSerializer(lambda v: v, return_type=Any),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}], "format": "duration"}),
]


def format_duration(seconds: float) -> str:
    """``0.5s``, ``42s``, ``3m20s``, ``1h5m``."""
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m}m{s}s" if s else f"{m}m"
    h, m = divmod(m, 60)
    return f"{h}h{m}m" if m else f"{h}h"
