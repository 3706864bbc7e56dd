"""InMemoryServiceDouble: a small in-memory stand-in for JobServiceAPI, used only to test the HTTP
layer (routing, auth, error mapping) in isolation. The real service is exercised end to end in
tests/e2e/test_cli_sdk.py."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from jobsched.server.errors import Conflict, Invalid, NotFound
from jobsched.spec.api import EventInfo, JobList, JobStatus, JobSummary, NodeStatus, QueueStatus, ServerInfo
from jobsched.spec.errors import spec_error_from
from jobsched.spec.job import TrainingJob
from jobsched.spec.queue import Queue
from jobsched.spec.status import JobPhase


class InMemoryServiceDouble:
    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], JobStatus] = {}
        self.queue_names = {"default"}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.log_text = "step 1\nstep 2\n"

    def submit(self, manifest: dict[str, Any]) -> JobStatus:
        try:
            job = TrainingJob.model_validate(manifest)
        except ValidationError as e:
            raise spec_error_from(e) from None
        if job.spec.queue not in self.queue_names:
            raise Invalid(f"spec.queue: queue {job.spec.queue!r} does not exist")
        key = (job.metadata.namespace, job.name)
        if key in self.jobs:
            raise Conflict(f"metadata.name: job {job.key!r} already exists")
        st = JobStatus(name=job.name, namespace=job.metadata.namespace, queue=job.spec.queue,
                       replicas=job.spec.replicas, created_at=1.0,
                       events=[EventInfo(time=1.0, type="Normal", reason="Submitted", message="ok")])
        self.jobs[key] = st
        return st

    def get(self, namespace: str, name: str) -> JobStatus:
        try:
            return self.jobs[(namespace, name)]
        except KeyError:
            raise NotFound(f"job {namespace}/{name} not found") from None

    def list(self, namespace: str | None = None, phase: str | None = None,
             queue: str | None = None) -> list[JobSummary]:
        return [JobSummary(**j.model_dump(include=set(JobSummary.model_fields) - {"attempts"}))
                for j in self.jobs.values() if namespace in (None, j.namespace)
                and queue in (None, j.queue) and phase in (None, j.phase.value)]

    def list_page(self, namespace: str | None = None, phase: str | None = None, queue: str | None = None,
                  limit: int = 500, continue_: str | None = None) -> JobList:
        self.calls.append(("list", (namespace, phase, queue, limit, continue_)))
        items = self.list(namespace, phase, queue)
        start = int(continue_ or 0)
        rest = items[start + limit:]
        return JobList(items=items[start:start + limit], continue_=str(start + limit) if rest else None,
                       remaining=len(rest))

    def cancel(self, namespace: str, name: str) -> JobStatus:
        st = self.get(namespace, name).model_copy(update={"phase": JobPhase.CANCELLED})
        self.jobs[(namespace, name)] = st
        return st

    def events(self, namespace: str, name: str) -> list[EventInfo]:
        return self.get(namespace, name).events

    def logs(self, namespace: str, name: str, rank: int | None = None, attempt: int | None = None,
             offset: int = 0) -> tuple[str, int, bool]:
        self.get(namespace, name)
        self.calls.append(("logs", (rank, attempt, offset)))
        data = self.log_text.encode()[offset:]
        return data.decode(), offset + len(data), True

    def queues(self) -> list[QueueStatus]:
        return [QueueStatus(name=n) for n in sorted(self.queue_names)]

    def apply_queue(self, manifest: dict[str, Any]) -> QueueStatus:
        try:
            q = Queue.model_validate(manifest)
        except ValidationError as e:
            raise spec_error_from(e) from None
        self.queue_names.add(q.name)
        return QueueStatus(name=q.name, weight=q.spec.weight)

    def nodes(self) -> list[NodeStatus]:
        return [NodeStatus(name="local", allocatable={"cpu": "2", "memory": 4 << 30})]

    def info(self) -> ServerInfo:
        return ServerInfo(version="test", backend="double", home="/nowhere", pid=0)
