"""Taints/tolerations and node affinity, as a FilterPlugin over the NodeTable (after kube-scheduler's
TaintToleration and NodeAffinity plugins).

* A node's taints of effect NoSchedule or NoExecute keep a replica off unless it tolerates every one
  of them; PreferNoSchedule taints never filter.
* ``requiredDuringSchedulingIgnoredDuringExecution``: the node must match at least one term; a term
  matches when all its matchExpressions (In, NotIn, Exists, DoesNotExist, Gt, Lt over labels) and
  matchFields (metadata.name In/NotIn) hold. An empty term matches nothing.
* Preferences (``preference``): among the nodes a replica fits, the weights of the
  ``preferredDuringScheduling...`` terms a node matches count for it and untolerated
  PreferNoSchedule taints against it, each scaled to 0..1 and then by PREFERENCE_WEIGHT, added to the
  policy's score. The policies' scores are within a few units, so a preference decides between
  fitting nodes; keeping a gang together (gang.py, 1e3) still comes first.

Masks depend only on labels and taints, which are fixed for a snapshot: each distinct
(tolerations, affinity) is computed once per node set and shared by the table's copies. A job without
tolerations or affinity on a cluster without NoSchedule/NoExecute taints costs one comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from jobsched.core.nodes import NodeTable, Taint

B = npt.NDArray[np.bool_]
Toleration = tuple[str, str, str, str]  # key, operator (Equal | Exists), value, effect ("" = any)
Requirement = tuple[str, str, tuple[str, ...]]  # key, operator, values
FILTERING = ("NoSchedule", "NoExecute")
PREFERENCE_WEIGHT = 10.0


@dataclass(frozen=True, slots=True)
class Term:
    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()


@dataclass(frozen=True, slots=True)
class Constraints:
    """What a gang asks of its nodes beyond nodeSelector: hashable, so masks can be memoized."""

    tolerations: tuple[Toleration, ...] = ()
    required: tuple[Term, ...] | None = None  # None: no required node affinity
    preferred: tuple[tuple[int, Term], ...] = ()  # (weight 1..100, term)

    def __bool__(self) -> bool:
        return bool(self.tolerations) or self.required is not None or bool(self.preferred)


NONE = Constraints()


def from_template(tolerations: Sequence[Mapping[str, Any]], affinity: Mapping[str, Any] | None) -> Constraints:
    """From the template's camelCase tolerations and affinity (already validated by spec)."""
    tol = tuple((str(t.get("key") or ""), str(t.get("operator") or "Equal"), str(t.get("value") or ""),
                 str(t.get("effect") or "")) for t in tolerations)
    node = (affinity or {}).get("nodeAffinity") or {}
    req = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    terms = None
    if req is not None:
        terms = tuple(Term(_reqs(t.get("matchExpressions")), _reqs(t.get("matchFields")))
                      for t in req.get("nodeSelectorTerms") or [])
    preferred = tuple((int(p.get("weight", 1)), Term(_reqs((p.get("preference") or {}).get("matchExpressions")),
                                                     _reqs((p.get("preference") or {}).get("matchFields"))))
                      for p in node.get("preferredDuringSchedulingIgnoredDuringExecution") or [])
    return Constraints(tol, terms, preferred)


def _reqs(items: Iterable[Mapping[str, Any]] | None) -> tuple[Requirement, ...]:
    return tuple((str(r["key"]), str(r["operator"]), tuple(str(v) for v in r.get("values") or []))
                 for r in items or [])


def tolerates(tolerations: Sequence[Toleration], taint: Taint) -> bool:
    """Does one of ``tolerations`` tolerate ``taint`` (Kubernetes' ToleratesTaint)?"""
    key, value, effect = taint
    for t_key, op, t_value, t_effect in tolerations:
        if t_effect and t_effect != effect:
            continue
        if t_key and t_key != key:
            continue
        if op == "Exists" or t_value == value:
            return True
    return False


def untolerated(table: NodeTable, tolerations: tuple[Toleration, ...]) -> tuple[B, Taint | None]:
    """Rows with a NoSchedule/NoExecute taint the tolerations do not tolerate, and one such taint."""
    bad = np.zeros(len(table), dtype=bool)
    first: Taint | None = None
    for taint, rows in _taint_rows(table).items():
        if not tolerates(tolerations, taint):
            bad |= rows
            first = first or taint
    return bad, first


def _taint_rows(table: NodeTable, prefer: bool = False) -> dict[Taint, B]:
    """Each distinct filtering (or, ``prefer``: PreferNoSchedule) taint and the rows that carry it
    (cached with the table)."""
    cache = table.constraint_cache
    got = cache.get("taints")
    if got is None:
        got = ({}, {})
        for i, taints in enumerate(table.taints):
            for t in taints:
                side: dict[Taint, B] = got[1] if t[2] == "PreferNoSchedule" else got[0]
                side.setdefault(t, np.zeros(len(table), dtype=bool))[i] = True
        cache["taints"] = got
    return got[1] if prefer else got[0]


def preference(table: NodeTable, c: Constraints) -> npt.NDArray[np.float64] | None:
    """Per row, what ``c`` prefers (added to the policy's score); None when nothing is preferred."""
    prefer_taints = _taint_rows(table, prefer=True)
    if not c.preferred and not prefer_taints:
        return None
    key = ("preference", c)
    got = table.constraint_cache.get(key)
    if got is None:
        score = np.zeros(len(table), dtype=np.float64)
        total = sum(w for w, _ in c.preferred)
        for weight, term in c.preferred:
            score += weight / total * affinity_mask(table, (term,))
        bad = np.zeros(len(table), dtype=np.float64)
        for taint, rows in prefer_taints.items():
            if not tolerates(c.tolerations, taint):
                bad += rows
        if bad.any():
            score -= bad / bad.max()
        table.constraint_cache[key] = got = score * PREFERENCE_WEIGHT
    return got


def affinity_mask(table: NodeTable, terms: tuple[Term, ...]) -> B:
    mask = np.zeros(len(table), dtype=bool)
    for term in terms:
        if not term.expressions and not term.fields:
            continue  # an empty term matches no node
        m = np.ones(len(table), dtype=bool)
        for req in term.expressions:
            m &= _expression(table, req)
        for key, op, values in term.fields:
            names = (np.isin(np.asarray(table.names, dtype=object), list(values)) if key == "metadata.name"
                     else np.zeros(len(table), dtype=bool))  # spec allows metadata.name only
            m &= names if op == "In" else ~names
        mask |= m
    return mask


def _expression(table: NodeTable, req: Requirement) -> B:
    key, op, values = req
    col = [lb.get(key) for lb in table.labels]
    has = np.fromiter((v is not None for v in col), dtype=bool, count=len(col))
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return ~has
    if op in ("In", "NotIn"):
        inside = np.fromiter((v in values for v in col), dtype=bool, count=len(col))
        return inside if op == "In" else ~inside
    bound = int(values[0])  # Gt/Lt: the label parsed as an integer (spec checked the value)
    out = np.zeros(len(col), dtype=bool)
    for i, v in enumerate(col):
        n = _int(v)
        out[i] = n is not None and (n > bound if op == "Gt" else n < bound)
    return out


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def constraints_mask(table: NodeTable, c: Constraints) -> B | None:
    """Rows that ``c`` allows; None when every row is allowed (nothing to filter)."""
    if c.required is None and not _taint_rows(table):
        return None
    cache = table.constraint_cache
    got = cache.get(c)
    if got is None:
        mask = ~untolerated(table, c.tolerations)[0]
        if c.required is not None:
            mask &= affinity_mask(table, c.required)
        cache[c] = got = mask
    return got


def exclusions(table: NodeTable, c: Constraints, allowed: B) -> dict[str, int]:
    """Why rows are not allowed, kube-scheduler style: {"didn't match node affinity": 3, ...}."""
    out: dict[str, int] = {}
    if not c and not _taint_rows(table):
        return out  # nothing of ours excluded a row: the caller's node selector/GPU model wording
    left = ~allowed
    if c.required is not None:
        miss = left & ~affinity_mask(table, c.required)
        if miss.any():
            out["didn't match the job's node affinity"] = int(miss.sum())
        left &= ~miss
    bad, taint = untolerated(table, c.tolerations)
    if taint is not None and (left & bad).any():
        key, value, effect = taint
        out[f"had untolerated taint {{{key}{'=' + value if value else ''}:{effect}}}"] = int((left & bad).sum())
        left &= ~bad
    if left.any():
        out["node selector/GPU model mismatch"] = int(left.sum())
    return out


class NodeConstraintsFilter:
    """FilterPlugin: taints/tolerations and required node affinity."""

    name = "NodeConstraints"

    def filter(self, table: NodeTable, req: object, group: Any) -> B:
        mask = constraints_mask(table, group.constraints)
        return np.ones(len(table), dtype=bool) if mask is None else mask
