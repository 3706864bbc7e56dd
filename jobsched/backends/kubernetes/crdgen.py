"""CRDs generated from the pydantic models (the single source of truth).

pydantic's JSON schema becomes a *structural* OpenAPI v3 schema: $refs inlined, ``anyOf [T, null]``
turned into ``nullable``, quantities as ``x-kubernetes-int-or-string``, no ``additionalProperties:
false`` (Kubernetes prunes unknown fields; clients that want errors use strict field validation).
Run ``python -m jobsched.backends.kubernetes.crdgen manifests/crds`` to regenerate.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

GROUP = "jobsched.io"
VERSION = "v1alpha1"
# propertyNames (dict-key constraints) has no place in a Kubernetes structural schema; the API checks keys.
_DROP = {"title", "default", "examples", "propertyNames"}
# A non-negative Kubernetes quantity (the API machinery's pattern without the minus sign).
QUANTITY = (r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
            r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _structural({**target, **extra}, defs)
    any_of = node.get("anyOf")
    if any_of is not None:
        kinds = [a for a in any_of if a.get("type") != "null"]
        nullable = len(kinds) < len(any_of)
        types = {a.get("type") for a in kinds}
        if node.get("format") == "duration":  # spec.duration.Duration: "1m30s" or seconds
            out = {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
        elif types <= {"string", "integer", "number"} and len(types) > 1:
            # controller-gen's form for resource.Quantity (the only anyOf a structural schema allows)
            out: dict[str, Any] = {"x-kubernetes-int-or-string": True, "pattern": QUANTITY,
                                   "anyOf": [{"type": "integer"}, {"type": "string"}]}
        elif len(kinds) == 1:
            out = _structural(kinds[0], defs)
        else:
            out = {"x-kubernetes-preserve-unknown-fields": True}
        if nullable:
            out["nullable"] = True
        if "description" in node:
            out["description"] = node["description"]
        return out
    out = {}
    for k, v in node.items():
        if k in _DROP or k == "$defs":
            continue
        if k == "additionalProperties":
            if v is False:
                continue
            if v is True or v == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
                continue
            out[k] = _structural(v, defs)
        elif k == "properties":
            out[k] = {pk: _structural(pv, defs) for pk, pv in v.items()}
        elif k == "const":
            out["enum"] = [v]
        elif k in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(v, bool):
            out["minimum" if k == "exclusiveMinimum" else "maximum"] = v  # OpenAPI 3.0 form
            out[k] = True
        else:
            out[k] = _structural(v, defs)
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def openapi_schema(model: type) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")  # type: ignore[attr-defined]
    defs = schema.pop("$defs", {})
    out = _structural(schema, defs)
    props = out.setdefault("properties", {})
    props.pop("status", None)
    props["status"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    # metadata is validated by the API server itself.
    props["metadata"] = {"type": "object"}
    out.pop("required", None)
    out["required"] = ["spec"]
    return out


def crd(kind: str, plural: str, model: type, short: list[str], columns: list[dict[str, Any]],
        namespaced: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "shortNames": short,
                      "listKind": f"{kind}List", "categories": ["jobsched"]},
            "scope": "Namespaced" if namespaced else "Cluster",
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": openapi_schema(model)},
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
            }],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    from jobsched.spec.job import TrainingJob
    from jobsched.spec.queue import Queue

    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    # Columns read .status, which the scheduler writes with defaults applied (QUEUE is `default`
    # when spec.queue is unset, or the Kueue label's queue) and quantities in Kubernetes notation.
    return {
        "trainingjobs.yaml": crd("TrainingJob", "trainingjobs", TrainingJob, ["tj"], [
            {"name": "Queue", "type": "string", "jsonPath": ".status.queue"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Attempts", "type": "integer", "jsonPath": ".status.attemptCount"},
            {"name": "Memory", "type": "string", "jsonPath": ".status.memory"},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
            age]),
        "queues.yaml": crd("Queue", "queues", Queue, ["jq"], [
            {"name": "Weight", "type": "number", "jsonPath": ".status.weight"},
            {"name": "Pending", "type": "integer", "jsonPath": ".status.pending"},
            {"name": "Admitted", "type": "integer", "jsonPath": ".status.admitted"},
            {"name": "CPU", "type": "string", "jsonPath": ".status.usage.cpu"},
            {"name": "Memory", "type": "string", "jsonPath": ".status.usage.memory"},
            {"name": "GPUs", "type": "string", "jsonPath": ".status.usage.nvidia\\.com/gpu"},
            age], namespaced=False),
    }


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "manifests/crds")
    out.mkdir(parents=True, exist_ok=True)
    for name, obj in all_crds().items():
        text = "# Generated from jobsched.spec by jobsched.backends.kubernetes.crdgen; do not edit.\n"
        (out / name).write_text(text + yaml.safe_dump(obj, sort_keys=False))
        print(out / name)


if __name__ == "__main__":
    main()
