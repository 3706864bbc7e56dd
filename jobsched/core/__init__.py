"""The scheduling core: pure functions over an immutable snapshot.

No I/O and no wall clock: callers pass ``now``. The simulator, the local, Kubernetes and Ray
backends all drive :class:`jobsched.core.cycle.Scheduler`.
"""

from jobsched.core.cycle import Admit, CycleResult, Preempt, Reject, Scheduler, Wait
from jobsched.core.gang import Assignment, PodGroup
from jobsched.core.nodes import NodeTable
from jobsched.core.snapshot import QueueInfo, RunningGang, Snapshot

__all__ = [
    "Admit",
    "Assignment",
    "CycleResult",
    "NodeTable",
    "PodGroup",
    "Preempt",
    "QueueInfo",
    "Reject",
    "RunningGang",
    "Scheduler",
    "Snapshot",
    "Wait",
]
