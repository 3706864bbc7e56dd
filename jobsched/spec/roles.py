"""Per-replica role environment (pure): what a replica of a multi-role gang learns about its role.

Every replica of a job with ``spec.roles`` gets ``JOBSCHED_ROLE`` (the role's name) and
``JOBSCHED_ROLE_INDEX`` (its index within the role, like Volcano's ``VK_TASK_INDEX``); with
``spec.clusterEnv: TF_CONFIG`` also TensorFlow's cluster spec, as the training-operator sets it for a
TFJob. Env values may refer to other variables as ``$(NAME)`` (Kubernetes' dependent-variable
syntax; ``$$`` is a literal ``$``): :func:`expand_refs` resolves them against the replica's final
environment, on every backend alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from jobsched.spec.job import TrainingJobSpec

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
TF_PORT = 2222  # the training-operator's default TFJob port


def role_env(spec: TrainingJobSpec, rank: int, address: Callable[[int], str]) -> dict[str, str]:
    """The role variables of replica ``rank``; ``address(r)``: host:port of replica ``r``."""
    if not spec.roles:
        return {}
    first = 0
    for role in spec.roles:
        if rank < first + role.replicas:
            env = {"JOBSCHED_ROLE": role.name, "JOBSCHED_ROLE_INDEX": str(rank - first)}
            if spec.cluster_env == "TF_CONFIG":
                env["TF_CONFIG"] = tf_config(spec, role.name, rank - first, address)
            return env
        first += role.replicas
    return {}


def tf_config(spec: TrainingJobSpec, task_type: str, index: int, address: Callable[[int], str]) -> str:
    """TF_CONFIG as the training-operator writes it: ``{"cluster": {type: [host:port...]}, "task":
    {"type", "index"}, "environment": "cloud"}``, role names lower-cased as task types."""
    cluster: dict[str, list[str]] = {}
    first = 0
    for role in spec.roles:
        if role.replicas:
            cluster[role.name.lower()] = [address(first + i) for i in range(role.replicas)]
        first += role.replicas
    return json.dumps({"cluster": cluster, "task": {"type": task_type.lower(), "index": index},
                       "environment": "cloud"}, separators=(",", ":"))


def readdress_tf_config(value: str, address: Callable[[int], str]) -> str:
    """A TF_CONFIG with every task's address replaced by ``address(rank)`` (ranks in cluster order)."""
    data = json.loads(value)
    rank = 0
    for task_type, hosts in data.get("cluster", {}).items():
        data["cluster"][task_type] = [address(rank + i) for i in range(len(hosts))]
        rank += len(hosts)
    return json.dumps(data, separators=(",", ":"))


def expand_refs(env: dict[str, str]) -> dict[str, str]:
    """``$(NAME)`` in each value replaced by NAME's value in ``env`` (left as written when NAME is
    unset, as Kubernetes does); ``$$`` becomes ``$``. One pass: no recursion."""
    def one(value: str) -> str:
        if "$" not in value:
            return value
        return _REF.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)

    return {k: one(v) for k, v in env.items()}
