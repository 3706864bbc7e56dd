"""The seam between the workflow engine and whatever runs TrainingJobs."""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from jobsched.spec.api import JobStatus


class JobRunner(Protocol):
    def submit(self, manifest: dict[str, Any]) -> str:
        """Submit a TrainingJob manifest; return the job's name."""
        ...

    def status(self, namespace: str, name: str) -> JobStatus: ...

    def logs(self, namespace: str, name: str, attempt: int | None = None) -> str:
        """Rank 0's output of ``attempt`` (the latest when None), without rank prefixes."""
        ...

    def cancel(self, namespace: str, name: str) -> None: ...


class ServiceRunner:
    """A :class:`JobRunner` over the server's ``JobServiceAPI`` (``Runtime.service``)."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.runs_entrypoints = False  # see WorkflowController.for_runtime
        self.resources: Any = None  # Kubernetes object actions for resource steps (Kubernetes backend)

    def submit(self, manifest: dict[str, Any]) -> str:
        return str(self.service.submit(manifest).name)

    def status(self, namespace: str, name: str) -> JobStatus:
        st: JobStatus = self.service.get(namespace, name)
        return st

    def logs(self, namespace: str, name: str, attempt: int | None = None) -> str:
        chunks: list[str] = []
        offset = 0
        for _ in range(10_000):
            text, nxt, _terminal = self.service.logs(namespace, name, rank=0, attempt=attempt,
                                                     offset=offset)
            chunks.append(text)
            if nxt <= offset or not text:
                break
            offset = nxt
        return "".join(chunks)

    def cancel(self, namespace: str, name: str) -> None:
        with contextlib.suppress(Exception):  # already finished or gone: nothing to stop
            self.service.cancel(namespace, name)
