"""The local backend (embedded default): this machine is a node (or several virtual nodes), and
each replica is a real subprocess in its own memory cgroup, started through a shim."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobsched.backends.base import GangLaunch, ReplicaEvent, StartError
from jobsched.backends.local.cgroup import CgroupDriver, detect, host_memory
from jobsched.backends.local.gpus import GpuInventory, inventory
from jobsched.backends.local.shim import proc_start_time
from jobsched.backends.prestart import check_replica
from jobsched.spec.node import GPU_MODEL_LABEL, Node

RESERVED_MEMORY = 512 * 2**20  # kept back for the control plane itself
EVICTION_PAUSE = 2.0  # seconds between two node-pressure evictions, while memory is reclaimed
VIRTUAL_NODE_KEYS = {"name", "cpu", "memory", "gpus", "gpuModel", "gpuMemory", "labels"}
log = logging.getLogger("jobsched.local")


def virtual_node(n: dict[str, Any]) -> Node:
    """A ``--local-nodes`` entry: ``{name, cpu, memory, gpus, gpuModel, gpuMemory, labels}``."""
    labels = {"jobsched.io/virtual": "true", **n.get("labels", {})}
    if n.get("gpuModel") and n.get("gpus"):
        labels[GPU_MODEL_LABEL] = str(n["gpuModel"])
    return Node.model_validate({
        "name": n["name"],
        "allocatable": {"cpu": n.get("cpu", 1), "memory": n.get("memory", "1Gi"),
                        "nvidia.com/gpu": n.get("gpus", 0)},
        "labels": labels, "gpuMemory": n.get("gpuMemory") if n.get("gpus") else None,
    })


@dataclass
class _Replica:
    job_key: str
    attempt: int
    rank: int
    dir: Path
    handle: dict[str, Any]
    reported_running: bool = False
    done: bool = False
    stop_deadline: float | None = None
    request: int = 0  # memory request in bytes: node-pressure eviction ranks by use above it


@dataclass
class LocalBackend:
    home: Path
    nodes_config: list[dict[str, Any]] | None = None  # virtual nodes: see virtual_node
    enforcement_mode: str | None = None  # None: detect; "watchdog" forces the fallback
    # Node-pressure eviction threshold, the kubelet's default ``memory.available<100Mi``; None: off.
    eviction_hard_available_bytes: int | None = 100 * 2**20
    name: str = "local"
    parallel_starts: int = 4  # gangs started at once, off the controller loop (server/binder.py)
    _replicas: dict[tuple[str, int, int], _Replica] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.home = Path(self.home)
        self.gpus: GpuInventory = GpuInventory(note="virtual nodes (--local-nodes)")
        if not self.nodes_config:
            self.gpus = inventory()
            log.info("GPUs: %s", self.gpus.describe())
        self.driver: CgroupDriver = detect(self.enforcement_mode)
        self.run_dir = self.home / "runs"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._pending_events: list[ReplicaEvent] = []
        self._last_eviction = -EVICTION_PAUSE

    # nodes ------------------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        if self.nodes_config:
            return [virtual_node(n) for n in self.nodes_config]
        cpus = len(os.sched_getaffinity(0))
        mem = max(host_memory() - RESERVED_MEMORY, 256 * 2**20)
        labels = {"kubernetes.io/hostname": "local"}
        if self.gpus.model:
            labels[GPU_MODEL_LABEL] = self.gpus.model
        return [Node.model_validate({"name": "local", "allocatable": {
            "cpu": cpus, "memory": mem, "nvidia.com/gpu": self.gpus.count}, "labels": labels,
            "gpu_memory": self.gpus.memory or None})]

    def gpu_note(self) -> str:
        """Why this machine shows no GPU (empty when it has some, or with virtual nodes)."""
        return "" if self.gpus.count or self.nodes_config else self.gpus.note

    def enforcement(self) -> str:
        return self.driver.kind

    def enforcement_detail(self) -> str:
        return self.driver.why

    # lifecycle --------------------------------------------------------------------------------
    def _attempt_dir(self, job_key: str, attempt: int) -> Path:
        return self.run_dir / job_key.replace("/", "__") / f"attempt-{attempt}"

    def start(self, gang: GangLaunch) -> dict[int, dict[str, object]]:
        for rep in gang.replicas:  # what would fail the same way on every retry: fail it now
            try:
                check_replica(rep)
            except StartError as e:
                raise StartError(f"could not start {gang.job_key}: {e}", permanent=True) from e
        adir = self._attempt_dir(gang.job_key, gang.attempt)
        adir.mkdir(parents=True, exist_ok=True)
        started: list[_Replica] = []
        try:
            for rep in gang.replicas:
                started.append(self._start_replica(gang, rep, adir))
            deadline = time.monotonic() + 10
            for r in started:  # wait until each shim reports its child's pid
                r.handle.update(self._wait_pid(r, deadline))
        except (OSError, StartError) as e:
            for r in started:
                self._kill_replica(r, signal.SIGKILL)
            raise StartError(f"could not start {gang.job_key}: {e}",
                             permanent=getattr(e, "permanent", False)) from e
        with self._lock:
            for r in started:
                self._replicas[(gang.job_key, gang.attempt, r.rank)] = r
        return {r.rank: r.handle for r in started}

    def _start_replica(self, gang: GangLaunch, rep: Any, adir: Path) -> _Replica:
        name = f"{gang.job_uid[:12]}-a{gang.attempt}-r{rep.rank}"
        cg = self.driver.create(name, rep.memory_limit)
        spec = {
            "argv": rep.argv, "env": rep.env, "cwd": rep.working_dir, "rank": rep.rank,
            "log_dir": str(adir), "cgroup": str(cg) if cg else None,
            "cgroup_root": str(self.driver.root) if self.driver.root else None,
            "enforcement": self.driver.kind, "memory_limit": rep.memory_limit,
            "pid_file": str(adir / f"rank-{rep.rank}.pid.json"),
            "result_file": str(adir / f"rank-{rep.rank}.result.json"),
        }
        for stale in (spec["pid_file"], spec["result_file"]):
            Path(stale).unlink(missing_ok=True)
        spec_file = adir / f"rank-{rep.rank}.spec.json"
        spec_file.write_text(json.dumps(spec))
        shim = subprocess.Popen([sys.executable, "-m", "jobsched.backends.local.shim", str(spec_file)],
                                start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=open(adir / f"rank-{rep.rank}.shim.log", "ab"), stderr=subprocess.STDOUT)
        handle = {"shim_pid": shim.pid, "shim_start": proc_start_time(shim.pid), "dir": str(adir),
                  "cgroup": str(cg) if cg else None}
        # The shim is reaped by a thread so it never lingers as a zombie in this process.
        threading.Thread(target=shim.wait, daemon=True).start()
        return _Replica(gang.job_key, gang.attempt, rep.rank, adir, handle, request=rep.requests.memory)

    def _wait_pid(self, r: _Replica, deadline: float) -> dict[str, Any]:
        pid_file = r.dir / f"rank-{r.rank}.pid.json"
        result = r.dir / f"rank-{r.rank}.result.json"
        while time.monotonic() < deadline:
            if pid_file.exists():
                return dict(json.loads(pid_file.read_text()))
            if result.exists():  # exited (or failed to exec) before we looked
                return {}
            time.sleep(0.01)
        raise StartError(f"replica {r.rank} did not start within 10 s")

    def stop(self, job_key: str, attempt: int, reason: str, grace_seconds: float = 10.0) -> None:
        with self._lock:
            reps = [r for (k, a, _), r in self._replicas.items() if k == job_key and a == attempt and not r.done]
        for r in reps:
            self._kill_replica(r, signal.SIGTERM)
            r.stop_deadline = time.monotonic() + grace_seconds

    def _kill_replica(self, r: _Replica, sig: int) -> None:
        pid = r.handle.get("child_pid")
        if pid and proc_start_time(int(pid)) == r.handle.get("child_start"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), sig)

    def adopt(self, gang: GangLaunch, handles: dict[int, dict[str, object]]) -> list[ReplicaEvent]:
        with self._lock:
            for rank, h in handles.items():
                rank = int(rank)
                req = next((x.requests.memory for x in gang.replicas if x.rank == rank), 0)
                r = _Replica(gang.job_key, gang.attempt, rank, Path(str(h["dir"])), dict(h), True, request=req)
                self._replicas[(gang.job_key, gang.attempt, rank)] = r
        return []

    # events -----------------------------------------------------------------------------------
    def poll(self) -> list[ReplicaEvent]:
        now = time.time()
        events: list[ReplicaEvent] = []
        with self._lock:
            reps = [r for r in self._replicas.values() if not r.done]
        for r in reps:
            result = r.dir / f"rank-{r.rank}.result.json"
            if not r.reported_running:
                r.reported_running = True
                events.append(ReplicaEvent(r.job_key, r.attempt, r.rank, "running", now,
                                           pid=r.handle.get("child_pid")))
            if result.exists():
                res = json.loads(result.read_text())
                r.done = True
                if res.get("log_dropped_bytes"):
                    res["message"] = ((res.get("message") or "") + f" ({res['log_dropped_bytes']} bytes of "
                                      "log output dropped: no space left for the log)").strip()
                events.append(ReplicaEvent(r.job_key, r.attempt, r.rank, "exited", res["finished_at"],
                                           exit_code=res["exit_code"], reason=res["reason"],
                                           peak_memory_bytes=res.get("peak_memory_bytes"),
                                           message=res.get("message"), timeline=res.get("timeline"),
                                           device_peak_bytes=res.get("device_peak_bytes")))
            elif proc_start_time(int(r.handle["shim_pid"])) != r.handle.get("shim_start"):
                time.sleep(0.05)  # the shim may be writing its result right now
                if result.exists():
                    continue
                r.done = True
                self._kill_replica(r, signal.SIGKILL)
                events.append(ReplicaEvent(r.job_key, r.attempt, r.rank, "exited", now, exit_code=None,
                                           reason="Lost", message="replica shim vanished",
                                           timeline=self._live_timeline(r)))
            elif r.stop_deadline is not None and time.monotonic() > r.stop_deadline:
                self._kill_replica(r, signal.SIGKILL)
                r.stop_deadline = None
        events.extend(self._evictions(now))
        with self._lock:
            for e in events:
                if e.kind == "exited":
                    self._replicas.pop((e.job_key, e.attempt, e.rank), None)
        return events

    def _evictions(self, now: float) -> list[ReplicaEvent]:
        """Node-pressure eviction (like the kubelet's memory.available hard threshold): when the
        host's available memory drops below the threshold, the replica using most memory is
        stopped with reason Evicted, to be rescheduled at the same size."""
        if self.eviction_hard_available_bytes is None:
            return []
        if time.monotonic() - self._last_eviction < EVICTION_PAUSE:
            return []  # the last victim's memory is still being reclaimed: one at a time
        import psutil

        if psutil.virtual_memory().available >= self.eviction_hard_available_bytes:
            return []
        with self._lock:
            live = [r for r in self._replicas.values() if not r.done and r.handle.get("child_pid")]
        if not live:
            return []
        from jobsched.backends.local.shim import _tree_rss

        # As the kubelet ranks: replicas using more than they requested go first, the largest
        # excess first (a measuring retry bursting above its request); then the largest user.
        use = {id(r): _tree_rss(int(r.handle["child_pid"])) for r in live}
        victim = max(live, key=lambda r: (use[id(r)] > r.request, use[id(r)] - r.request))
        self._kill_replica(victim, signal.SIGKILL)
        victim.done = True
        self._last_eviction = time.monotonic()
        return [ReplicaEvent(victim.job_key, victim.attempt, victim.rank, "exited", now, exit_code=137,
                             reason="Evicted", peak_memory_bytes=use[id(victim)] or None,
                             message="node memory pressure: available memory below "
                             f"{self.eviction_hard_available_bytes} bytes; the replica used "
                             f"{use[id(victim)]} bytes against a request of {victim.request}",
                             timeline=self._live_timeline(victim))]

    def _live_timeline(self, r: _Replica) -> dict[str, Any] | None:
        try:
            return dict(json.loads((r.dir / f"rank-{r.rank}.memory.json").read_text()))
        except (OSError, ValueError):
            return None

    def memory_timelines(self, job_key: str, attempt: int) -> dict[int, dict[str, Any]]:
        """The live memory timelines of a running attempt's replicas (written by their shims)."""
        adir = self._attempt_dir(job_key, attempt)
        out = {}
        for p in adir.glob("rank-*.memory.json"):
            with contextlib.suppress(OSError, ValueError):
                out[int(p.name.split(".")[0].split("-")[1])] = dict(json.loads(p.read_text()))
        return dict(sorted(out.items()))

    # logs -------------------------------------------------------------------------------------
    def forget(self, job_key: str, job_uid: str) -> None:
        """``jobsched delete``: drop the (ended) job's replicas and its run directory (logs, results)."""
        import shutil

        with self._lock:
            for k in [k for k in self._replicas if k[0] == job_key]:
                del self._replicas[k]
        shutil.rmtree(self.run_dir / job_key.replace("/", "__"), ignore_errors=True)

    def log_paths(self, job_key: str, attempt: int) -> dict[int, str]:
        adir = self._attempt_dir(job_key, attempt)
        out = {}
        for p in adir.glob("rank-*.log"):
            if p.name.count(".") == 1:
                out[int(p.stem.split("-")[1])] = str(p)
        return dict(sorted(out.items()))

    def read_logs(self, job_key: str, attempt: int, rank: int, stream: str = "log") -> str:
        """The replica's log (``rank-N.log``: stdout and stderr combined, written once)."""
        p = self._attempt_dir(job_key, attempt) / f"rank-{rank}.{stream}"
        return p.read_text(errors="replace") if p.exists() else ""

    def close(self) -> None:
        """Replicas keep running (their shims are independent); a restarted server re-adopts them."""
