"""Argo ``resource`` templates: the manifest, the action, and the success/failure conditions. Pure.

The action runs against the cluster through the runner's ``resources`` (the Kubernetes backend's
:class:`jobsched.backends.kubernetes.objects.ObjectActions`); elsewhere a workflow with a resource
step is refused at submit, with a hint. Conditions are Argo's: comma-separated requirements, all of
which must hold, in Kubernetes label-selector syntax extended with ``>`` and ``<`` over a dotted path
of the object (``status.succeeded > 2``, ``status.phase in (Failed, Error)``, ``status.x == y``,
``metadata.labels.done``, ``!status.failed``). Output parameters take ``valueFrom.jsonPath``
(``{.metadata.name}``) from the object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

ACTIONS = ("get", "create", "apply", "delete", "replace", "patch")
MERGE_STRATEGIES = ("strategic", "merge", "json")
_REQ = re.compile(r"^\s*(?P<neg>!)?\s*(?P<path>[A-Za-z0-9_.\-/\[\]]+)\s*"
                  r"(?:(?P<op>==|!=|=|>=|<=|>|<|\bnotin\b|\bin\b)\s*(?P<value>.*?))?\s*$")


class ConditionError(ValueError):
    pass


@dataclass(frozen=True)
class Requirement:
    path: list[str]
    op: str  # exists | !exists | == | != | > | < | >= | <= | in | notin
    values: tuple[str, ...]


def parse_condition(text: str) -> list[Requirement]:
    """The requirements of a success/failure condition; ConditionError naming the bad one."""
    out: list[Requirement] = []
    for part in _split(text):
        m = _REQ.match(part)
        if not m or (m.group("neg") and m.group("op")):
            raise ConditionError(f"cannot parse requirement {part.strip()!r} (e.g. 'status.succeeded > 0')")
        path = [p for p in re.split(r"\.|\[|\]", m.group("path")) if p]
        op = m.group("op")
        if op is None:
            out.append(Requirement(path, "!exists" if m.group("neg") else "exists", ()))
            continue
        value = m.group("value").strip()
        if op in ("in", "notin"):
            if not (value.startswith("(") and value.endswith(")")):
                raise ConditionError(f"{part.strip()!r}: {op} takes a list in parentheses, e.g. (a, b)")
            vals = tuple(v.strip() for v in value[1:-1].split(",") if v.strip())
        else:
            if not value:
                raise ConditionError(f"{part.strip()!r}: a value is missing after {op!r}")
            vals = (value,)
        out.append(Requirement(path, "==" if op == "=" else op, vals))
    if not out:
        raise ConditionError("empty condition")
    return out


def _split(text: str) -> list[str]:
    """Top-level commas only: the ones inside ``in (a, b)`` belong to the list."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def holds(reqs: list[Requirement], obj: Any) -> bool:
    return all(_holds(r, obj) for r in reqs)


def _lookup(obj: Any, path: list[str]) -> tuple[bool, Any]:
    for key in path:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
            obj = obj[int(key)]
        else:
            return False, None
    return True, obj


def _holds(r: Requirement, obj: Any) -> bool:
    found, value = _lookup(obj, r.path)
    if r.op in ("exists", "!exists"):
        return found == (r.op == "exists")
    if r.op in ("!=", "notin"):
        return not found or _text(value) not in r.values
    if not found:
        return False
    if r.op in ("==", "in"):
        return _text(value) in r.values
    try:
        a, b = float(value), float(r.values[0])
    except (TypeError, ValueError):
        return False
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[r.op]


def _text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def load_manifest(text: str) -> dict[str, Any]:
    """The manifest as an object with apiVersion, kind and metadata; ValueError naming what is wrong."""
    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(obj, dict):
        raise ValueError("must be one Kubernetes object (a mapping)")
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise ValueError(f"{key}: required")
    if not isinstance(obj.get("metadata", {}), dict):
        raise ValueError("metadata: must be a mapping")
    return obj


@dataclass(frozen=True)
class Target:
    """What kubectl's positional arguments and flags name (``flags: [pod, NAME]``,
    ``[configmap, --selector, k=v]``): a resource type, a name or a label selector, a namespace."""

    type: str | None = None
    name: str | None = None
    selector: str | None = None
    namespace: str | None = None
    ignore_not_found: bool = False
    unknown: tuple[str, ...] = ()


def parse_flags(flags: list[str]) -> Target:
    positional: list[str] = []
    values: dict[str, str] = {}
    unknown: list[str] = []
    ignore = False
    i = 0
    while i < len(flags):
        f = flags[i]
        if f == "--ignore-not-found" or f == "--ignore-not-found=true":
            ignore = True
        elif f in ("--selector", "-l", "--namespace", "-n") and i + 1 < len(flags):
            values[f.lstrip("-")[:1]] = flags[i + 1]
            i += 1
        elif f.startswith(("--selector=", "--namespace=")):
            values[f[2]] = f.split("=", 1)[1]
        elif f.startswith("-"):
            unknown.append(f)
        else:
            positional.append(f)
        i += 1
    unknown += positional[2:]
    return Target(positional[0] if positional else None, positional[1] if len(positional) > 1 else None,
                  values.get("s") or values.get("l"), values.get("n"), ignore, tuple(unknown))


def json_path(obj: Any, path: str) -> str:
    """A Kubernetes jsonPath (``{.metadata.name}``) on ``obj`` (the expression language's
    ``jsonpath``), as Argo's output parameter: a string value as is, anything else as JSON."""
    import json

    from jobsched.workflows.exprfuncs import FuncError, jsonpath

    inner = path.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    try:
        value = jsonpath(obj, inner if inner.startswith("$") else "$" + inner)
    except FuncError:
        raise ValueError(f"jsonPath {path!r}: not in the object") from None
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
