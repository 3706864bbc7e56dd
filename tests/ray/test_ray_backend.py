"""The Ray backend on a real local Ray cluster: gangs as placement groups, replicas as detached
actors running real processes, OOM reporting, cancellation and re-adoption after a restart."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobsched.backends.base import GangLaunch, ReplicaEvent, ReplicaLaunch, StartError
from jobsched.spec.resources import Resources
from tests.ray.conftest import CLUSTER_CPUS, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

MiB = 2**20
PRINT_RANK = ("import os; print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], 'master', "
              "os.environ['MASTER_ADDR'] + ':' + os.environ['MASTER_PORT'], 'job', os.environ['JOBSCHED_JOB'])")


def manifest(name: str, code: str, replicas: int = 2, cpu: str = "500m", memory: str = "64Mi",
             **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"replicas": replicas, "maxRetries": 2, **spec,
                     "template": {"command": [sys.executable, "-c", code],
                                  "resources": {"requests": {"cpu": cpu, "memory": memory}}}}}


def phase(rt: Any, name: str, *wanted: str) -> Any:
    st = rt.service.get("default", name)
    return st if st.phase.value in wanted else None


def gang(backend: Any, uid: str, codes: list[str], cpu_milli: int = 500, memory: int = 64 * MiB,
         limit: int | None = 256 * MiB, placement: str = "Pack") -> GangLaunch:
    node = backend.nodes()[0].name
    env = {"PATH": os.environ["PATH"], "WORLD_SIZE": str(len(codes))}
    reps = [ReplicaLaunch(i, node, [sys.executable, "-c", c], {**env, "RANK": str(i)},
                          Resources(cpu_milli, memory), limit) for i, c in enumerate(codes)]
    return GangLaunch(f"default/{uid}", uid, 0, reps, placement=placement)


def exits(backend: Any, n: int, timeout: float = 60) -> dict[int, ReplicaEvent]:
    out: dict[int, ReplicaEvent] = {}

    def more() -> bool:
        out.update({e.rank: e for e in backend.poll() if e.kind == "exited"})
        return len(out) >= n

    wait_for(more, timeout, f"{n} replica exit(s)")
    return out


def live_groups(prefix: str = "jobsched-") -> list[str]:
    import ray

    return [pg["name"] for pg in ray.util.placement_group_table().values()
            if pg["name"].startswith(prefix) and pg["state"] != "REMOVED"]


def free_cpus() -> float:
    import ray

    return float(ray.available_resources().get("CPU", 0))


def test_runtime_with_local_ray_instance_runs_a_gang(tmp_path: Path) -> None:
    """Runtime(backend="ray", address=None) starts its own Ray instance and runs a 2-replica gang
    with the rendezvous environment; closing it ends that instance."""
    import ray

    from jobsched.server.runtime import Runtime

    assert not ray.is_initialized(), "another test left this process connected to Ray"
    rt = Runtime(tmp_path / "home", backend="ray", backend_options={"address": None, "num_cpus": 4})
    rt.start()
    try:
        nodes = rt.service.nodes()
        assert len(nodes) == 1 and "jobsched.io/ray-node-id" in rt.backend.nodes()[0].labels
        rt.service.submit(manifest("hello", PRINT_RANK))
        st = wait_for(lambda: phase(rt, "hello", "Succeeded", "Failed"), 120, "the gang to finish")
        assert st.phase.value == "Succeeded", st.events
        att = st.attempts[-1]
        assert att.enforcement == "ray" and [r.reason for r in att.replicas] == ["Completed", "Completed"]
        master = rt.backend.nodes()[0].labels["jobsched.io/ray-node-ip"]
        for rank in (0, 1):
            text, _, _ = rt.service.logs("default", "hello", rank=rank)
            assert f"rank {rank} of 2 master {master}:" in text and "job hello" in text
    finally:
        rt.stop()
    assert not ray.is_initialized()


def test_bad_options_name_the_field(tmp_path: Path) -> None:
    from jobsched.backends.ray.backend import RayBackend

    with pytest.raises(ValueError, match="num_cpus"):
        RayBackend(home=tmp_path, address="127.0.0.1:6379", num_cpus=2)
    with pytest.raises(ValueError, match="start_timeout"):
        RayBackend(home=tmp_path, address="127.0.0.1:6379", start_timeout=0)


@pytest.mark.parametrize("placement,replicas,cpu_milli", [("Pack", 3, 2000), ("StrictSpread", 2, 500)])
def test_gang_that_cannot_fit_leaves_no_placement_group(make_backend: Callable[..., Any], placement: str,
                                                        replicas: int, cpu_milli: int) -> None:
    """3 x 2 CPUs on a 4-CPU cluster, or STRICT_SPREAD over one node: StartError, and nothing of
    the gang is left reserved in Ray."""
    b = make_backend(start_timeout=2)
    g = gang(b, f"toobig-{placement.lower()}", ["pass"] * replicas, cpu_milli=cpu_milli, placement=placement)
    with pytest.raises(StartError, match="not ready within 2 s"):
        b.start(g)
    from jobsched.backends.ray.cluster import gang_name

    assert live_groups(gang_name(b.hid, g.job_uid, 0)) == []
    wait_for(lambda: free_cpus() == CLUSTER_CPUS, 10, "all CPUs free")


def test_replica_pinned_to_a_missing_node_is_a_start_error(make_backend: Callable[..., Any]) -> None:
    b = make_backend(start_timeout=2)
    g = gang(b, "nowhere", ["pass"])
    g.replicas[0] = ReplicaLaunch(0, "no-such-node", ["true"], {}, Resources(100, MiB), None)
    with pytest.raises(StartError, match="no-such-node"):
        b.start(g)


def test_logs_are_copied_from_the_node_and_the_watchdog_reports_oom(make_backend: Callable[..., Any]) -> None:
    """Where the node does not share the scheduler's home, logs are copied over Ray; without a
    cgroup the RSS watchdog kills a replica over its limit and reports OOMKilled with its peak."""
    b = make_backend(shared_home=False, enforcement_mode="watchdog")
    hog = "import time; x = b'x' * (160 * 2**20); time.sleep(5)"
    g = gang(b, "remote-logs", ["print('hello from rank 0')", hog], limit=96 * MiB)
    handles = b.start(g)
    assert all(h["shared"] is False for h in handles.values())
    assert not str(handles[0]["log_dir"]).startswith(str(b.home))
    ev = exits(b, 2)
    assert ev[0].reason == "Completed"
    assert ev[1].reason == "OOMKilled" and ev[1].peak_memory_bytes and ev[1].peak_memory_bytes > 96 * MiB
    assert "hello from rank 0" in b.read_logs("default/remote-logs", 0, 0)
    assert list(b.log_paths("default/remote-logs", 0)) == [0, 1]
    wait_for(lambda: live_groups(handles[0]["gang"]) == [], 10, "the placement group to be removed")


def test_replica_over_its_memory_is_oomkilled_and_resized(ray_address: str, tmp_path: Path) -> None:
    """A replica over its limit (memory cgroup inside the actor where writable, else the
    watchdog) is OOMKilled with its peak; right-sizing resizes it and the job then succeeds."""
    from jobsched.server.runtime import Runtime

    rt = Runtime(tmp_path / "home", backend="ray", backend_options={"address": ray_address})
    rt.start()
    try:
        code = "import time; x = b'x' * (120 * 2**20); time.sleep(0.5); print('fits')"
        rt.service.submit(manifest("grow", code, replicas=1, memory="100Mi"))
        st = wait_for(lambda: phase(rt, "grow", "Succeeded", "Failed"), 120, "the job to finish")
        assert st.phase.value == "Succeeded", st.events
        first, last = st.attempts[0], st.attempts[-1]
        assert first.reason == "OOMKilled" and first.replicas[0].reason == "OOMKilled"
        assert first.peak_memory_bytes and first.peak_memory_bytes >= 100 * MiB
        assert last.resources.limits["memory"] > 100 * MiB
        assert any(e.reason == "Resized" for e in st.events)
    finally:
        rt.stop()


def test_cancel_removes_the_placement_group_and_frees_resources(ray_address: str, tmp_path: Path) -> None:
    import psutil

    from jobsched.server.runtime import Runtime

    rt = Runtime(tmp_path / "home", backend="ray", backend_options={"address": ray_address})
    rt.start()
    try:
        rt.service.submit(manifest("sleepy", "import time; time.sleep(120)", cpu="1"))
        st = wait_for(lambda: (s := phase(rt, "sleepy", "Running")) and all(r.pid for r in s.attempts[-1].replicas)
                      and s, 60, "both replicas running")
        pids = [r.pid for r in st.attempts[-1].replicas]
        assert all(psutil.pid_exists(p) for p in pids)
        assert free_cpus() == CLUSTER_CPUS - 2 and len(live_groups()) == 1
        rt.service.cancel("default", "sleepy")
        wait_for(lambda: phase(rt, "sleepy", "Cancelled"), 30, "the job to be cancelled")
        wait_for(lambda: not live_groups() and free_cpus() == CLUSTER_CPUS, 20, "Ray resources freed")
        wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), 10, "the replica processes to exit")
    finally:
        rt.stop()


def test_restarted_scheduler_readopts_the_gang(ray_address: str, tmp_path: Path) -> None:
    """The scheduler stops (its Ray connection closes) while a gang runs; rank 0 finishes while
    nobody watches, rank 1 is still running when a new scheduler on the same home comes up. It
    finds both actors again by name and the job Succeeds in its first attempt."""
    import ray

    from jobsched.server.runtime import Runtime

    home = tmp_path / "home"
    rt = Runtime(home, backend="ray", backend_options={"address": ray_address})
    rt.start()
    code = "import os, time; time.sleep(1 if os.environ['RANK'] == '0' else 6); print('done', os.environ['RANK'])"
    rt.service.submit(manifest("survivor", code))
    wait_for(lambda: (s := phase(rt, "survivor", "Running")) and all(r.pid for r in s.attempts[-1].replicas),
             60, "the gang to run")
    rt.stop()
    assert not ray.is_initialized()
    rank0_result = home / "runs" / "default__survivor" / "attempt-0" / "rank-0.result.json"
    wait_for(rank0_result.exists, 30, "rank 0 to finish while the scheduler is down")
    # Only the actor (found again by name) still knows how rank 0 ended: no file to fall back on.
    rank0_result.unlink()
    rt2 = Runtime(home, backend="ray", backend_options={"address": ray_address})
    rt2.start()
    try:
        st = wait_for(lambda: phase(rt2, "survivor", "Succeeded", "Failed"), 30, "the job to finish")
        assert st.phase.value == "Succeeded", st.events
        assert len(st.attempts) == 1 and any(e.reason == "Readopted" for e in st.events)
        assert [r.reason for r in st.attempts[0].replicas] == ["Completed", "Completed"]
        assert "done 1" in rt2.service.logs("default", "survivor", rank=1)[0]
        wait_for(lambda: not live_groups(), 10, "the placement group to be removed")
    finally:
        rt2.stop()


def test_orphaned_placement_group_of_this_home_is_removed(make_backend: Callable[..., Any],
                                                          tmp_path: Path) -> None:
    """A gang created but never recorded (a crash in between) is cleaned up by the next server;
    another home's placement groups are left alone."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from jobsched.backends.ray.cluster import gang_name, home_id

    ours = gang_name(home_id(tmp_path / "home"), "crashed", 0)
    theirs = gang_name(home_id(tmp_path / "other"), "crashed", 0)
    b = make_backend()
    for name in (ours, theirs):
        assert placement_group([{"CPU": 0.1}], name=name, lifetime="detached").wait(10)
    b.poll()
    assert live_groups(ours) == [] and live_groups(theirs) == [theirs]
    remove_placement_group(ray.util.get_placement_group(theirs))


def test_dead_actor_is_classified_by_ray_exception() -> None:
    """How a replica whose actor died is reported, for Ray's own exception types (their messages
    as Ray 2.60's raylet words them): memory monitor → OOMKilled at least at the limit (so
    right-sizing grows it), node death → NodeLost, anything else → Lost; after stop() → its reason."""
    from ray.exceptions import ActorDiedError, NodeDiedError, OutOfMemoryError

    from jobsched.backends.ray.state import Gang, Replica, death_event

    rep = Replica("default/j", 0, 1, None, {}, Path("/nonexistent"), 128 * MiB, peak=90 * MiB)
    oom = OutOfMemoryError("1 worker(s) were killed due to the node running low on memory.")
    ev = death_event(rep, Gang("g", "default/j", 0), oom, 1.0)
    assert (ev.reason, ev.peak_memory_bytes, ev.exit_code) == ("OOMKilled", 128 * MiB, 137)
    assert death_event(rep, Gang("g", "default/j", 0), NodeDiedError("node died"), 1.0).reason == "NodeLost"
    assert death_event(rep, Gang("g", "default/j", 0), ActorDiedError(), 1.0).reason == "Lost"
    stopped = Gang("g", "default/j", 0, stop_reason="Cancelled")
    assert death_event(rep, stopped, ActorDiedError(), 1.0).reason == "Cancelled"


def test_adopt_reports_replicas_whose_actor_is_gone(make_backend: Callable[..., Any]) -> None:
    """After a restart, a replica whose actor no longer exists is NodeLost when its Ray node is
    gone too (requeued at the same size, e.g. the server's own local instance ended), else Lost."""
    b = make_backend()
    g = gang(b, "vanished", ["pass", "pass"])
    alive_node = b.nodes()[0].labels["jobsched.io/ray-node-id"]
    handles: dict[int, dict[str, object]] = {
        0: {"actor": "jobsched-none-r0", "node_id": "f" * 56, "ip": "10.9.9.9"},
        1: {"actor": "jobsched-none-r1", "node_id": alive_node},
    }
    events = {e.rank: e for e in b.adopt(g, handles)}
    assert events[0].reason == "NodeLost" and "10.9.9.9" in (events[0].message or "")
    assert events[1].reason == "Lost"
    assert b.poll() == []


def test_replica_process_dies_with_its_actor(make_backend: Callable[..., Any]) -> None:
    """An actor killed under a running replica (node trouble, `ray kill`): the replica's process
    does not outlive it, and the replica is reported Lost; the gang's placement group is removed."""
    import psutil
    import ray

    b = make_backend()
    g = gang(b, "killed", ["import time; time.sleep(120)"])
    handles = b.start(g)
    pid = int(handles[0]["pid"])  # type: ignore[call-overload]
    assert psutil.pid_exists(pid)
    ray.kill(ray.get_actor(str(handles[0]["actor"]), namespace="jobsched"), no_restart=True)
    ev = exits(b, 1)[0]
    assert ev.reason == "Lost" and "died" in (ev.message or "")
    wait_for(lambda: not psutil.pid_exists(pid), 10, "the replica process to die with its actor")
    wait_for(lambda: live_groups(str(handles[0]["gang"])) == [], 10, "the placement group to be removed")
