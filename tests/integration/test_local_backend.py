"""The local backend end to end: real subprocesses in real memory cgroups, a real SQLite file."""

from __future__ import annotations

import time

import psutil
import pytest

from tests.integration.helpers import PY, STEPPER, manifest, wait_for

pytestmark = pytest.mark.slow


def test_hello_succeeds_with_logs(runtime):
    runtime.service.submit(manifest("hello", [PY, "-c", "print('hello jobsched')"]))
    st = wait_for(runtime.service, "hello")
    assert st.phase.value == "Succeeded"
    assert st.attempts[0].reason == "Completed" and st.attempts[0].exit_code == 0
    text, _, terminal = runtime.service.logs("default", "hello")
    assert "hello jobsched" in text and terminal


def test_gang_gets_rendezvous_environment(runtime):
    prog = ("import os; print(os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK'], "
            "os.environ['MASTER_ADDR'], os.environ['MASTER_PORT'], os.environ['JOBSCHED_JOB'], "
            "os.environ['JOBSCHED_ATTEMPT'], bool(os.environ['JOBSCHED_CHECKPOINT_DIR']))")
    runtime.service.submit(manifest("gang", [PY, "-c", prog], replicas=3))
    st = wait_for(runtime.service, "gang")
    assert st.phase.value == "Succeeded"
    lines = sorted(runtime.service.logs("default", "gang")[0].splitlines())
    ports = {ln.split()[6] for ln in lines}
    assert len(ports) == 1
    assert [ln.split()[2:5] for ln in lines] == [["0", "3", "0"], ["1", "3", "1"], ["2", "3", "2"]]
    assert all("gang 0 True" in ln for ln in lines)


def test_over_memory_is_oomkilled_with_peak_at_limit(runtime):
    if runtime.backend.enforcement() == "watchdog":
        pytest.skip("no writable memory cgroup here: covered by the watchdog test")
    runtime.service.submit(manifest("oom", [PY, "-c", "b=[bytearray(32<<20) for _ in range(64)]"],
                                    memory="200Mi", maxRetries=0))
    st = wait_for(runtime.service, "oom")
    a = st.attempts[0]
    assert st.phase.value == "Failed"
    assert a.reason == "OOMKilled" and a.exit_code == 137
    assert a.peak_memory_bytes >= 200 * 2**20
    assert a.enforcement in ("cgroup-v1", "cgroup-v2")


def test_watchdog_enforcement_when_cgroups_are_not_used(make_runtime):
    rt = make_runtime(enforcement_mode="watchdog")
    rt.service.submit(manifest("wd", [PY, "-c", "import time\nb=[]\nfor _ in range(40):\n b.append(bytearray(16<<20)); time.sleep(0.05)"],
                               memory="150Mi", maxRetries=0))
    st = wait_for(rt.service, "wd")
    assert st.attempts[0].reason == "OOMKilled"
    assert st.attempts[0].enforcement == "watchdog"


@pytest.mark.parametrize("mode", [None, "watchdog"])
def test_a_replica_that_exits_on_its_own_succeeds_with_its_peak(make_runtime, mode):
    # Under the watchdog (no writable cgroup) the shim reaped its child with poll() and then
    # failed in wait4 (ECHILD): every replica that exited on its own was Lost, "replica shim vanished".
    name = f"own-{mode or 'auto'}"
    rt = make_runtime(enforcement_mode=mode)
    rt.service.submit(manifest(name, [PY, "-c", "b = b'x' * (100 << 20); import time; time.sleep(0.5)"],
                               memory="1Gi", maxRetries=0))
    st = wait_for(rt.service, name)
    a = st.attempts[0]
    assert st.phase.value == "Succeeded", (a.reason, a.message)
    assert a.reason == "Completed" and a.enforcement == (mode or rt.backend.enforcement())
    assert 100 << 20 <= a.peak_memory_bytes < 400 << 20, a.peak_memory_bytes  # the 100 MB it touched


def test_one_failing_replica_stops_the_whole_gang(runtime):
    prog = "import os, sys, time\nif os.environ['RANK'] == '1': sys.exit(3)\ntime.sleep(60)"
    t0 = time.monotonic()
    runtime.service.submit(manifest("half", [PY, "-c", prog], replicas=2, maxRetries=0))
    st = wait_for(runtime.service, "half", timeout=30)
    assert time.monotonic() - t0 < 25
    assert st.phase.value == "Failed"
    assert st.attempts[0].reason == "Error" and st.attempts[0].exit_code == 3
    reps = {r.rank: r for r in st.attempts[0].replicas}
    assert reps[1].exit_code == 3 and reps[0].reason == "GangStopped"


def test_error_is_retried_within_max_retries(runtime):
    runtime.service.submit(manifest("flaky", [PY, "-c", "import sys; sys.exit(1)"], maxRetries=2))
    st = wait_for(runtime.service, "flaky")
    assert st.phase.value == "Failed"
    assert [a.reason for a in st.attempts] == ["Error"] * 3


def test_cancel_stops_running_replicas(runtime):
    runtime.service.submit(manifest("long", [PY, "-c", "import time; time.sleep(120)"]))
    st = wait_for(runtime.service, "long", phases=("Running",))
    deadline = time.monotonic() + 10
    while not st.attempts or not st.attempts[0].replicas or not st.attempts[0].replicas[0].pid:
        assert time.monotonic() < deadline
        time.sleep(0.1)
        st = runtime.service.get("default", "long")
    pid = st.attempts[0].replicas[0].pid
    runtime.service.cancel("default", "long")
    st = wait_for(runtime.service, "long", timeout=30)
    assert st.phase.value == "Cancelled"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_in_program_oom_is_told_apart(runtime):
    runtime.service.submit(manifest("memerr", [PY, "-c", "raise MemoryError('batch too big')"], maxRetries=0))
    st = wait_for(runtime.service, "memerr")
    assert st.attempts[0].reason == "InProgramOOM"


def test_oom_resizes_and_resumes_from_checkpoint(runtime):
    # Needs ~330 MiB at the end; declared 200 MiB under Fixed: OOMKilled once, resized, resumed.
    runtime.service.submit(manifest("grow", [PY, "-c", STEPPER, "10", "100", "24"], memory="200Mi"))
    st = wait_for(runtime.service, "grow", timeout=90)
    assert st.phase.value == "Succeeded", st.events
    assert [a.reason for a in st.attempts] == ["OOMKilled", "Completed"]
    first, second = st.attempts
    assert second.resources.limits["memory"] > first.resources.limits["memory"]
    assert second.resumed_from_checkpoint
    text, _, _ = runtime.service.logs("default", "grow", attempt=1)
    start_step = int(text.split("start step ")[1].split()[0])
    assert start_step > 0  # continued, not restarted
    assert any(e.reason == "Resized" for e in st.events)


def test_unbounded_growth_fails_with_cap_reason(runtime):
    runtime.service.submit(manifest("leak", [PY, "-c", STEPPER, "1000", "50", "40"], memory="128Mi",
                                    maxRetries=10, rightSizing={"maxMemory": "400Mi"}))
    st = wait_for(runtime.service, "leak", timeout=120)
    assert st.phase.value == "Failed" and st.reason == "MemoryCapReached"
    limits = [a.resources.limits["memory"] for a in st.attempts]
    assert len(limits) <= 5 and limits == sorted(set(limits))  # never the same size twice
    assert limits[-1] == 400 * 2**20


def test_preemption_requeues_lower_priority_gang(make_runtime):
    rt = make_runtime(nodes_config=[{"name": "v0", "cpu": 2, "memory": "1Gi"}])
    rt.service.submit(manifest("low", [PY, "-c", "import time; time.sleep(60)"], cpu="2", priority=0))
    wait_for(rt.service, "low", phases=("Running",))
    rt.service.submit(manifest("high", [PY, "-c", "print('hi')"], cpu="2", priority=10))
    st = wait_for(rt.service, "high", timeout=40)
    assert st.phase.value == "Succeeded"
    low = rt.service.get("default", "low")
    assert low.attempts[0].reason == "Preempted"
    assert any(e.reason == "Preempted" and "high" in e.message for e in low.events)
    wait_for(rt.service, "low", phases=("Running", "Admitted"), timeout=30)  # requeued, runs again
    rt.service.cancel("default", "low")


def test_node_pressure_eviction_requeues_at_the_same_size(make_runtime):
    import psutil

    # A kubelet-style hard eviction threshold 500 MiB below what is available now: a replica that
    # takes 1.5 GiB pushes the node under it and is evicted - not OOMKilled, not resized.
    threshold = psutil.virtual_memory().available - 500 * 2**20
    rt = make_runtime(eviction_hard_available_bytes=threshold)
    prog = ("import os, time\nif os.environ['JOBSCHED_ATTEMPT'] == '0':\n"
            "    b = bytearray(1536 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)\nprint('ok')")
    rt.service.submit(manifest("pressure", [PY, "-c", prog], memory="3Gi", maxRetries=0))
    st = wait_for(rt.service, "pressure", timeout=60)
    assert [a.reason for a in st.attempts] == ["Evicted", "Completed"], st.events
    assert st.phase.value == "Succeeded"  # eviction does not consume maxRetries (0 here)
    assert st.attempts[0].resources.limits["memory"] == st.attempts[1].resources.limits["memory"]


def test_history_shrinks_an_overprovisioned_family(runtime):
    job = [PY, "-c", "b = bytearray(40 << 20); b[::4096] = b'x' * len(b[::4096])"]
    runtime.service.submit(manifest("fam-1", job, memory="2Gi"))
    first = wait_for(runtime.service, "fam-1")
    assert first.phase.value == "Succeeded"
    m = manifest("fam-2", job, memory="2Gi", memoryPolicy="Auto")
    m["metadata"]["labels"] = {"jobsched.io/family": "fam-1"}
    runtime.service.submit(m)
    st = wait_for(runtime.service, "fam-2", timeout=120)
    assert st.phase.value == "Succeeded"
    peak = first.attempts[0].peak_memory_bytes
    assert st.sizing.recommended_memory is not None and st.sizing.recommended_memory < 2 * 2**30
    assert st.sizing.chosen_memory == st.sizing.recommended_memory >= peak
    assert st.attempts[0].resources.requests["memory"] == st.sizing.chosen_memory
