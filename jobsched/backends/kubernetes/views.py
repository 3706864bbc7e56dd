"""Reading the informers' plain-dict objects (the API server's JSON, camelCase keys)."""

from __future__ import annotations

import json
from typing import Any


def node_ready(node: dict[str, Any]) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def node_digest(node: dict[str, Any]) -> tuple[Any, ...]:
    """What the scheduler reads from a node: heartbeats leave it unchanged."""
    st, md = node.get("status") or {}, node["metadata"]
    return (str(sorted((st.get("allocatable") or {}).items())), str(sorted((md.get("labels") or {}).items())),
            bool((node.get("spec") or {}).get("unschedulable")), node_ready(node),
            (md.get("annotations") or {}).get("jobsched.io/price-per-hour"))


def pod_requests(pod: dict[str, Any]) -> tuple[int, int, int]:
    """(cpu milli, memory bytes, GPUs) a pod's containers request (a limit stands in for a
    missing request, as the API server defaults it)."""
    from jobsched.spec import quantity as q

    cpu = mem = gpu = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        req = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        cpu += q.cpu_milli(req["cpu"]) if "cpu" in req else 0
        mem += q.memory_bytes(req["memory"]) if "memory" in req else 0
        gpu += q.whole(req["nvidia.com/gpu"], "nvidia.com/gpu") if "nvidia.com/gpu" in req else 0
    return cpu, mem, gpu


def to_model(api_client: Any, obj: dict[str, Any], kind: str) -> Any:
    """The generated client's model (e.g. ``V1Pod``) of one plain-dict object: only where a reader
    needs it, never for every watch event."""
    return api_client.deserialize(json.dumps(obj), kind, "application/json")
