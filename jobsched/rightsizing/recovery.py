"""OOM recovery: the next attempt's memory after an OOM kill, chosen so that it succeeds in one retry.

An OOM kill at limit ``L`` only says "the job needs more than L". Growing by x1.5 from there takes
several kills for a job that needs 3x or 10x (200Mi → 300Mi → 450Mi → 675Mi). Instead, after an OOM
the next attempt is a **measuring retry** (like a Kubernetes Burstable pod): its *request*, what the
scheduler reserves, is the best estimate of the need, and its *limit* sits above the request, up to
what its node has free (and the queue's quota and ``rightSizing.maxMemory`` allow). The retry then
runs to completion in the common case, its true peak is measured, and that peak sizes the family's
later runs through the history. Node-pressure eviction still protects neighbours: a replica using
more than its request is the first to go (``backends/local/backend.py``), and is rescheduled with
its request raised to what it used.

The request of the retry (pure, here) is the largest of:

* ``previous x growth`` (1.5) and ``previous + 64 MiB``: never the same size twice;
* ``observed peak x (1 + margin)``;
* ``previous x 2`` when the timeline shows memory still rising at the kill and the retry cannot
  burst (a steady ramp seldom stops just above the limit);
* the estimator's figure ``x (1 + margin)``, when there is one, and the family's history
  recommendation: what is known before the first attempt still holds after it.

It is clamped once to the cap (the largest node, or ``maxMemory``): an OOM at the cap stops the job
with ``MemoryCapReached``.

**Leaks end early.** A job whose timeline grows steadily with no plateau up to the limit on two
attempts in a row, the second with at least 4x the room of the first (or on three attempts in a
row, whatever their room), at consistent rates (within 3x), ends ``MemoryLeak`` with the rate in
the message. An attempt killed too soon to have a shape (``short``, under a second) may stand in
that row, as long as the last one grew (its rate cannot be told from a handful of samples). A job that needs a lot but plateaus, or whose peak is a short spike, is never called a
leak: its measuring retry plateaus (or spikes) and completes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jobsched.rightsizing.policy import MIN_STEP, round_up
from jobsched.rightsizing.timeline import MemoryProfile, format_rate
from jobsched.spec.quantity import format_bytes

OOM_REASONS = ("OOMKilled", "InProgramOOM")
RAMP_GROWTH = 2.0  # growth after a kill mid-ramp when the retry cannot burst
LEAK_ROOM = 4.0  # two growing attempts are a leak only if the second had this much more room
LEAK_RATE_SPREAD = 3.0  # ... and their growth rates agree within this factor
MIN_BURST = 1.25  # a limit below request x this is not worth calling a measuring retry


@dataclass(frozen=True)
class EndedAttempt:
    """What an ended attempt tells about the job's memory (its peak replica's timeline)."""

    reason: str  # AttemptReason value
    request: int  # per-replica memory request, bytes
    limit: int | None  # the hard limit it ran under
    peak: int | None = None
    profile: MemoryProfile | None = None
    burst: bool = False  # ran as a measuring retry (limit above its request)

    @property
    def room(self) -> int:
        """How far it was allowed to grow: its limit (for an eviction, what it had reached)."""
        if self.reason == "Evicted" and self.peak:
            return self.peak
        return self.limit or self.request


@dataclass(frozen=True)
class Recovery:
    """``memory``: the next request (bytes per replica); None stops the job with ``stop_reason``."""

    memory: int | None
    reason: str
    stop_reason: str | None = None  # MemoryLeak | MemoryCapReached
    burst: bool = False  # the next attempt is a measuring retry
    capped: bool = False


def leak_verdict(attempts: Sequence[EndedAttempt]) -> str | None:
    """The evidence for a leak, or None (see the module docstring). An attempt killed too soon to
    have a shape (``short``) may stand in the tail; the growth rates compared are the growing ones."""
    tail: list[EndedAttempt] = []
    for a in reversed(attempts):
        # an eviction for node pressure while growing counts too: it grew past what the node had
        if (a.reason not in (*OOM_REASONS, "Evicted") or a.profile is None
                or a.profile.shape not in ("growing", "short")):
            break
        tail.append(a)
    tail.reverse()
    growing = [a for a in tail if a.profile is not None and a.profile.shape == "growing"]
    if not growing or tail[-1] is not growing[-1]:
        return None
    roomy = len(tail) >= 2 and tail[-1].room >= LEAK_ROOM * tail[0].room
    if not roomy and len(growing) < 3:
        return None
    rates = sorted(a.profile.growth_rate for a in growing if a.profile is not None)
    if rates[0] <= 0 or rates[-1] > LEAK_RATE_SPREAD * rates[0]:
        return None
    rate = sorted(a.profile.growth_rate for a in growing if a.profile is not None)[len(growing) // 2]
    return (f"+{format_rate(rate)} with no plateau in {len(tail)} attempts up to "
            f"{format_bytes(tail[-1].room)}")


def after_oom(attempts: Sequence[EndedAttempt], *, margin: float, growth: float, cap: int,
              cap_what: str = "largest node", estimate: int | None = None,
              recommended: int | None = None, burst: bool = True) -> Recovery:
    """The next attempt after ``attempts[-1]`` ended OOMKilled or InProgramOOM (host memory)."""
    if not attempts:
        raise ValueError("after_oom: no attempt")
    last = attempts[-1]
    prev = last.room
    label = "OOMKilled at the memory limit" if last.reason == "OOMKilled" else (
        "InProgramOOM (the program raised MemoryError)")
    seen = f" ({last.profile.describe()})" if last.profile is not None else (
        f", observed peak {format_bytes(last.peak)}" if last.peak else "")
    leak = leak_verdict(attempts)
    if leak is not None:
        return Recovery(None, f"memory leak: {leak}; the job is stopped rather than OOM-killed again "
                              "(if it really needs more, declare it with a larger request)",
                        stop_reason="MemoryLeak")
    if prev >= cap:
        return Recovery(None, f"{label} at {format_bytes(prev)}{seen}, which is already the cap "
                              f"({cap_what}, {format_bytes(cap)}): cannot grow further",
                        stop_reason="MemoryCapReached", capped=True)
    rising = last.profile is None or last.profile.shape in ("growing", "short", "irregular")
    factor = growth if burst or not rising else max(growth, RAMP_GROWTH)
    parts = {f"previous x {factor:g}": prev * factor, "previous + 64Mi": prev + MIN_STEP}
    if last.peak:
        parts[f"peak x {1 + margin:g}"] = last.peak * (1 + margin)
    if estimate:
        parts[f"estimate x {1 + margin:g}"] = estimate * (1 + margin)
    if recommended:
        parts["history"] = recommended
    why_key = max(parts, key=lambda k: parts[k])
    target = round_up(parts[why_key])
    mode = "measuring retry (limit above the request, up to the node's free memory)" if burst else (
        "fixed limit")
    why = f"{label} at {format_bytes(prev)}{seen}: next request {format_bytes(target)} ({why_key}), {mode}"
    if target > cap:
        return Recovery(cap, f"{why}, capped at the {cap_what} ({format_bytes(cap)}): last try", burst=burst,
                        capped=True)
    return Recovery(target, why, burst=burst)


def burst_limit(request: int, node_free: int, replicas_on_node: int, *, ceiling: int,
                queue_room: int | None = None) -> int:
    """The limit of a measuring retry's replica: its request plus its share of what the node has
    free once the gang is placed (and of the queue's remaining memory quota), at most ``ceiling``
    (the cap); ``queue_room``: this replica's share of the queue's remaining memory quota.
    Returns ``request`` when there is no room worth bursting into."""
    extra = max(node_free, 0) // max(replicas_on_node, 1)
    if queue_room is not None:  # already this replica's share of the queue's remaining quota
        extra = min(extra, max(queue_room, 0))
    limit = min(request + extra, max(ceiling, request))
    limit = limit // (2**20) * 2**20  # whole MiB
    return limit if limit >= request * MIN_BURST else request
