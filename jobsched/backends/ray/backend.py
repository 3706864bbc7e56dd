"""The Ray backend: run admitted gangs on a Ray cluster (an existing one, KubeRay included, or a
local instance started here).

jobsched's scheduling core still decides admission and placement over the nodes Ray reports. Each
gang becomes one detached, named placement group (strategy from the job's placement), created
atomically, with each bundle pinned to the node the core chose; each replica is a detached, named
:class:`~jobsched.backends.ray.actor.ReplicaActor` in its bundle that runs the command as a child
process. Names live in the Ray namespace ``jobsched`` and carry the scheduler home's id, the job's
uid and the attempt, so a restarted scheduler finds them again (``adopt``). See docs/ray.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobsched.backends.base import GangLaunch, ReplicaEvent, StartError
from jobsched.backends.ray import cluster
from jobsched.backends.ray.actor import ReplicaActor
from jobsched.backends.ray.state import Gang, Replica, death_event, exit_event, mirror_logs
from jobsched.spec.node import Node

log = logging.getLogger("jobsched.backends.ray")
STATUS_EVERY = 2.0  # seconds between peak-memory samples fetched from the actors
MIRROR_EVERY = 1.0  # seconds between log copies from nodes that do not share the home


@dataclass
class RayBackend:
    home: Path
    address: str | None = None  # ray://, host:port or "auto"; None starts a local instance
    num_cpus: int | None = None  # local instance only
    num_gpus: int | None = None  # local instance only
    object_store_memory: int | None = 200 * 2**20  # local instance only
    start_timeout: float = 30.0  # seconds for the placement group (and actors) to be ready
    enforcement_mode: str | None = None  # None: cgroup where writable, else watchdog; "watchdog"
    shared_home: bool | None = None  # None: detect per node; False: always copy logs over Ray
    runtime_env: dict[str, Any] | None = None  # passed to ray.init (e.g. py_modules for jobsched)
    name: str = "ray"
    _gangs: dict[tuple[str, int], Gang] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.home = Path(self.home)
        if self.address and any(v is not None for v in (self.num_cpus, self.num_gpus)):
            raise ValueError("num_cpus/num_gpus: only for a local Ray instance (address is None); "
                             "an existing cluster's resources are its own")
        if self.start_timeout <= 0:
            raise ValueError(f"start_timeout: must be > 0, got {self.start_timeout}")
        if self.enforcement_mode not in (None, "watchdog"):
            raise ValueError(f"enforcement_mode: expected None or 'watchdog', got {self.enforcement_mode!r}")
        self.run_dir = self.home / "runs"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.hid = cluster.home_id(self.home)
        self._owns = cluster.connect(self.address, self.num_cpus, self.num_gpus, self.object_store_memory,
                                     self.runtime_env)
        self._index: dict[str, cluster.RayNode] = {}
        self._actor_cls: Any = None
        self._gc_done = False
        self._last_status = self._last_mirror = 0.0

    # nodes ------------------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        nodes, self._index = cluster.ray_nodes()
        return nodes

    def enforcement(self) -> str:
        return "ray"

    def enforcement_detail(self) -> str:
        mode = "RSS watchdog" if self.enforcement_mode == "watchdog" else "memory cgroup where writable, " \
            "else RSS watchdog"
        return f"in each replica actor: {mode}; plus Ray's memory monitor (reported as OOMKilled)"

    # start ------------------------------------------------------------------------------------
    def _attempt_dir(self, job_key: str, attempt: int) -> Path:
        return self.run_dir / job_key.replace("/", "__") / f"attempt-{attempt}"

    def _ray_node(self, name: str) -> cluster.RayNode:
        if name not in self._index:
            self.nodes()
        if name not in self._index:
            raise StartError(f"node {name!r} is no longer in the Ray cluster")
        return self._index[name]

    def start(self, gang: GangLaunch) -> dict[int, dict[str, object]]:
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group

        if gang.placement not in cluster.STRATEGIES:
            raise ValueError(f"placement: unknown placement {gang.placement!r} "
                             f"(known: {', '.join(cluster.STRATEGIES)})")
        name = cluster.gang_name(self.hid, gang.job_uid, gang.attempt)
        adir = self._attempt_dir(gang.job_key, gang.attempt)
        adir.mkdir(parents=True, exist_ok=True)
        reps = sorted(gang.replicas, key=lambda r: r.rank)
        pairs = [cluster.bundle(r.requests, self._ray_node(r.node)) for r in reps]
        selectors = [s for _, s in pairs]
        pg = placement_group([b for b, _ in pairs], strategy=cluster.STRATEGIES[gang.placement], name=name,
                             lifetime="detached", bundle_label_selector=selectors if any(selectors) else None)
        if not pg.wait(self.start_timeout):
            remove_placement_group(pg)
            raise StartError(f"placement group for {gang.job_key} was not ready within {self.start_timeout:g} s "
                             f"({len(reps)} bundle(s) like {pairs[0][0]}, {cluster.STRATEGIES[gang.placement]}): "
                             "the Ray cluster cannot fit the gang where jobsched placed it")
        actors: list[Any] = []
        try:
            actors = [self._create_actor(pg, name, r, adir) for r in reps]
            token = uuid.uuid4().hex
            marker = adir / "ray-marker"
            marker.write_text(token)
            probe = (str(marker), token) if self.shared_home is not False else (None, None)
            infos = ray.get([a.node_info.remote(*probe) for a in actors], timeout=self.start_timeout)
            rdv = {"MASTER_ADDR": infos[0]["ip"], "MASTER_PORT": str(infos[0]["port"])}
            pids = ray.get([a.launch.remote(rdv) for a in actors], timeout=self.start_timeout)
        except Exception as e:  # actors that failed to start, import errors, timeouts
            for a in actors:
                ray.kill(a, no_restart=True)
            remove_placement_group(pg)
            raise StartError(f"could not start {gang.job_key} on Ray: {str(e).splitlines()[0]}") from e
        g = Gang(name, gang.job_key, gang.attempt)
        handles: dict[int, dict[str, object]] = {}
        for r, a, info, pid in zip(reps, actors, infos, pids, strict=True):
            h = {"gang": name, "actor": cluster.actor_name(name, r.rank), "node_id": info["node_id"],
                 "ip": info["ip"], "shared": info["shared"], "log_dir": info["log_dir"],
                 "master_addr": rdv["MASTER_ADDR"], "master_port": rdv["MASTER_PORT"], **pid}
            g.replicas[r.rank] = Replica(gang.job_key, gang.attempt, r.rank, a, h, adir, r.memory_limit,
                                         exit_ref=a.wait_exit.remote())
            handles[r.rank] = dict(h)
        with self._lock:
            self._gangs[(gang.job_key, gang.attempt)] = g
        return handles

    def _create_actor(self, pg: Any, name: str, rep: Any, adir: Path) -> Any:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if self._actor_cls is None:
            self._actor_cls = ray.remote(ReplicaActor)
        aname = cluster.actor_name(name, rep.rank)
        spec = {"name": aname, "rank": rep.rank, "argv": list(rep.argv), "env": dict(rep.env),
                "cwd": rep.working_dir, "memory_limit": rep.memory_limit, "log_dir": str(adir),
                "enforcement": self.enforcement_mode}
        strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=rep.rank)
        return self._actor_cls.options(
            name=aname, namespace=cluster.NAMESPACE, lifetime="detached", max_restarts=0,
            max_concurrency=8, scheduling_strategy=strategy, **cluster.actor_resources(rep.requests),
        ).remote(spec)

    # stop / adopt -----------------------------------------------------------------------------
    def stop(self, job_key: str, attempt: int, reason: str, grace_seconds: float = 10.0) -> None:
        """SIGTERM every replica (SIGKILL after the grace period); their exits arrive through
        poll(), after which the placement group and the actors are removed."""
        with self._lock:
            g = self._gangs.get((job_key, attempt))
        if g is None:
            return
        g.stop_reason = g.stop_reason or reason
        g.kill_at = time.monotonic() + grace_seconds + 10
        for r in g.live():
            r.actor.terminate.remote(reason, grace_seconds)

    def adopt(self, gang: GangLaunch, handles: dict[int, dict[str, object]]) -> list[ReplicaEvent]:
        import ray

        name = next((str(h["gang"]) for h in handles.values() if h.get("gang")),
                    cluster.gang_name(self.hid, gang.job_uid, gang.attempt))
        g = Gang(name, gang.job_key, gang.attempt)
        adir = self._attempt_dir(gang.job_key, gang.attempt)
        limits = {r.rank: r.memory_limit for r in gang.replicas}
        events: list[ReplicaEvent] = []
        for rank, h in sorted((int(k), dict(v)) for k, v in handles.items()):
            try:
                actor = ray.get_actor(str(h.get("actor") or cluster.actor_name(name, rank)),
                                      namespace=cluster.NAMESPACE)
            except ValueError:
                events.append(self._vanished(gang, rank, adir, h))
                continue
            g.replicas[rank] = Replica(gang.job_key, gang.attempt, rank, actor, h, adir, limits.get(rank),
                                       exit_ref=actor.wait_exit.remote(), reported_running=True)
        with self._lock:
            self._gangs[(gang.job_key, gang.attempt)] = g
        return events

    def _vanished(self, gang: GangLaunch, rank: int, adir: Path, h: dict[str, object]) -> ReplicaEvent:
        """An actor that is gone: its recorded result where the home is shared; NodeLost when its
        Ray node is gone too (e.g. the server's own local instance ended with it); else Lost."""
        result = adir / f"rank-{rank}.result.json"
        if result.exists():
            res = json.loads(result.read_text() or "{}")
            if res.get("reason"):
                r = Replica(gang.job_key, gang.attempt, rank, None, {}, adir, None)
                return exit_event(r, res, time.time())
        if not self._index:
            self.nodes()
        if h.get("node_id") not in {n.node_id for n in self._index.values()}:
            return ReplicaEvent(gang.job_key, gang.attempt, rank, "exited", time.time(), reason="NodeLost",
                                message=f"the Ray node that ran this replica ({h.get('ip')}) is gone")
        return ReplicaEvent(gang.job_key, gang.attempt, rank, "exited", time.time(), reason="Lost",
                            message="the replica's Ray actor is gone")

    # events -----------------------------------------------------------------------------------
    def poll(self) -> list[ReplicaEvent]:
        import ray

        if not self._gc_done:
            self._gc_done = True
            self._collect_garbage()
        now, mono = time.time(), time.monotonic()
        with self._lock:
            gangs = list(self._gangs.values())
        events: list[ReplicaEvent] = []
        live = [(g, r) for g in gangs for r in g.live()]
        for _, r in live:
            if not r.reported_running:
                r.reported_running = True
                events.append(ReplicaEvent(r.job_key, r.attempt, r.rank, "running", now,
                                           pid=r.handle.get("pid")))
        self._sample(live, mono)
        ready, _ = ray.wait([r.exit_ref for _, r in live], num_returns=len(live), timeout=0) if live else ([], [])
        ready_ids = {ref.hex() for ref in ready}
        for g, r in live:
            if r.exit_ref.hex() in ready_ids:
                events.append(self._collect(g, r, now))
        for g in gangs:  # stopped, but not gone after the grace period: kill the actors
            if g.kill_at is not None and mono > g.kill_at:
                g.kill_at = None
                for r in g.live():
                    ray.kill(r.actor, no_restart=True)  # wait_exit fails: reported with the stop reason
        for g in gangs:
            if not g.live():
                self._remove(g)
        return events

    def _collect(self, g: Gang, r: Replica, now: float) -> ReplicaEvent:
        import ray

        r.done = True
        try:
            result = ray.get(r.exit_ref)
        except Exception as e:  # RayActorError and friends: the actor died first
            return death_event(r, g, e, now)
        if r.mirrored:
            mirror_logs([r])
        return exit_event(r, result, now)

    def _sample(self, live: list[tuple[Gang, Replica]], mono: float) -> None:
        """Peak memory from the actors (non-blocking), and log copies for remote nodes."""
        import ray

        for _, r in live:
            if r.status_ref is not None and ray.wait([r.status_ref], timeout=0)[0]:
                with contextlib.suppress(Exception):
                    r.peak = max(r.peak, int(ray.get(r.status_ref).get("peak_memory_bytes") or 0))
                r.status_ref = None
        if mono - self._last_status >= STATUS_EVERY:
            self._last_status = mono
            for _, r in live:
                if r.status_ref is None:
                    r.status_ref = r.actor.status.remote()
        if mono - self._last_mirror >= MIRROR_EVERY:
            self._last_mirror = mono
            mirror_logs([r for _, r in live if r.mirrored], timeout=2.0)

    def _remove(self, g: Gang) -> None:
        import ray
        from ray.util.placement_group import get_placement_group, remove_placement_group

        for r in g.replicas.values():
            if r.actor is not None:
                ray.kill(r.actor, no_restart=True)
        with contextlib.suppress(ValueError):  # already gone
            remove_placement_group(get_placement_group(g.name))
        with self._lock:
            self._gangs.pop((g.job_key, g.attempt), None)

    def _collect_garbage(self) -> None:
        """After start-up (adopt runs first): remove this home's placement groups and actors that
        no live attempt owns, e.g. from a crash between creating a gang and recording it."""
        import ray
        from ray.util.placement_group import get_placement_group, remove_placement_group

        prefix = f"jobsched-{self.hid}-"
        with self._lock:
            known = {g.name for g in self._gangs.values()}
        for aname in cluster.named_actors(prefix):
            if aname.rsplit("-r", 1)[0] not in known:
                with contextlib.suppress(ValueError):
                    ray.kill(ray.get_actor(aname, namespace=cluster.NAMESPACE), no_restart=True)
        for pname in cluster.placement_groups(prefix):
            if pname not in known:
                log.warning("removing orphaned Ray placement group %s", pname)
                remove_placement_group(get_placement_group(pname))

    # logs -------------------------------------------------------------------------------------
    def log_paths(self, job_key: str, attempt: int) -> dict[int, str]:
        adir = self._attempt_dir(job_key, attempt)
        out = {int(p.stem.split("-")[1]): str(p) for p in adir.glob("rank-*.log") if p.name.count(".") == 1}
        return dict(sorted(out.items()))

    def read_logs(self, job_key: str, attempt: int, rank: int, stream: str = "log") -> str:
        p = self._attempt_dir(job_key, attempt) / f"rank-{rank}.{stream}"
        return p.read_text(errors="replace") if p.exists() else ""

    def close(self) -> None:
        """Disconnect. Replicas on an existing cluster keep running (detached) and are re-adopted by
        the next server; a local instance started here ends with this process's connection."""
        import ray

        if self._owns and ray.is_initialized():
            ray.shutdown()
