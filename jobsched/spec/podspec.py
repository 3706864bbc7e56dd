"""Pod-spec fields of a TrainingJob's template (tolerations, affinity, volumes...), checked against
the Kubernetes client's own models rather than hand-written copies.

Each value stays a camelCase dict (what the pod gets), normalised by the model: unknown fields,
wrong types and missing required fields are errors naming the path (``tolerations[0].effect``).
The client is imported only when such a field is given. Its models are pydantic from kubernetes 35
on; with an older client the same paths are checked by walking the models' ``openapi_types``.
jobsched itself interprets tolerations and node affinity (core/constraints.py), so their operators
and effects are checked here too.
"""

from __future__ import annotations

import functools
from typing import Any

TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
_PRIMITIVES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,),
                                            "float": (int, float), "object": (object,), "datetime": (str,)}


def _models() -> Any:
    import kubernetes.client.models as models

    return models


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def normalise(value: Any, kind: str, field: str) -> Any:
    """``value`` checked as Kubernetes type ``kind`` ("V1Toleration", "list[V1Volume]"), returned
    as camelCase JSON. Raises ValueError naming ``field`` and the path inside it."""
    models = _models()
    many = kind.startswith("list[")
    cls = getattr(models, kind[5:-1] if many else kind)
    if hasattr(cls, "model_validate"):  # pydantic models (kubernetes >= 35)
        from pydantic import ValidationError

        try:
            obj = _adapter(kind).validate_python(value)
        except ValidationError as e:
            err = e.errors()[0]
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].lower()
            raise ValueError(f"{field}{_where(tuple(err['loc']))}: {msg}") from None
        items: list[Any] = obj if many else [obj]
        dumped = [o.model_dump(by_alias=True, exclude_none=True, mode="json") for o in items]
        return dumped if many else dumped[0]
    _walk(models, value, kind, field)  # pragma: no cover - older clients
    return value  # pragma: no cover


@functools.cache
def _adapter(kind: str) -> Any:
    """A pydantic TypeAdapter for ``kind`` (built once: building one takes milliseconds)."""
    from pydantic import TypeAdapter

    many = kind.startswith("list[")
    cls = getattr(_models(), kind[5:-1] if many else kind)
    return TypeAdapter(list[cls] if many else cls)  # type: ignore[valid-type]


def _walk(models: Any, value: Any, kind: str, path: str) -> None:  # pragma: no cover - older clients
    if kind.startswith("list["):
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list")
        for i, v in enumerate(value):
            _walk(models, v, kind[5:-1], f"{path}[{i}]")
    elif kind.startswith("dict("):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected a mapping")
        for k, v in value.items():
            _walk(models, v, kind[5:-1].split(", ", 1)[1], f"{path}.{k}")
    elif kind in _PRIMITIVES:
        if not isinstance(value, _PRIMITIVES[kind]) or (kind == "int" and isinstance(value, bool)):
            raise ValueError(f"{path}: expected {kind}, got {type(value).__name__}")
    else:
        cls = getattr(models, kind)
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected a mapping")
        by_json = {j: p for p, j in cls.attribute_map.items()}
        for k, v in value.items():
            if k not in by_json:
                raise ValueError(f"{path}.{k}: unknown field")
            if v is not None:
                _walk(models, v, cls.openapi_types[by_json[k]], f"{path}.{k}")


def check_tolerations(tolerations: list[dict[str, Any]]) -> None:
    for i, t in enumerate(tolerations):
        op = t.get("operator", "Equal")
        if op not in TOLERATION_OPERATORS:
            raise ValueError(f"tolerations[{i}].operator: {op!r} is not one of {', '.join(TOLERATION_OPERATORS)}")
        if t.get("effect") and t["effect"] not in TAINT_EFFECTS:
            raise ValueError(f"tolerations[{i}].effect: {t['effect']!r} is not one of {', '.join(TAINT_EFFECTS)}")
        if op == "Exists" and t.get("value"):
            raise ValueError(f"tolerations[{i}].value: must be empty when operator is Exists")
        if not t.get("key") and op != "Exists":
            raise ValueError(f"tolerations[{i}].operator: must be Exists when key is empty")


def check_affinity(affinity: dict[str, Any]) -> None:
    node = affinity.get("nodeAffinity") or {}
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = [(f"nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}]", t)
             for i, t in enumerate(required.get("nodeSelectorTerms") or [])]
    preferred = node.get("preferredDuringSchedulingIgnoredDuringExecution") or []
    for i, p in enumerate(preferred):
        if not isinstance(p.get("weight"), int) or not 1 <= p["weight"] <= 100:
            raise ValueError(f"affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}].weight: "
                             f"must be from 1 to 100, got {p.get('weight')}")
    terms += [(f"nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference", p.get("preference"))
              for i, p in enumerate(preferred)]
    for where, term in terms:
        for kind in ("matchExpressions", "matchFields"):
            for j, req in enumerate((term or {}).get(kind) or []):
                _check_requirement(f"affinity.{where}.{kind}[{j}]", req, kind == "matchFields")


def _check_requirement(where: str, req: dict[str, Any], field: bool) -> None:
    op, values = req.get("operator"), req.get("values") or []
    if op not in SELECTOR_OPERATORS:
        raise ValueError(f"{where}.operator: {op!r} is not one of {', '.join(SELECTOR_OPERATORS)}")
    if field and (req.get("key") != "metadata.name" or op not in ("In", "NotIn")):
        raise ValueError(f"{where}: matchFields supports only key metadata.name with In or NotIn")
    if op in ("In", "NotIn") and not values:
        raise ValueError(f"{where}.values: must be non-empty for {op}")
    if op in ("Exists", "DoesNotExist") and values:
        raise ValueError(f"{where}.values: must be empty for {op}")
    if op in ("Gt", "Lt") and (len(values) != 1 or not _is_int(values[0])):
        raise ValueError(f"{where}.values: {op} needs exactly one integer value")


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True
