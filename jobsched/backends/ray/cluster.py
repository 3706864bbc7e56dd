"""Ray cluster facts for the backend: connecting, the node list, names and bundles.

Placement pinning: each replica's bundle carries a tiny amount (0.001) of Ray's built-in
``node:<ip>`` resource of the node the scheduling core chose, and, when that IP is shared by
several Ray nodes (several raylets on one host), a ``ray.io/node-id`` bundle label selector as well.
Both are honoured by every placement strategy, so Ray places the bundle exactly where jobsched
decided, or not at all (then ``start`` times out and raises StartError).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobsched.spec.node import GPU_MODEL_LABEL, Node
from jobsched.spec.resources import Resources

NAMESPACE = "jobsched"
NODE_ID_LABEL = "jobsched.io/ray-node-id"
NODE_IP_LABEL = "jobsched.io/ray-node-ip"
STRATEGIES = {"Pack": "PACK", "Spread": "SPREAD", "StrictSpread": "STRICT_SPREAD"}
PIN = 0.001  # of the node:<ip> resource (capacity 1.0 per node)
_BUILTIN = {"CPU", "GPU", "memory", "object_store_memory"}


@dataclass(frozen=True)
class RayNode:
    name: str
    node_id: str
    ip: str
    shared_ip: bool  # another alive Ray node has the same IP


def home_id(home: Path) -> str:
    """A short id of the scheduler's home: Ray names carry it, so two jobsched servers sharing a
    Ray cluster never touch each other's placement groups and actors."""
    return hashlib.sha1(str(Path(home).resolve()).encode()).hexdigest()[:8]


def gang_name(hid: str, job_uid: str, attempt: int) -> str:
    return f"jobsched-{hid}-{job_uid}-a{attempt}"


def actor_name(gang: str, rank: int) -> str:
    return f"{gang}-r{rank}"


def connect(address: str | None, num_cpus: int | None, num_gpus: int | None,
            object_store_memory: int | None, runtime_env: dict[str, Any] | None) -> bool:
    """Connect this process to Ray. Returns True when this call made the connection (and so
    ``close`` should end it). An existing connection in this process is reused."""
    import ray

    if ray.is_initialized():
        return False
    common: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False, "logging_level": "WARNING",
                              "runtime_env": runtime_env}
    if address:  # an existing cluster: its resources are its own
        _token_auth_if_available()
        ray.init(address=address, **common)
    else:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                 object_store_memory=object_store_memory, **common)
    return True


def _token_auth_if_available() -> None:
    """Ray >= 2.5x enables token authentication for an explicit address only when RAY_AUTH_MODE
    says so; like ``address="auto"``, use the token when one is available (RAY_AUTH_TOKEN,
    RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) and the mode is not set explicitly."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def ray_nodes() -> tuple[list[Node], dict[str, RayNode]]:
    """Alive Ray nodes as jobsched nodes (total resources: the scheduling core accounts its own
    gangs), and the name → Ray node map used to pin bundles."""
    import ray

    listed: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    alive = [n for n in listed if n.get("Alive")]
    ips = [n["NodeManagerAddress"] for n in alive]
    hosts = [n.get("NodeManagerHostname") or n["NodeManagerAddress"] for n in alive]
    nodes, index = [], {}
    for n, host in zip(alive, hosts, strict=True):
        nid, ip = n["NodeID"], n["NodeManagerAddress"]
        name = host if hosts.count(host) == 1 else f"{host}-{nid[:8]}"
        res: dict[str, float] = n.get("Resources", {})
        alloc: dict[str, Any] = {"cpu": res.get("CPU", 0), "memory": int(res.get("memory", 0)),
                                 "nvidia.com/gpu": int(res.get("GPU", 0))}
        for key, value in res.items():  # custom resources, for display and node selectors
            if key not in _BUILTIN and not key.startswith(("node:", "accelerator_type:")):
                alloc[f"ray.io/{key}"] = value
        labels = {str(k): str(v) for k, v in (n.get("Labels") or {}).items()}
        labels.update({NODE_ID_LABEL: nid, NODE_IP_LABEL: ip, "kubernetes.io/hostname": name})
        accel = [k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")]
        if accel and alloc["nvidia.com/gpu"]:  # Ray knows the model, not the memory per GPU
            labels.setdefault(GPU_MODEL_LABEL, accel[0])
        nodes.append(Node.model_validate({"name": name, "allocatable": alloc, "labels": labels}))
        index[name] = RayNode(name, nid, ip, ips.count(ip) > 1)
    return nodes, index


def bundle(requests: Resources, node: RayNode) -> tuple[dict[str, float], dict[str, str]]:
    """The Ray bundle for one replica and its label selector (empty unless the IP is ambiguous)."""
    b: dict[str, float] = {f"node:{node.ip}": PIN}
    if requests.cpu_milli:
        b["CPU"] = requests.cpu_milli / 1000
    if requests.memory:
        b["memory"] = float(requests.memory)
    if requests.gpus:
        b["GPU"] = requests.gpus * requests.gpu_milli / 1000 if requests.gpu_milli < 1000 else requests.gpus
    return b, ({"ray.io/node-id": node.node_id} if node.shared_ip else {})


def actor_resources(requests: Resources) -> dict[str, Any]:
    """``.options()`` for the replica actor: exactly the request, taken from its bundle."""
    gpus = requests.gpus * requests.gpu_milli / 1000 if requests.gpu_milli < 1000 else requests.gpus
    return {"num_cpus": requests.cpu_milli / 1000, "num_gpus": gpus, "memory": requests.memory or None}


def placement_groups(prefix: str) -> dict[str, str]:
    """Live (not removed) placement groups whose name starts with ``prefix``: name → state."""
    import ray

    table = ray.util.placement_group_table()
    return {pg["name"]: pg["state"] for pg in table.values()
            if pg.get("name", "").startswith(prefix) and pg.get("state") != "REMOVED"}


def named_actors(prefix: str) -> list[str]:
    import ray

    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a.get("namespace") == NAMESPACE and a["name"].startswith(prefix)]
