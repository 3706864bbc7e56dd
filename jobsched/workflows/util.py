"""Durations, item naming and the jobsched annotations on Argo templates."""

from __future__ import annotations

import json
import re
from typing import Any

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

# Template (or workflow) metadata.annotations understood by jobsched.
ANN_REPLICAS = "jobsched.io/replicas"
ANN_QUEUE = "jobsched.io/queue"
ANN_PRIORITY = "jobsched.io/priority"
ANN_MEMORY_POLICY = "jobsched.io/memory-policy"
ANN_MAX_MEMORY = "jobsched.io/max-memory"
ANN_PLACEMENT = "jobsched.io/placement"
ANNOTATIONS = (ANN_REPLICAS, ANN_QUEUE, ANN_PRIORITY, ANN_MEMORY_POLICY, ANN_MAX_MEMORY, ANN_PLACEMENT)


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``"30"``, ``"1m30s"``, ``"2h"``, ``"500ms"``; ValueError if malformed."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if text.startswith("-"):
        raise ValueError(f"duration must not be negative, got {value!r}")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {value!r} (e.g. 30, \"30s\", \"1m30s\", \"2h\")")
    return total


def item_text(item: Any) -> str:
    """``{{item}}``: scalars as they are, maps and lists as compact JSON."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, (dict, list)):
        return json.dumps(item, separators=(",", ":"), sort_keys=True)
    return str(item)


def item_label(index: int, item: Any) -> str:
    """Argo's loop child suffix: ``(0:foo)`` or ``(1:a:1,b:2)`` for maps."""
    if isinstance(item, dict):
        inner = ",".join(f"{k}:{item_text(v)}" for k, v in sorted(item.items()))
    else:
        inner = item_text(item)
    return f"({index}:{inner})"
