"""OOM recovery on real processes in real memory cgroups: one retry finds the size, leaks end early.

A virtual node of 2Gi bounds how far a measuring retry may burst, so a leak cannot take the machine.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from rich.console import Console

from tests.integration.helpers import PY, manifest, wait_for

pytestmark = pytest.mark.slow
HOG = str(Path(__file__).resolve().parents[2] / "benchmarks" / "programs" / "memhog.py")
MIB = 2**20
NODE = [{"name": "box", "cpu": 4, "memory": "2Gi"}]


@pytest.fixture
def rt(make_runtime):
    rt = make_runtime(nodes_config=NODE)
    if rt.backend.enforcement() == "watchdog":
        pytest.skip("needs a memory cgroup (v1 or v2): OOM kills are the cgroup's")
    return rt


def oom_kills(st) -> int:
    return sum(a.reason == "OOMKilled" for a in st.attempts)


def events(st):
    return [(e.reason, e.message) for e in st.events]


@pytest.mark.parametrize("name,need_mib,declared,max_kills", [
    ("third", 600, "200Mi", 1),  # declared at 1/3 of its need
    ("tenth", 1000, "100Mi", 2),  # declared at 1/10 of its need
])
def test_plateauing_job_finds_its_size_in_one_retry(rt, name, need_mib, declared, max_kills):
    rt.service.submit(manifest(name, [PY, HOG, "plateau", str(need_mib), "--ramp", "1.5", "--hold", "3"],
                               memory=declared, maxRetries=5))
    st = wait_for(rt.service, name, timeout=180)
    assert st.phase.value == "Succeeded", events(st)
    assert 1 <= oom_kills(st) <= max_kills
    last = st.attempts[-1]
    assert last.memory_mode == "burst"  # the measuring retry
    assert last.resources.limits["memory"] > last.resources.requests["memory"]
    assert last.peak_memory_bytes >= need_mib * MIB
    tl = last.memory_timeline
    assert tl is not None and tl.shape == "plateau" and tl.plateau >= need_mib * MIB, (
        tl and (tl.text, [u >> 20 for u in tl.usage]))
    assert len(tl.t) == len(tl.usage) >= 5
    killed = st.attempts[0].memory_timeline
    assert killed is not None and killed.limit_hit_at is not None
    resized = [m for r, m in events(st) if r == "Resized"]
    assert resized and "measuring retry" in resized[0]
    admitted = [m for r, m in events(st) if r == "Admitted"]
    assert "measuring retry" in admitted[-1]


def test_spike_is_sized_to_its_spike_and_the_family_learns_it(rt):
    argv = [PY, HOG, "spike", "80", "600", "--hold", "6"]
    rt.service.submit(manifest("spiky", argv, memory="256Mi", maxRetries=4,
                               rightSizing={"family": "spiky"}))
    st = wait_for(rt.service, "spiky", timeout=120)
    assert st.phase.value == "Succeeded", events(st)
    assert oom_kills(st) == 1
    assert st.attempts[-1].memory_timeline.shape == "spike"
    assert st.attempts[-1].peak_memory_bytes >= 600 * MIB
    # The next run of the family is sized from the measured spike and runs once.
    rt.service.submit(manifest("spiky-2", argv, memory="256Mi", memoryPolicy="Auto",
                               rightSizing={"family": "spiky"}))
    st2 = wait_for(rt.service, "spiky-2", timeout=120)
    assert st2.phase.value == "Succeeded", events(st2)
    assert len(st2.attempts) == 1
    assert st2.attempts[0].resources.requests["memory"] >= 600 * MIB
    # and `jobsched status` shows the timeline
    from jobsched.cli.output import timelines_table

    buf = io.StringIO()
    Console(file=buf, width=160).print(timelines_table(st))
    assert "spike" in buf.getvalue() and "limit hit at" in buf.getvalue()


def test_leak_ends_memory_leak_with_the_rate(rt):
    rt.service.submit(manifest("leaky", [PY, HOG, "leak", "200"], memory="256Mi", maxRetries=10))
    st = wait_for(rt.service, "leaky", timeout=180)
    assert st.phase.value == "Failed" and st.reason == "MemoryLeak", events(st)
    assert len(st.attempts) <= 3
    assert "MiB/s with no plateau in" in (st.message or "")
    assert all(a.memory_timeline.shape == "growing" for a in st.attempts)
    assert any(r == "MemoryLeak" for r, _ in events(st))


def test_big_plateau_is_not_a_leak(rt):
    rt.service.submit(manifest("big", [PY, HOG, "plateau", "1200", "--ramp", "3", "--hold", "3"],
                               memory="128Mi", maxRetries=5))
    st = wait_for(rt.service, "big", timeout=180)
    assert st.phase.value == "Succeeded", events(st)
    assert oom_kills(st) <= 2
    tl = st.attempts[-1].memory_timeline
    # Not a leak: never growing, no MemoryLeak event. (On a loaded machine the sampler can catch the
    # exit's partial free as an irregular tail, 1 CI dry run in about 10; the shapes themselves are
    # held to synthetic timelines in tests/rightsizing/test_recovery.py.)
    assert tl.shape in ("plateau", "irregular"), (tl.text, [u >> 20 for u in tl.usage][-12:])
    assert not any(r == "MemoryLeak" for r, _ in events(st)), events(st)


def test_node_pressure_evicts_the_replica_above_its_request_not_its_neighbour(make_runtime):
    """A measuring retry uses memory nobody reserved: under node pressure it goes first (the kubelet's
    ranking), even when its neighbour uses more in absolute terms but stays within its request; it is
    requeued with its request raised to what it used."""
    import psutil

    rt = make_runtime()
    if rt.backend.enforcement() == "watchdog":
        pytest.skip("needs a memory cgroup")
    hold = [PY, HOG, "plateau", "{mb}", "--ramp", "0.2", "--hold", "{hold}"]
    within = [a.format(mb=400, hold=60) for a in hold]
    rt.service.submit(manifest("within", within, memory="600Mi"))
    wait_for(rt.service, "within", phases=("Running",), timeout=60)
    above = [PY, "-c", "import os, sys, time\n"
                       "b = bytearray(250 << 20); b[::4096] = b'x' * len(b[::4096])\n"
                       "print('holding', flush=True)\n"
                       "time.sleep(60 if os.environ['JOBSCHED_ATTEMPT'] == '0' else 0.1)"]
    m = manifest("above", above, memory="64Mi", maxRetries=0)
    m["spec"]["template"]["resources"]["limits"] = {"memory": "1Gi"}  # burstable: limit over request
    rt.service.submit(m)
    wait_for(rt.service, "above", phases=("Running",), timeout=60)
    deadline = time.monotonic() + 60
    while "holding" not in rt.service.logs("default", "above")[0]:
        assert time.monotonic() < deadline, "the bursting job never allocated"
        time.sleep(0.1)
    rt.backend.eviction_hard_available_bytes = psutil.virtual_memory().available + 2**30  # pressure now
    st = wait_for(rt.service, "above", phases=("Pending", "Admitted", "Running", "Succeeded"), timeout=30)
    deadline = time.monotonic() + 30
    while not st.attempts or st.attempts[0].reason is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
        st = rt.service.get("default", "above")
    rt.backend.eviction_hard_available_bytes = None
    assert st.attempts[0].reason == "Evicted"
    assert rt.service.get("default", "within").phase.value == "Running"  # the neighbour was spared
    st = wait_for(rt.service, "above", timeout=60)
    assert st.phase.value == "Succeeded", events(st)
    assert st.attempts[1].resources.requests["memory"] >= 250 * MIB  # raised to what it used
    rt.service.cancel("default", "within")
