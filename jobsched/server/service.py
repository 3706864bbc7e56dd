"""JobService: the application layer behind the HTTP API (FastAPI routes call only this).

All methods are thread-safe. Errors: :class:`jobsched.spec.errors.SpecError` and
:class:`jobsched.server.errors.Invalid` (bad input, 422), ``NotFound`` (404), ``Conflict`` (409),
``TooLarge`` (413).
"""

from __future__ import annotations

from typing import Any, Protocol

from jobsched.spec.api import (
    DryRunResult,
    EventInfo,
    JobList,
    JobStatus,
    JobSummary,
    NodeStatus,
    QueueStatus,
    ServerInfo,
)


class JobServiceAPI(Protocol):
    def submit(self, manifest: dict[str, Any]) -> JobStatus:
        """Validate and store a TrainingJob manifest (dict from YAML/JSON); the job starts Pending."""
        ...

    def dry_run(self, manifest: dict[str, Any]) -> DryRunResult:
        """What submit would do (validation, memory, never-fits, quota); nothing is stored."""
        ...

    def delete(self, namespace: str, name: str) -> JobStatus:
        """Cancel if live, wait until stopped, remove the job and everything it owns."""
        ...

    def get(self, namespace: str, name: str) -> JobStatus: ...

    def list(self, namespace: str | None = None, phase: str | None = None,
             queue: str | None = None) -> list[JobSummary]:
        """Every matching job (all pages)."""
        ...

    def list_page(self, namespace: str | None = None, phase: str | None = None, queue: str | None = None,
                  limit: int = 500, continue_: str | None = None) -> JobList:
        """One page of summaries in creation order; ``continue_``: the previous page's token."""
        ...

    def cancel(self, namespace: str, name: str) -> JobStatus: ...

    def events(self, namespace: str, name: str) -> list[EventInfo]: ...

    def logs(self, namespace: str, name: str, rank: int | None = None, attempt: int | None = None,
             offset: int = 0) -> tuple[str, int, bool]:
        """Log text from byte ``offset`` (all ranks prefixed "[rank N] " when rank is None),
        the next offset to ask for, and whether the job is terminal (for ``logs -f``)."""
        ...

    def queues(self) -> list[QueueStatus]: ...

    def apply_queue(self, manifest: dict[str, Any]) -> QueueStatus: ...

    def nodes(self) -> list[NodeStatus]: ...

    def info(self) -> ServerInfo: ...

    def health(self) -> str | None:
        """None when healthy, else the reason (``/healthz`` answers 503 with it)."""
        ...
