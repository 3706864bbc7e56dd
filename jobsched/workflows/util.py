"""Durations, item naming and the jobsched annotations on Argo templates."""

from __future__ import annotations

import json
from typing import Any

from jobsched.spec.duration import parse_duration as parse_duration  # the one parser

# Template (or workflow) metadata.annotations understood by jobsched.
ANN_REPLICAS = "jobsched.io/replicas"
ANN_QUEUE = "jobsched.io/queue"
ANN_PRIORITY = "jobsched.io/priority"
ANN_MEMORY_POLICY = "jobsched.io/memory-policy"
ANN_MAX_MEMORY = "jobsched.io/max-memory"
ANN_PLACEMENT = "jobsched.io/placement"
ANNOTATIONS = (ANN_REPLICAS, ANN_QUEUE, ANN_PRIORITY, ANN_MEMORY_POLICY, ANN_MAX_MEMORY, ANN_PLACEMENT)


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
