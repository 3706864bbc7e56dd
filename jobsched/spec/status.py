"""The one status enum for jobs, and the reasons an attempt ends."""

from __future__ import annotations

from enum import StrEnum


class JobPhase(StrEnum):
    PENDING = "Pending"
    ADMITTED = "Admitted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    def is_terminal(self) -> bool:
        return self in (JobPhase.SUCCEEDED, JobPhase.FAILED, JobPhase.CANCELLED)


class AttemptReason(StrEnum):
    """Why an attempt ended. The right-sizing policy acts differently on each."""

    COMPLETED = "Completed"  # every replica exited 0
    ERROR = "Error"  # a replica exited non-zero for an ordinary reason
    OOM_KILLED = "OOMKilled"  # container/cgroup limit hit: the kernel OOM killer
    IN_PROGRAM_OOM = "InProgramOOM"  # the program raised MemoryError (host memory) itself
    CUDA_OOM = "CudaOOM"  # the program ran out of GPU memory (torch.cuda.OutOfMemoryError)
    EVICTED = "Evicted"  # node memory pressure: reschedule at the same size
    PREEMPTED = "Preempted"  # a higher-priority gang needed the room
    CANCELLED = "Cancelled"  # the user cancelled
    LOST = "Lost"  # the replica vanished (node loss, scheduler restart found it gone)
    START_FAILED = "StartFailed"  # the backend could not start the gang
    NODE_LOST = "NodeLost"  # the node was deleted while the gang ran
    GANG_STOPPED = "GangStopped"  # this replica was stopped because another replica failed

    def consumes_retry(self) -> bool:
        """Preemption, eviction and node loss are not the job's fault."""
        return self not in (
            AttemptReason.PREEMPTED,
            AttemptReason.EVICTED,
            AttemptReason.NODE_LOST,
            AttemptReason.LOST,
            AttemptReason.COMPLETED,
        )
