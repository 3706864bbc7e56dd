"""Equivalence classes of pending replicas, each with an incremental per-node score cache.

Within one cycle, replicas with the same request, node selector and accepted GPU models see the same
feasible nodes and, under a *row-local* scorer, the same scores: a scorer whose score for a node
depends only on that node's state, the request and fixed per-node data such as the baselines' node
order (``row_local = True`` on the scorer class; not ``random``, whose draws depend on how many rows
are scored, nor jobsched's model-demand cost once pods pin GPU models). For such a class
the cache keeps one score per node (``-inf`` where the replica does not fit) and, before each use,
rescores only the rows the table's journal (``NodeTable.changes``) says changed since: one placement
changes one node, so a placement costs a handful of rows plus one ``argmax`` over the cluster instead
of filtering and scoring every node. The result is the same node, tie for tie, as scoring every
feasible row (``argmax`` over ascending rows takes the first best in both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from jobsched.core.fit import feasible_rows
from jobsched.core.framework import ScorePlugin
from jobsched.core.nodes import NodeTable

if TYPE_CHECKING:
    from jobsched.core.gang import PodGroup

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


@dataclass
class _Class:
    scores: F64  # per row; -inf where a replica of the class does not fit or may not go
    changes: list[int]  # the journal of the table the scores belong to
    pos: int  # how much of it is folded in


class ScoreCache:
    """Score vectors per equivalence class for one table (one cycle); at most ``max_classes``
    (least recently used dropped first), so memory stays bounded by classes x nodes."""

    def __init__(self, scorer: ScorePlugin, max_classes: int = 64) -> None:
        self.scorer = scorer
        self.max_classes = max_classes
        self._classes: dict[tuple[object, ...], _Class] = {}

    def covers(self, group: PodGroup) -> bool:
        """Whether ``group``'s replicas can use the cache (row-local scorer, fixed-size request)."""
        return bool(getattr(self.scorer, "row_local", False)) and not group.request.gpu_share

    def scores(self, table: NodeTable, group: PodGroup, allowed: B) -> F64:
        """The class's current scores over all rows (a view into the cache: do not modify)."""
        req = group.request
        key = (req, tuple(sorted(group.node_selector.items())), group.gpu_models if req.gpus else ())
        c = self._classes.pop(key, None)
        n = len(table)
        if c is None or c.changes is not table.changes or c.scores.size != n:
            if len(self._classes) >= self.max_classes:
                self._classes.pop(next(iter(self._classes)))
            c = _Class(np.full(n, -np.inf), table.changes, 0)
            dirty: npt.NDArray[np.intp] = np.arange(n, dtype=np.intp)
        elif c.pos < len(table.changes):
            dirty = np.fromiter(set(table.changes[c.pos:]), dtype=np.intp)
        else:
            dirty = np.zeros(0, dtype=np.intp)
        self._classes[key] = c
        c.pos = len(table.changes)
        if dirty.size:
            ok = dirty[feasible_rows(table, req, dirty) & allowed[dirty]]
            c.scores[dirty] = -np.inf
            if ok.size:
                c.scores[ok] = self.scorer.score(table, req, ok, group)
        return c.scores
