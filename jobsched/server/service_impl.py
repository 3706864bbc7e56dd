"""JobService: the real implementation of JobServiceAPI over the store, controller and backend."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jobsched.backends.base import Backend
from jobsched.server import convert, job_admin, paging
from jobsched.server.errors import Conflict, Invalid, NotFound, TooLarge
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
from jobsched.spec.errors import SpecError, format_validation_error
from jobsched.spec.job import MemoryPolicy, TrainingJob
from jobsched.spec.quantity import format_bytes
from jobsched.spec.queue import Queue
from jobsched.spec.resources import Resources
from jobsched.spec.status import JobPhase
from jobsched.store import JobRow, Store
from jobsched.version import __version__

LIVE = (JobPhase.PENDING.value, JobPhase.ADMITTED.value, JobPhase.RUNNING.value)
MAX_MANIFEST_BYTES = 1 << 20  # default (the body cap's); JOBSCHED_MAX_MANIFEST_BYTES or Runtime(max_manifest_bytes=)


def manifest_limit(configured: int | None = None) -> int:
    if configured is not None:
        return configured
    raw = os.environ.get("JOBSCHED_MAX_MANIFEST_BYTES", "")
    try:
        return int(raw) if raw else MAX_MANIFEST_BYTES
    except ValueError:
        raise ValueError(f"JOBSCHED_MAX_MANIFEST_BYTES: expected a number of bytes, got {raw!r}") from None


def check_manifest_size(manifest: Any, limit: int) -> None:
    """A manifest over ``limit`` bytes (as compact JSON) is refused before it is parsed or stored:
    every later read of the job would pay for it."""
    size = len(json.dumps(manifest, separators=(",", ":"), ensure_ascii=False, default=str).encode())
    if size > limit:
        raise TooLarge(f"manifest: {size} bytes is over the limit of {limit} bytes "
                       "(JOBSCHED_MAX_MANIFEST_BYTES on the server); keep data out of the manifest")


def parse_job(manifest: Any) -> tuple[TrainingJob, list[str]]:
    """Validate a job manifest: a TrainingJob, or a kind converted to one (spec/sources.py: Kubeflow,
    batch/v1 Job, Pod, Volcano Job); any other kind is refused with the list of accepted kinds."""
    from jobsched.spec.sources import to_training_job

    return to_training_job(manifest)


def check_entrypoints(job: TrainingJob, backend: str) -> None:
    """Only the Kubernetes backend can run an image's entrypoint: elsewhere a command is required."""
    missing = job.spec.without_command()
    if missing and backend != "kubernetes":
        raise Invalid(f"{missing[0]}: no command (the image's entrypoint would run), which only the "
                      f"Kubernetes backend can do; this server runs the {backend} backend: set `command`, "
                      "or run it on Kubernetes")


class JobService:
    def __init__(self, store: Store, backend: Backend, home: str, wake: Callable[[], None],
                 clock: Callable[[], float], max_manifest_bytes: int | None = None) -> None:
        self.store, self.backend, self.home, self.wake, self.clock = store, backend, home, wake, clock
        self.max_manifest_bytes = manifest_limit(max_manifest_bytes)
        self.on_submitted: list[Callable[[dict[str, Any]], None]] = []
        self.health_checks: list[Callable[[], str | None]] = [store.check]
        self.controller: Any = None  # set by the Runtime: the dry run asks it for a snapshot

    # jobs -------------------------------------------------------------------------------------
    def submit(self, manifest: dict[str, Any]) -> JobStatus:
        job, warnings = parse_job(manifest)  # a field beyond its bound is a 422 naming it (spec/limits.py)
        if self.backend.name != "kubernetes":  # one warning for the pod fields only Kubernetes acts on
            ignored = [f"template.{k}" for k in job.spec.template.kubernetes_only()]
            ignored += ["ttlSecondsAfterFinished"] if job.spec.ttl_seconds_after_finished is not None else []
            if ignored:
                warnings = [*warnings, f"spec.{', spec.'.join(ignored)}: Kubernetes pod settings, not acted on "
                                       f"by the {self.backend.name} backend (ignored)"]
        check_entrypoints(job, getattr(self.backend, "name", "local"))
        check_manifest_size(manifest, self.max_manifest_bytes)  # then the whole: 413
        job_admin.pick_name(job, lambda ns, n: self.store.job(ns, n) is not None)
        queues = self.store.queues()
        if job.spec.queue not in queues:
            raise Invalid(f"spec.queue: queue {job.spec.queue!r} does not exist "
                          f"(known: {', '.join(sorted(queues))})")
        if self.store.job(job.metadata.namespace, job.name) is not None:
            raise Conflict(f"metadata.name: job {job.key!r} already exists")
        declared = job.requests().memory
        auto = job.spec.memory_policy is MemoryPolicy.AUTO
        now = self.clock()
        sizing: dict[str, Any] = {"declared_memory": declared or None, "chosen_memory": declared or None,
                                  "why": "declared" if not auto else "waiting for the memory estimate"}
        memory, defaulted = declared, None
        if not declared:  # no memory request: the queue's default request and limit
            memory = Queue.model_validate(queues[job.spec.queue]).default_memory_bytes()
            defaulted = (f"no memory request: using queue {job.spec.queue}'s default "
                         f"{format_bytes(memory)} (request and limit)")
            sizing.update(default_memory=memory, chosen_memory=memory,
                          why=f"queue {job.spec.queue} defaultMemory" if not auto else sizing["why"])
        row = JobRow(uid=str(uuid.uuid4()), namespace=job.metadata.namespace, name=job.name,
                     manifest=job.to_manifest(), queue=job.spec.queue, priority=job.spec.priority,
                     phase=JobPhase.PENDING.value, reason="EstimatingMemory" if auto else None,
                     message=None, created_at=now, admitted_at=None, finished_at=None, family=job.family(),
                     memory=memory, sizing=sizing, sizing_ready=not auto, retries_used=0,
                     cancel_requested=False, cost=0.0)
        def write(c: sqlite3.Connection) -> None:
            self.store.insert_job(row, conn=c)
            self.store.add_event(row.uid, now, "Normal", "Submitted",
                                 f"queue {job.spec.queue}, {job.spec.replicas} replica(s), "
                                 f"memoryPolicy {job.spec.memory_policy.value}", conn=c)
            for w in warnings:
                self.store.add_event(row.uid, now, "Warning", "NotHonoured", w, conn=c)
            if defaulted:
                self.store.add_event(row.uid, now, "Warning", "DefaultMemory", defaulted, conn=c)

        try:  # one transaction (shared with concurrent submissions: one fsync for all of them);
            self.store.grouped(write)  # on a full disk (StoreFull, 507) nothing of the job is stored
        except sqlite3.IntegrityError as e:  # the UNIQUE constraint raced with another submit
            if "UNIQUE" in str(e):
                raise Conflict(f"metadata.name: job {job.key!r} already exists") from None
            raise
        for hook in self.on_submitted:
            hook(row.manifest)
        # The job as stored (Pending): the controller, woken now, may admit it at once.
        status = convert.job_status(self.store, row, with_manifest=True, now=now)
        self.wake()
        return status

    def dry_run(self, manifest: dict[str, Any]) -> DryRunResult:
        """Validate and size the job and run one scheduling cycle for it alone; store nothing."""
        job, warnings = parse_job(manifest)
        check_entrypoints(job, getattr(self.backend, "name", "local"))
        return job_admin.dry_run(self.store, self.controller, job, warnings, self.clock())

    def delete(self, namespace: str, name: str) -> JobStatus:
        """Cancel (if live), wait for the replicas to stop, then remove the job and what it owns."""
        final = job_admin.stop(self.store, self._row(namespace, name), self.wake)
        if final is None:
            raise NotFound(f"job {namespace}/{name} not found")
        st = convert.job_status(self.store, final, with_manifest=True, now=self.clock())
        job_admin.remove(self.store, self.backend, Path(self.home), final)
        return st

    def _row(self, namespace: str, name: str) -> JobRow:
        row = self.store.job(namespace, name)
        if row is None:
            raise NotFound(f"job {namespace}/{name} not found")
        return row

    def get(self, namespace: str, name: str) -> JobStatus:
        row = self._row(namespace, name)
        timelines = self.store.timelines(row.uid)
        live = getattr(self.backend, "memory_timelines", None)
        if live is not None:  # attempts still running: what their shims have sampled so far
            for att in self.store.attempts(row.uid):
                if att.state != "ended" and att.idx not in timelines:
                    timelines[att.idx] = live(row.key, att.idx)
        return convert.job_status(self.store, row, with_manifest=True, timelines=timelines, now=self.clock())

    def list_page(self, namespace: str | None = None, phase: str | None = None, queue: str | None = None,
                  limit: int = paging.DEFAULT_PAGE, continue_: str | None = None) -> JobList:
        """One page of job summaries (see paging.py); ``continue_`` from the previous page."""
        if phase is not None and phase not in {p.value for p in JobPhase}:
            raise Invalid(f"phase: unknown phase {phase!r}")
        paging.check_limit(limit)
        filters = (namespace, phase, queue)
        after = paging.decode(continue_, filters) if continue_ else None
        rows, remaining = self.store.job_page(phases=(phase,) if phase else None, namespace=namespace,
                                              queue=queue, limit=limit, after=after)
        return paging.page(rows, remaining, filters)

    def list(self, namespace: str | None = None, phase: str | None = None,
             queue: str | None = None) -> list[JobSummary]:
        """Every matching job, page by page."""
        out: list[JobSummary] = []
        token: str | None = None
        while True:
            page = self.list_page(namespace, phase, queue, paging.MAX_PAGE, token)
            out += page.items
            token = page.continue_
            if token is None:
                return out

    def cancel(self, namespace: str, name: str) -> JobStatus:
        row = self._row(namespace, name)
        if row.phase in LIVE and not row.cancel_requested:
            with self.store.tx() as c:
                self.store.update_job(row.uid, conn=c, cancel_requested=True)
                self.store.add_event(row.uid, self.clock(), "Normal", "CancelRequested", "cancel requested",
                                     conn=c)
            self.wake()
        return self.get(namespace, name)

    def events(self, namespace: str, name: str) -> list[EventInfo]:
        return self.get(namespace, name).events

    def logs(self, namespace: str, name: str, rank: int | None = None, attempt: int | None = None,
             offset: int = 0) -> tuple[str, int, bool]:
        row = self._row(namespace, name)
        atts = self.store.attempts(row.uid)
        terminal = JobPhase(row.phase).is_terminal()
        if not atts:
            return "", offset, terminal
        att = atts[-1] if attempt is None else next((a for a in atts if a.idx == attempt), None)
        if att is None:
            raise NotFound(f"job {namespace}/{name} has no attempt {attempt}")
        paths = self.backend.log_paths(row.key, att.idx)
        if not paths:  # no log files (Kubernetes): ask the backend for each replica's log
            ranks = [rank] if rank is not None else list(range(len(att.assignments)))
            texts = [self.backend.read_logs(row.key, att.idx, r) for r in ranks]
            if len(ranks) > 1:
                texts = ["".join(f"[rank {r}] {ln}" for ln in t.splitlines(keepends=True))
                         for r, t in zip(ranks, texts, strict=True)]
            text = "".join(texts)
            return text[offset:], len(text), terminal
        if rank is not None:
            if rank not in paths:
                raise NotFound(f"job {namespace}/{name} attempt {att.idx} has no replica {rank}")
            data = _read_from(paths[rank], offset)
            return data.decode(errors="replace"), offset + len(data), terminal
        # All ranks: the cursor packs each rank's byte offset in 40 bits.
        out, cursor = [], 0
        for r, path in paths.items():
            start = (offset >> (40 * r)) & ((1 << 40) - 1)
            data = _read_from(path, start)
            text = data.decode(errors="replace")
            if len(paths) > 1:
                text = "".join(f"[rank {r}] {line}" for line in text.splitlines(keepends=True))
            out.append(text)
            cursor |= (start + len(data)) << (40 * r)
        return "".join(out), cursor, terminal

    # queues, nodes, info ---------------------------------------------------------------------
    def queues(self) -> list[QueueStatus]:
        jobs = self.store.jobs(phases=LIVE)
        out = []
        for name, m in sorted(self.store.queues().items()):
            qobj = Queue.model_validate(m)
            mine = [j for j in jobs if j.queue == name]
            running = [j for j in mine if j.phase != JobPhase.PENDING.value]
            usage = Resources()
            for j in running:
                usage = usage + convert.request_of(j).scaled(int(j.manifest["spec"].get("replicas", 1)))
            out.append(QueueStatus(name=name, weight=qobj.spec.weight, quota=dict(qobj.spec.quota),
                                   default_memory=qobj.default_memory_bytes(),
                                   usage={"cpu": usage.cpu_milli, "memory": usage.memory,
                                          "nvidia.com/gpu": usage.gpus},
                                   pending=len(mine) - len(running), running=len(running)))
        return out

    def apply_queue(self, manifest: dict[str, Any]) -> QueueStatus:
        try:
            qobj = Queue.model_validate(manifest)
        except ValidationError as e:
            raise SpecError(format_validation_error(e)) from None
        self.store.put_queue(qobj.name, qobj.to_manifest())
        self.wake()
        return next(qs for qs in self.queues() if qs.name == qobj.name)

    def nodes(self) -> list[NodeStatus]:
        live = self.store.live_attempts()
        used: dict[str, Resources] = {}
        for a in live:
            req = Resources.from_dict(a.requests)
            for r, node, _ in a.assignments:  # a GPU share counts as its share of a GPU
                rep = next((x for x in a.launch.get("replicas", []) if x.get("rank") == r), None)
                got = Resources.from_dict(rep["requests"]) if rep else req
                used[node] = used.get(node, Resources()) + got
        enforcement = self.backend.enforcement()
        note_fn = getattr(self.backend, "gpu_note", None)
        note = (note_fn() if note_fn is not None else "") or None
        return [NodeStatus(name=n.name, allocatable=dict(n.allocatable), held=dict(n.held), labels=dict(n.labels),
                           gpu_model=n.gpu_model or None, gpu_memory=n.gpu_memory_bytes or None,
                           gpu_note=note if not n.allocatable_vector().gpus else None,
                           unschedulable=n.unschedulable, enforcement=enforcement,
                           allocated={"cpu": used.get(n.name, Resources()).cpu_milli,
                                      "memory": used.get(n.name, Resources()).memory,
                                      "nvidia.com/gpu": used.get(n.name, Resources()).gpus,
                                      "jobsched.io/gpu-milli": _gpu_milli(used.get(n.name))})
                for n in self.backend.nodes()]

    def health(self) -> str | None:
        """None when healthy; else why not (the store fails a read, the disk is full, the
        controller keeps failing). ``health_checks`` are wired by the Runtime."""
        reasons = [why for why in (check() for check in self.health_checks) if why]
        return "; ".join(reasons) or None

    def info(self) -> ServerInfo:
        return ServerInfo(version=__version__, backend=self.backend.name, home=str(self.home), pid=os.getpid(),
                          enforcement=self.backend.enforcement())


def _gpu_milli(r: Resources | None) -> int:
    return 0 if r is None else r.gpu_total_milli


def _read_from(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            if offset >= os.fstat(f.fileno()).st_size:  # at or past the end (seek may refuse it)
                return b""
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""
