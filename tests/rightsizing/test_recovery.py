"""Timeline shapes and the OOM-recovery policy (pure): tables of timelines and attempt histories."""

from __future__ import annotations

import numpy as np
import pytest

from jobsched.backends.local.sampler import Timeline
from jobsched.rightsizing.recovery import EndedAttempt, after_oom, burst_limit, leak_verdict
from jobsched.rightsizing.timeline import profile, sparkline, summary

MIB = 2**20


def tl(usage_mib, interval=0.2, limit=None, maxes=None):
    u = [int(x * MIB) for x in usage_mib]
    m = list(np.maximum.accumulate(u)) if maxes is None else [int(x * MIB) for x in maxes]
    return {"t": [round(i * interval, 3) for i in range(len(u))], "usage": u, "max": [int(x) for x in m],
            "failcnt": [0] * len(u), "interval": interval, "limit": limit}


RAMP_THEN_FLAT = [50 + 50 * i for i in range(10)] + [550] * 15
LEAK = [40 + 30 * i for i in range(30)]
SPIKE = [100] * 20 + [700] + [100] * 5
SPIKE_BETWEEN_SAMPLES = tl([100] * 25, maxes=[100] * 12 + [700] * 13)


@pytest.mark.parametrize("timeline,shape", [
    (tl(RAMP_THEN_FLAT), "plateau"),
    (tl(LEAK), "growing"),
    (tl(SPIKE), "spike"),
    (SPIKE_BETWEEN_SAMPLES, "spike"),
    (tl([100, 300, 500]), "short"),
    (tl([100, 400, 120, 450, 90, 500, 100, 480, 110, 300] * 2), "irregular"),
    (tl([*RAMP_THEN_FLAT, 3]), "plateau"),  # the exit's drop is not the shape
])
def test_shapes(timeline, shape):
    assert profile(timeline).shape == shape


def test_profile_figures():
    p = profile(tl(LEAK, limit=int(910 * MIB)))
    assert p.growth_rate == pytest.approx(150 * MIB, rel=0.02)  # 30 MiB per 0.2 s
    assert p.limit_hit_at == pytest.approx(5.8)
    assert p.peak == 910 * MIB and p.plateau is None
    assert "growing" in p.describe() and "150 MiB/s" in p.describe()
    flat = profile(tl(RAMP_THEN_FLAT))
    assert flat.plateau == 550 * MIB


def test_sparkline_and_summary():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7], width=8) == "▁▂▃▄▅▆▇█"
    s = summary(tl(RAMP_THEN_FLAT, limit=1100 * MIB))  # scaled to the limit: 550 of 1100 is half-way
    assert len(s["sparkline"]) == 24 and s["sparkline"].endswith("▄▄▄")
    assert s["shape"] == "plateau" and "plateau" in s["text"]
    burst = summary(tl(RAMP_THEN_FLAT, limit=20000 * MIB))  # a measuring retry: scaled to the peak
    assert burst["sparkline"].endswith("███")


def test_sampler_timeline_stays_compact_and_keeps_the_peak():
    t = Timeline(max_points=16)
    for i in range(1000):
        t.add(i * 0.2, 100 + (5000 if i == 777 else 0), 100, 0)
    d = t.to_dict()
    assert len(d["t"]) <= 17 and max(d["usage"]) == 5100
    assert d["interval"] > 0.2 * 32


def ended(reason, request, limit, shape=None, rate=0.0, peak=None, burst=False):
    from jobsched.rightsizing.timeline import MemoryProfile

    prof = None if shape is None else MemoryProfile(shape, limit or request, 5.0, rate, None, 4.0, 25)
    return EndedAttempt(reason, request * MIB, limit * MIB if limit else None, peak, prof, burst)


def test_never_the_same_size_and_a_measuring_retry():
    d = after_oom([ended("OOMKilled", 200, 200, "growing", 100 * MIB)], margin=0.15, growth=1.5,
                  cap=8 << 30)
    assert d.memory == 300 * MIB and d.burst and d.stop_reason is None
    assert "measuring retry" in d.reason and "growing" in d.reason


def test_estimate_and_history_raise_the_request():
    d = after_oom([ended("OOMKilled", 200, 200)], margin=0.15, growth=1.5, cap=8 << 30,
                  estimate=1000 * MIB, recommended=700 * MIB)
    assert d.memory == 1150 * MIB and "estimate" in d.reason


def test_without_burst_a_mid_ramp_kill_doubles():
    d = after_oom([ended("OOMKilled", 200, 200, "growing", 10 * MIB)], margin=0.15, growth=1.5,
                  cap=8 << 30, burst=False)
    assert d.memory == 400 * MIB and not d.burst and "fixed limit" in d.reason
    d = after_oom([ended("OOMKilled", 200, 200, "plateau")], margin=0.15, growth=1.5, cap=8 << 30, burst=False)
    assert d.memory == 300 * MIB


def test_cap():
    d = after_oom([ended("OOMKilled", 6000, 6000)], margin=0.15, growth=1.5, cap=8000 * MIB)
    assert d.memory == 8000 * MIB and d.capped and "last try" in d.reason
    d = after_oom([ended("OOMKilled", 8000, 8000)], margin=0.15, growth=1.5, cap=8000 * MIB)
    assert d.memory is None and d.stop_reason == "MemoryCapReached"


@pytest.mark.parametrize("history,leak", [
    # grew at the same rate with 8x the room: a leak after two attempts
    ([ended("OOMKilled", 256, 256, "growing", 150 * MIB), ended("OOMKilled", 384, 2048, "growing", 160 * MIB)],
     True),
    # the second attempt had only 1.5x the room: not enough evidence yet
    ([ended("OOMKilled", 256, 256, "growing", 150 * MIB), ended("OOMKilled", 384, 384, "growing", 150 * MIB)],
     False),
    # ... but a third growing attempt is
    ([ended("OOMKilled", 256, 256, "growing", 150 * MIB), ended("OOMKilled", 384, 384, "growing", 150 * MIB),
      ended("OOMKilled", 768, 768, "growing", 140 * MIB)], True),
    # a ramp that plateaued in the measuring retry is no leak
    ([ended("OOMKilled", 256, 256, "growing", 150 * MIB), ended("OOMKilled", 384, 2048, "plateau")], False),
    # a spike is no leak
    ([ended("OOMKilled", 256, 256, "spike"), ended("OOMKilled", 384, 2048, "spike")], False),
    # rates that disagree (5x) are two different things, not one leak
    ([ended("OOMKilled", 256, 256, "growing", 30 * MIB), ended("OOMKilled", 384, 2048, "growing", 150 * MIB)],
     False),
    # killed too soon to have a shape, then grew steadily through a measuring retry: a fast leak
    ([ended("OOMKilled", 256, 256, "short"), ended("OOMKilled", 384, 7800, "growing", 70 * MIB)], True),
    # ... at any rate: a handful of samples cannot tell it
    ([ended("OOMKilled", 256, 256, "short"), ended("OOMKilled", 384, 7800, "growing", 700 * MIB)], True),
    # a short kill then a growing attempt with little more room: not yet
    ([ended("OOMKilled", 256, 256, "short"), ended("OOMKilled", 384, 384, "growing", 70 * MIB)], False),
    # a short kill followed by a plateau is a big job, not a leak
    ([ended("OOMKilled", 256, 256, "short"), ended("OOMKilled", 384, 7800, "plateau")], False),
    # two short kills and no growing attempt: no evidence
    ([ended("OOMKilled", 256, 256, "short"), ended("OOMKilled", 384, 7800, "short")], False),
    # evicted while growing counts as growing up to what it reached
    ([ended("OOMKilled", 256, 256, "growing", 150 * MIB),
      ended("Evicted", 384, 20480, "growing", 150 * MIB, peak=2048 * MIB)], True),
])
def test_leak_verdict(history, leak):
    v = leak_verdict(history)
    assert (v is not None) == leak
    if leak:
        d = after_oom(history, margin=0.15, growth=1.5, cap=1 << 40)
        assert d.memory is None and d.stop_reason == "MemoryLeak"
        assert "MiB/s with no plateau in" in d.reason


@pytest.mark.parametrize("request_,free,n,ceiling,queue,expect", [
    (300, 4000, 1, 8000, None, 4300),
    (300, 4000, 2, 8000, None, 2300),  # two replicas on the node share what is free
    (300, 4000, 1, 1000, None, 1000),  # the cap (maxMemory, largest node)
    (300, 4000, 1, 8000, 500, 800),  # the queue's remaining quota
    (300, 30, 1, 8000, None, 300),  # no room worth bursting into: fixed
    (300, -100, 1, 8000, None, 300),
])
def test_burst_limit(request_, free, n, ceiling, queue, expect):
    got = burst_limit(request_ * MIB, free * MIB, n, ceiling=ceiling * MIB,
                      queue_room=None if queue is None else queue * MIB)
    assert got == expect * MIB
