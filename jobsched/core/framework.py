"""Extension points, one small interface each (after kube-scheduler's framework/interface.go).

Every check returns a :class:`Status` whose code has a documented meaning:

* ``SUCCESS`` - the check passed.
* ``UNSCHEDULABLE`` - not now; it may pass later when resources free up. The job stays Pending.
* ``UNRESOLVABLE`` - it can never pass as the cluster is configured (even empty, even with every
  node the provisioner could add). The job is rejected at once with the reason.
* ``ERROR`` - an internal error; the job is requeued.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from jobsched.core.gang import PodGroup
    from jobsched.core.nodes import NodeTable
    from jobsched.spec.resources import Resources


class Code(Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    UNRESOLVABLE = "UnschedulableAndUnresolvable"
    ERROR = "Error"


@dataclass(frozen=True)
class Status:
    code: Code = Code.SUCCESS
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    @classmethod
    def unschedulable(cls, reason: str) -> Status:
        return cls(Code.UNSCHEDULABLE, reason)

    @classmethod
    def unresolvable(cls, reason: str) -> Status:
        return cls(Code.UNRESOLVABLE, reason)


SUCCESS = Status()


class FilterPlugin(Protocol):
    """Narrow the nodes a replica may use. Returns a boolean mask over the table's rows."""

    name: str

    def filter(self, table: NodeTable, req: Resources, group: PodGroup) -> npt.NDArray[np.bool_]: ...


class ScorePlugin(Protocol):
    """Rank feasible nodes for one replica: higher is better. ``rows`` are candidate row indices."""

    name: str

    def score(
        self, table: NodeTable, req: Resources, rows: npt.NDArray[np.intp], group: PodGroup
    ) -> npt.NDArray[np.float64]: ...


class GpuChooser(Protocol):
    """Pick the devices on node ``row`` for a replica (only called when the node fits)."""

    def choose(self, table: NodeTable, row: int, req: Resources) -> tuple[int, ...]: ...
