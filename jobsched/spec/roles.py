"""Per-replica role environment (pure): what a replica of a multi-role gang learns about its role.

Every replica of a job with ``spec.roles`` gets ``JOBSCHED_ROLE`` (the role's name) and
``JOBSCHED_ROLE_INDEX`` (its index within the role, like Volcano's ``VK_TASK_INDEX``); with
``spec.clusterEnv: TF_CONFIG`` (``MX_CONFIG``) also TensorFlow's (MXNet's) cluster spec, as the
training-operator sets it for a TFJob (MXJob). Env values may refer to other variables as ``$(NAME)`` (Kubernetes' dependent-variable
syntax; ``$$`` is a literal ``$``): :func:`expand_refs` resolves them against the replica's final
environment, on every backend alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from jobsched.spec.job import TrainingJobSpec

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
PORTS = {"TF_CONFIG": 2222, "MX_CONFIG": 9091}  # the training-operator's default ports
Address = Callable[[int], tuple[str, int]]  # rank -> (host, port)


def role_env(spec: TrainingJobSpec, rank: int, address: Address) -> dict[str, str]:
    """The role variables of replica ``rank``; ``address(r)``: host and port of replica ``r``."""
    if not spec.roles:
        return {}
    first = 0
    for role in spec.roles:
        if rank < first + role.replicas:
            env = {"JOBSCHED_ROLE": role.name, "JOBSCHED_ROLE_INDEX": str(rank - first)}
            if spec.cluster_env:
                env[spec.cluster_env] = cluster_config(spec, spec.cluster_env, role.name, rank - first, address)
            return env
        first += role.replicas
    return {}


def cluster_config(spec: TrainingJobSpec, var: str, task_type: str, index: int, address: Address) -> str:
    """TF_CONFIG or MX_CONFIG as the training-operator writes it, role names lower-cased as task
    types: ``{"cluster": {type: ["host:port", …]}, "task": {"type", "index"}, "environment": "cloud"}``
    (TF_CONFIG); ``{"cluster": {type: [{"url", "port"}, …]}, "labels": {type: ""}, "task": {…}}``
    (MX_CONFIG)."""
    cluster: dict[str, list[int]] = {}
    first = 0
    for role in spec.roles:
        if role.replicas:
            cluster[role.name.lower()] = list(range(first, first + role.replicas))
        first += role.replicas
    data: dict[str, object] = {"cluster": cluster, "task": {"type": task_type.lower(), "index": index}}
    if var == "TF_CONFIG":
        data["environment"] = "cloud"
    else:
        data["labels"] = {t: "" for t in cluster}
    return _with_addresses(var, data, address)


def readdress(var: str, value: str, address: Address) -> str:
    """A TF_CONFIG or MX_CONFIG with every task's address replaced by ``address(rank)`` (ranks in
    cluster order)."""
    data = json.loads(value)
    rank, cluster = 0, {}
    for task_type, hosts in data.get("cluster", {}).items():
        cluster[task_type] = list(range(rank, rank + len(hosts)))
        rank += len(hosts)
    data["cluster"] = cluster
    return _with_addresses(var, data, address)


def _with_addresses(var: str, data: dict[str, object], address: Address) -> str:
    ranks = data["cluster"]
    assert isinstance(ranks, dict)
    if var == "TF_CONFIG":
        data["cluster"] = {t: [":".join(map(str, address(r))) for r in rs] for t, rs in ranks.items()}
    else:
        data["cluster"] = {t: [dict(zip(("url", "port"), address(r), strict=True)) for r in rs]
                           for t, rs in ranks.items()}
    return json.dumps(data, separators=(",", ":"))


def expand_refs(env: dict[str, str]) -> dict[str, str]:
    """``$(NAME)`` in each value replaced by NAME's value in ``env`` (left as written when NAME is
    unset, as Kubernetes does); ``$$`` becomes ``$``. One pass: no recursion."""
    def one(value: str) -> str:
        if "$" not in value:
            return value
        return _REF.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)

    return {k: one(v) for k, v in env.items()}
