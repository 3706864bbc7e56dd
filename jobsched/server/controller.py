"""The controller: the impure loop around the pure core.

Each tick: (0) record the binds that finished since the last tick and unreserve those past their
timeout, (1) apply replica events from the backend, (2) carry out cancellations, (3) build a
snapshot and run one scheduling cycle, (4) carry out its decisions: assume in the store first, then
hand the start to the binder's workers (``binder.py``); a failed start is unreserved and requeued on
a later tick. Side effects live in the backend only, called here and from the binder's workers.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from jobsched.backends.base import Backend, GangLaunch, ReplicaLaunch
from jobsched.core import Admit, Preempt, Reject, Scheduler, Snapshot, Wait
from jobsched.core.nodes import NodeTable
from jobsched.core.snapshot import QueueInfo
from jobsched.server import convert
from jobsched.server.binder import Binder
from jobsched.server.burst import BurstRoom
from jobsched.server.gpu_env import mps_running, replica_gpu
from jobsched.server.lifecycle import FAILURES, Lifecycle
from jobsched.server.metrics import Metrics
from jobsched.server.recovery import Recovery
from jobsched.spec import roles
from jobsched.spec.node import Node
from jobsched.spec.quantity import format_bytes
from jobsched.spec.queue import Queue
from jobsched.spec.resources import Resources
from jobsched.spec.status import AttemptReason, JobPhase
from jobsched.store import AttemptRow, JobRow, Store

log = logging.getLogger("jobsched.controller")
SCHEDULE_EVERY = 2.0  # s: a cycle at least this often, even when nothing changed (a safety net)
ACCOUNT_EVERY = 1.0  # s: cost accounting (and consolidation) at most this often


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Controller:
    def __init__(self, store: Store, backend: Backend, metrics: Metrics, home: Path,
                 clock: Callable[[], float] = time.time, policy: str = "jobsched",
                 provisionable: tuple = (), provisioning: Any = None,  # type: ignore[type-arg]
                 start_timeout: float = 120.0) -> None:
        self.store, self.backend, self.metrics, self.home, self.clock = store, backend, metrics, home, clock
        self.scheduler = Scheduler(policy)
        self.binder = Binder(backend, int(getattr(backend, "parallel_starts", 4)), start_timeout)
        self.lifecycle = Lifecycle(store, backend, metrics, clock, self.max_node_memory, self.max_gpu_memory)
        self.lifecycle.stop_gang = self.binder.stop
        self.recovery = Recovery(store, backend, self.lifecycle, self.binder.in_flight, self.bound)
        self.provisionable = provisionable
        self.provisioning = provisioning  # jobsched.server.provisioning.Provisioning, optional
        from jobsched.rightsizing.cost import CostAccumulator

        self.costs = CostAccumulator()
        self._cost_written = 0.0
        self._wake = threading.Event()
        self._dirty = True  # something a cycle depends on may have changed since the last one
        self._next_cycle = 0.0  # time.monotonic() of the next cycle due regardless (back-offs)
        self._next_account = 0.0  # time.monotonic() of the next cost accounting
        self._cycle_nodes: list[Node] | None = None
        self._manifests: dict[str, dict[str, Any]] = {}  # uid -> manifest of pending jobs (parsed once)
        self._stop = threading.Event()
        self.failing: str | None = None  # why the last ticks failed (for /healthz), None when fine
        self._thread: threading.Thread | None = None
        self._nodes: list[Node] = []
        self._nodes_at = 0.0
        self._nodes_seen: int | None = None
        self._extra_names: list[str] = []
        self._with_extra: list[Node] | None = None
        self._last_reason: dict[str, str] = {}
        self._table: NodeTable | None = None
        self._table_for: list[Node] | None = None
        self._groups: dict[str, tuple[tuple[Any, ...], Any]] = {}  # uid -> PodGroup of the spec

    # loop -------------------------------------------------------------------------------------
    def start(self) -> None:
        self.lifecycle.readopt()
        self._thread = threading.Thread(target=self._run, name="jobsched-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        self.binder.drain(timeout=5)  # record the starts that finish now; the rest readopt as Lost
        try:
            self.collect_binds()
        except Exception:  # the store may be gone already
            log.exception("recording the last binds failed")
        self.binder.close()

    def wake(self) -> None:
        """Something changed (a submit, a cancel, a queue, an estimate): run a cycle soon."""
        self._dirty = True
        self._wake.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as e:  # keep scheduling, backing off: 0.2 s, 0.4 s, ... 30 s
                failures += 1
                self.failing = f"controller tick failed {failures} time(s) in a row: {type(e).__name__}: {e}"
                if failures & (failures - 1) == 0:  # the 1st, 2nd, 4th, 8th... failure: not 10/s
                    log.exception("%s", self.failing)
                self._stop.wait(min(30.0, 0.1 * 2 ** min(failures, 9)))
                continue
            if failures:
                log.info("controller tick succeeded again after %d failure(s)", failures)
            failures, self.failing = 0, None
            self._wake.wait(0.1)
            self._wake.clear()

    def tick(self) -> None:
        changed = self.collect_binds()
        changed |= self.recovery.tick()  # adopt or clear starts an earlier process left; delete stale pods
        events = self.backend.poll()
        started = [ev for ev in events if ev.kind == "running"]
        if started:
            with self.store.tx():  # replicas that started: one commit for all of them
                for ev in started:
                    self.lifecycle.on_event(ev)
        for ev in events:
            if ev.kind != "running":
                self.lifecycle.on_event(ev)
        self.lifecycle.process_cancellations()
        # A cycle over many pending jobs is not free: run one only when its inputs may have changed.
        if changed or events or self._dirty or self.nodes() is not self._cycle_nodes \
                or time.monotonic() >= self._next_cycle:
            self._dirty = False
            self._cycle_nodes = self.nodes()
            self._next_cycle = time.monotonic() + SCHEDULE_EVERY
            self.schedule()
        # Costs and consolidation read every running job: not on every tick, but once a second, or
        # less often where that read is slow (at most ~5 % of the time; many running jobs).
        if time.monotonic() >= self._next_account and (self.provisioning is not None or self._nodes_priced()):
            t0 = time.monotonic()
            self.account()
            self._next_account = time.monotonic() + max(ACCOUNT_EVERY, 20 * (time.monotonic() - t0))
        self.update_gauges()

    def _nodes_priced(self) -> bool:
        return any(n.price_per_hour for n in self.nodes())

    def account(self) -> None:
        """Charge node-hours x price to jobs by their requests; consolidate empty provider nodes."""
        from jobsched.server.provisioning import allocations

        snap, jobs = self.snapshot()
        now = self.clock()
        t = snap.table
        nodes = {name: (Resources(int(t.cpu_cap[i]), int(t.mem_cap[i]), int(t.gpu_count[i]), 1000),
                        float(t.price[i])) for i, name in enumerate(t.names)}
        self.costs.observe(now, nodes, allocations(snap))
        if now - self._cost_written > 1.0:
            self._cost_written = now
            by_key = {j.key: j for j in jobs.values()} if jobs else {
                j.key: j for j in self.store.jobs(phases=(JobPhase.RUNNING.value, JobPhase.ADMITTED.value))}
            for key, cost in self.costs.jobs.items():
                j = by_key.get(key)
                if j is not None and abs(j.cost - cost) > 1e-9:
                    self.store.update_job(j.uid, cost=cost)
        if self.provisioning is not None:
            for name in self.provisioning.consolidate(snap):
                log.info("consolidation removed empty node %s", name)

    # scheduling -------------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        """The backend's nodes, re-read when its node version changes (or every 5 s without one)."""
        now = time.monotonic()
        version_fn = getattr(self.backend, "nodes_version", None)
        version = version_fn() if version_fn is not None else None
        stale = version != self._nodes_seen if version is not None else now - self._nodes_at > 5
        if not self._nodes or stale:
            self._nodes, self._nodes_at, self._nodes_seen = self.backend.nodes(), now, version
        if self.provisioning is not None and self.provisioning.virtual:
            extra = self.provisioning.nodes()
            if [n.name for n in extra] != self._extra_names:
                self._extra_names = [n.name for n in extra]
                self._with_extra = self._nodes + extra
            elif stale or self._with_extra is None:
                self._with_extra = self._nodes + extra
            return self._with_extra
        return self._nodes

    def max_node_memory(self) -> int:
        nodes, shapes = self.nodes(), self.shapes()
        cached = getattr(self, "_max_mem", None)  # (nodes, shapes, bytes): nodes re-read changes it
        if cached is None or cached[0] is not nodes or cached[1] != shapes:
            mems = [n.allocatable_vector().memory for n in nodes] + [s.resources.memory for s in shapes]
            self._max_mem = cached = (nodes, shapes, max(mems, default=0))
        return int(cached[2])

    def max_gpu_memory(self, job: JobRow) -> int | None:
        """The largest GPU (bytes) any node, existing or provisionable, could give the job."""
        from jobsched.rightsizing.gpu import largest_gpu_memory

        return largest_gpu_memory(NodeTable.from_nodes(self.nodes()), convert.pod_group(job), self.shapes())

    def queue_infos(self) -> list[QueueInfo]:
        return [QueueInfo.from_spec(Queue.model_validate(m)) for m in self.store.queues().values()]

    def snapshot(self) -> tuple[Snapshot, dict[str, JobRow]]:
        live = self.store.live_attempts(light=True)
        # Running gangs need the job's key, queue and priority, not its manifest (not parsed here).
        jobs = self.store.jobs_by_uid({a.job_uid for a in live}, with_manifest=False) if live else {}
        running = [convert.running_gang(jobs[a.job_uid], a) for a in live if a.job_uid in jobs]
        nodes = self.nodes()
        if self._table_for is not nodes:  # the node list changed: rebuild the columns
            self._table, self._table_for = NodeTable.from_nodes(nodes), nodes
        return Snapshot.build(self._table, running, self.queue_infos(), self.shapes()), jobs

    def shapes(self) -> tuple:  # type: ignore[type-arg]
        if self.provisioning is not None:
            return tuple(self.provisioning.shapes())
        return tuple(self.provisionable)

    def schedule(self) -> None:
        is_leader = getattr(self.backend, "is_leader", None)
        if is_leader is not None and not is_leader():
            return  # another scheduler replica holds the lease: never bind twice
        now = self.clock()  # a job backing off after a failure waits until its retry_after
        pending = []
        for j in self.store.pending_jobs(self._manifests):
            retry_after = float(j.sizing.get("retry_after") or 0)
            if retry_after > now:  # the next cycle comes no later than its retry
                self._next_cycle = min(self._next_cycle, time.monotonic() + retry_after - now)
            elif j.sizing_ready and not j.cancel_requested:
                pending.append(j)
        if not pending:
            return
        t0 = time.perf_counter()
        snap, _ = self.snapshot()
        by_key = {j.key: j for j in pending}
        groups = []
        for j in pending:
            try:
                cached = self._groups.get(j.uid)
                version = (j.memory, j.priority, j.created_at, j.sizing.get("gpu_memory"))
                if cached is None or cached[0] != version:
                    cached = (version, convert.pod_group(j))
                    self._groups[j.uid] = cached
                groups.append(cached[1])
            except ValueError as e:  # a stored manifest that no longer validates
                self.lifecycle.fail(j, "InvalidSpec", str(e))
        result = self.scheduler.cycle(snap, groups, self.clock())
        self.metrics.cycle_duration.observe(time.perf_counter() - t0)
        if self.provisioning is not None:
            want = {d.key for d in result.decisions if isinstance(d, Wait) and d.for_capacity}
            for key, msg in self.provisioning.provision([g for g in groups if g.key in want], snap):
                self.note_wait(by_key[key], msg)
        assumed: list[tuple[JobRow, GangLaunch]] = []
        room = BurstRoom.after(snap, [d for d in result.decisions if isinstance(d, Admit)],
                               {j.key: j.queue for j in pending},
                               {j.key for j in pending if j.sizing.get("burst") and j.sizing.get("resized")})
        with self.store.tx():  # the cycle's decisions in one commit (none started before it)
            for d in result.decisions:
                if isinstance(d, Admit):
                    assumed.append((by_key[d.key], self.admit(by_key[d.key], d, room)))
                elif isinstance(d, Preempt):
                    self.lifecycle.preempt(d.victim, d.preemptor, d.reason)
                elif isinstance(d, Reject):
                    self.lifecycle.fail(by_key[d.key], "QuotaExceeded" if d.quota else "Unschedulable", d.reason)
                elif isinstance(d, Wait):
                    self.note_wait(by_key[d.key], d.reason, "QuotaExceeded" if d.quota else "Unschedulable")
        self.bind_all(assumed)

    def note_wait(self, job: JobRow, reason: str, code: str = "Unschedulable") -> None:
        """A pending job's reason: ``code`` (QuotaExceeded for a quota wait, else Unschedulable) and
        the message saying why."""
        if self._last_reason.get(job.uid) == reason:
            return
        self._last_reason[job.uid] = reason
        with self.store.tx() as c:
            self.store.update_job(job.uid, conn=c, reason=code, message=reason)
            self.store.add_event(job.uid, self.clock(), "Normal", "Pending", reason, conn=c)

    def admit(self, job: JobRow, d: Admit, room: BurstRoom | None = None) -> GangLaunch:
        """Assume: record the attempt and its allocation in the store (no side effect yet)."""
        spec = convert.job_spec(job)
        attempts = self.store.attempts(job.uid)
        idx = len(attempts)
        now = self.clock()
        ckpt = spec.spec.checkpoint_dir or str(self.home / "checkpoints" / job.namespace / job.name)
        Path(ckpt).mkdir(parents=True, exist_ok=True)
        resumed = any(Path(ckpt).iterdir())
        declared_limit = spec.spec.template.resources.memory_limit()
        limit: int | None = job.memory if job.sizing.get("resized") else max(job.memory, declared_limit or 0)
        limit = limit or None  # no memory declared at all: no hard limit
        mode = ""
        if job.sizing.get("burst") and job.sizing.get("resized") and limit and room is not None:
            burst = room.grant(d, spec, self.max_node_memory())
            mode = (" (measuring retry: the limit bursts above the request into the node's free memory)"
                    if burst > limit else " (no free memory to burst into: fixed limit)")
            limit = max(limit, burst)
        port = free_port()
        per_node: dict[str, int] = {}
        reps = []
        rank_env = convert.rank_env(spec)
        gpu_mem = self._gpu_memory()
        mps = bool(d.request.gpus) and mps_running()
        shares = []
        cluster_ports = [free_port() for _ in d.assignments] if spec.spec.cluster_env else []
        for a in d.assignments:
            local_rank = per_node.get(a.node, 0)
            per_node[a.node] = local_rank + 1
            rt = spec.spec.replica(a.rank)  # its role's command, env and image (spec.roles)
            env = {**_base_env(), **rt.env, **rank_env.get(a.rank, {}),
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                   "WORLD_SIZE": str(len(d.assignments)), "RANK": str(a.rank), "LOCAL_RANK": str(local_rank),
                   "JOBSCHED_JOB": job.name, "JOBSCHED_NAMESPACE": job.namespace,
                   "JOBSCHED_ATTEMPT": str(idx), "JOBSCHED_CHECKPOINT_DIR": ckpt,
                   "JOBSCHED_MEMORY_LIMIT": str(limit or 0)}
            concrete, gpu_env, device = replica_gpu(d.request, a.gpus, gpu_mem.get(a.node, 0), mps)
            env.update(gpu_env)  # after the job's env: the devices are jobsched's to give
            env.update(roles.role_env(spec.spec, a.rank, lambda r: ("127.0.0.1", cluster_ports[r])))
            shares.append(concrete.gpu_milli)
            reps.append(ReplicaLaunch(a.rank, a.node, rt.argv(), roles.expand_refs(env), concrete, limit,
                                      a.gpus, spec.spec.template.working_dir, rt.image, device,
                                      args_only=not rt.command))
        labels = dict(spec.metadata.labels)
        if spec.spec.checkpoint_dir:
            labels["jobsched.io/checkpoint-requested"] = "true"
        pod, container = spec.spec.template.pod_fields()
        gang = GangLaunch(job.key, job.uid, idx, reps, ckpt, spec.spec.placement, labels,
                          {"pod": pod, "container": container}, spec.spec.ttl_seconds_after_finished)
        # Assume: record the attempt and the allocation before any side effect.
        # A memory-sized share keeps its size per node; its quota figure is the largest share taken.
        recorded = replace(d.request, gpu_milli=max(shares)) if d.request.gpu_share and shares else d.request
        row = AttemptRow(job.uid, idx, "starting", recorded.as_dict(), limit,
                         [[a.rank, a.node, list(a.gpus)] for a in d.assignments], {}, {}, None, now, None,
                         None, None, None, None, self.backend.enforcement(), resumed,
                         convert.launch_to_json(gang))
        with self.store.tx() as c:
            self.store.insert_attempt(row, c)
            self.store.update_job(job.uid, conn=c, phase=JobPhase.ADMITTED.value, reason=None, message=None,
                                  admitted_at=job.admitted_at or now)
            nodes = sorted({a.node for a in d.assignments})
            self.store.add_event(job.uid, now, "Normal", "Admitted",
                                 f"attempt {idx}: {len(reps)} replica(s) on {', '.join(nodes)}, memory "
                                 f"request {format_bytes(d.request.memory)} limit {format_bytes(limit)}{mode}"
                                 + _gpu_words(recorded)
                                 + (" (resuming from checkpoint)" if resumed else ""), conn=c)
        if idx == 0:
            self.metrics.admission_latency.observe(max(now - job.created_at, 0.0))
        self._last_reason.pop(job.uid, None)
        return gang

    def _gpu_memory(self) -> dict[str, int]:
        """Node name -> GPU memory, rebuilt only when the node list changes (not per admitted job)."""
        nodes = self.nodes()
        if getattr(self, "_gpu_mem_for", None) is not nodes:
            self._gpu_mem: dict[str, int] = {n.name: n.gpu_memory_bytes for n in nodes}
            self._gpu_mem_for = nodes
        return self._gpu_mem

    def bind_all(self, assumed: list[tuple[JobRow, GangLaunch]]) -> None:
        """The side effect, off this loop: each start goes to the binder's workers (at most the
        backend's ``parallel_starts`` at once); :meth:`collect_binds` records the outcome."""
        for job, gang in assumed:
            self.binder.submit(job, gang)

    def collect_binds(self) -> bool:
        """Record finished binds; unreserve failed ones and those past the start timeout. Returns
        whether there were any."""
        finished, overdue = self.binder.finished(), self.binder.overdue()
        with self.store.tx() if finished else nullcontext():  # the binds finished since the last tick:
            for b in finished:  # one commit
                err = b.error()
                if err is not None:
                    self._unreserve(b.job, b.gang.attempt, str(err), err.permanent)
                    continue
                self.bound(b.job, b.gang.attempt, b.future.result())
        for b in overdue:
            self._unreserve(b.job, b.gang.attempt, f"could not start {b.gang.job_key}: the start did not "
                            f"finish within {self.binder.timeout:g} s (its replicas are stopped)", False)
        return bool(finished or overdue)

    def _unreserve(self, job: JobRow, idx: int, message: str, permanent: bool) -> None:
        att = self._attempt(job.uid, idx)
        if att is not None and att.state != "ended":
            self.lifecycle.start_failed(self.store.job_by_uid(job.uid) or job, idx, message, permanent=permanent)

    def bound(self, job: JobRow, idx: int, handles: dict[int, dict[str, object]]) -> None:
        """A start returned: the attempt runs, unless it was stopped (cancelled, preempted) or
        ended meanwhile; a stopped one is stopped now that there is something to stop."""
        att = self._attempt(job.uid, idx)
        if att is None:
            return
        with self.store.tx() as c:
            if att.state == "starting":
                self.store.update_attempt(job.uid, idx, conn=c, state="running", handles=handles)
                self.store.update_job(job.uid, conn=c, phase=JobPhase.RUNNING.value)
            else:
                self.store.update_attempt(job.uid, idx, conn=c, handles=handles)
        if att.state == "stopping":  # cancelled, preempted, or a replica failed meanwhile
            cause = (att.stop_reason or "Cancelled").split(":", 1)[0]
            self.binder.stop(job.key, idx, AttemptReason.GANG_STOPPED.value if cause in FAILURES else cause,
                             grace_seconds=5)

    def _attempt(self, uid: str, idx: int) -> AttemptRow | None:
        return next((a for a in self.store.attempts(uid) if a.idx == idx), None)

    def update_gauges(self) -> None:
        self.metrics.jobs.clear()
        for (phase, queue), n in self.store.job_counts().items():
            self.metrics.jobs.labels(phase=phase, queue=queue).set(n)


def _gpu_words(r: Resources) -> str:
    if not r.gpu_memory:
        return ""
    share = f" (a share of {r.gpu_milli}/1000 of one GPU)" if r.gpus and r.gpu_milli < 1000 else ""
    return f", GPU memory {format_bytes(r.gpu_memory)} per GPU{share}"


def _base_env() -> dict[str, str]:
    import os

    keep = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR", "USER", "SHELL",
            "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "PYENV_VERSION")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    # `python` in a replica's command means the interpreter jobsched runs under (its venv).
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "/usr/bin:/bin")])
    return env
