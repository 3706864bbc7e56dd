"""``--wait``: a live line (phase, elapsed time, attempt, memory) with every event printed as it
happens, ``--follow``: the logs streamed on stdout meanwhile; and the one concrete hint that ends
every failure."""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

from jobsched.cli.listing import fmt_bytes

if TYPE_CHECKING:  # pragma: no cover
    from jobsched.sdk.client import Client
    from jobsched.spec.api import JobStatus

POLL = 0.5


def live_line(st: JobStatus, started: float | None = None) -> str:
    a = st.attempts[-1] if st.attempts else None
    elapsed = time.time() - (started or st.created_at or time.time())
    parts = [f"{st.namespace}/{st.name}", st.phase.value, f"{int(elapsed) // 60}m{int(elapsed) % 60:02d}s"]
    if a is not None:
        parts.append(f"attempt {a.index}")
        if a.resources.requests.get("memory"):
            parts.append(f"memory {fmt_bytes(a.resources.requests['memory'])}")
        if a.reason:
            parts.append(f"last attempt: {a.reason}")
    if st.reason:
        parts.append(f"reason: {st.reason}")
    return "  ".join(parts)


def watch(client: Client, st: JobStatus, follow: bool = False) -> JobStatus:
    """Poll until the job ends. Events are printed on stderr as they come (so no phase goes unseen
    between two polls); on a terminal one live line is redrawn, else each change is one line."""
    out: Any = None
    spinner: Any = None
    if sys.stderr.isatty():
        from jobsched.cli.output import console

        out = console(stderr=True)
        spinner = out.status(live_line(st))
        spinner.start()
    seen, last, logs = 0, "", _Logs(client, st) if follow else None
    try:
        while True:
            st = client.get(st.name, st.namespace)
            for e in st.events[seen:]:
                text = f"{e.type:<8}{e.reason:<18}{e.message}"
                out.print(text, soft_wrap=True) if out is not None else print(text, file=sys.stderr, flush=True)
            seen = len(st.events)
            if logs is not None:
                logs.pump(st)
            line = live_line(st)
            if spinner is not None:
                spinner.update(line)
            elif line.split("  ", 3)[1::2] != last.split("  ", 3)[1::2]:  # phase or attempt changed
                print(line, file=sys.stderr, flush=True)
            last = line
            if st.phase.is_terminal():
                if logs is not None:
                    logs.pump(st)
                return st
            time.sleep(POLL)
    finally:
        if spinner is not None:
            spinner.stop()


class _Logs:
    """The latest attempt's logs from where they were last read; a new attempt starts over."""

    def __init__(self, client: Client, st: JobStatus) -> None:
        self.client, self.attempt, self.offset = client, -1, 0

    def pump(self, st: JobStatus) -> None:
        if not st.attempts:
            return
        idx = st.attempts[-1].index
        if idx != self.attempt:
            if self.attempt >= 0:
                self.pump_attempt(st, self.attempt)  # the rest of the attempt that just ended
            self.attempt, self.offset = idx, 0
            print(f"--- attempt {idx} ---", file=sys.stderr, flush=True)
        self.pump_attempt(st, idx)

    def pump_attempt(self, st: JobStatus, idx: int) -> None:
        text, offset, _ = self.client.log_chunk(st.name, self.offset if idx == self.attempt else 0,
                                                attempt=idx, namespace=st.namespace)
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
        if idx == self.attempt:
            self.offset = offset


def _mi(n: float) -> str:
    return f"{math.ceil(n / 2**20)}Mi"


def failure_hint(client: Client, st: JobStatus) -> str | None:
    """One concrete next step for a job that did not succeed; None for Succeeded and Cancelled."""
    if st.phase.value in ("Succeeded", "Cancelled", "Pending", "Admitted", "Running"):
        return None
    ooms = [a for a in st.attempts if a.reason in ("OOMKilled", "InProgramOOM")]
    last = st.attempts[-1] if st.attempts else None
    if last is not None and last.reason in ("OOMKilled", "InProgramOOM") or st.reason == "MemoryCapReached" and ooms:
        a = ooms[-1]
        limit = a.resources.limits.get("memory") or a.resources.requests.get("memory") or 0
        peak = max(a.peak_memory_bytes or 0, limit)
        head = f"hint: attempt {a.index} was OOM-killed at {fmt_bytes(peak)} (limit {fmt_bytes(limit)}); "
        auto = "let jobsched size it: --memory-policy Auto (spec.memoryPolicy: Auto)"
        if not st.sizing.suggested_memory:  # the server has no size to suggest (at the cap)
            return head + auto
        size = _mi(st.sizing.suggested_memory)  # the size jobsched's OOM recovery would ask for next
        return (head + f"ask for {size}, what a retry would get: "
                f"--memory {size} (resources.requests/limits.memory: {size}), or " + auto)
    if last is not None and last.reason in ("Error", "Lost", "StartFailed") or st.reason in ("Error", "BackoffLimitExceeded"):
        try:
            tail = client.logs(st.name, attempt=last.index if last else None, namespace=st.namespace)
        except Exception:  # noqa: BLE001 - the hint must not hide the failure
            tail = ""
        lines = tail.rstrip("\n").splitlines()[-5:]
        shown = "".join(f"\n  | {ln}" for ln in lines) if lines else "\n  | (no output)"
        return f"hint: the last lines of attempt {last.index if last else 0}:{shown}\n  " \
               f"all of it: jobsched logs {st.name}" + ("" if st.namespace == "default" else f" -n {st.namespace}")
    if st.reason in ("Unschedulable", "QuotaExceeded"):
        return "hint: jobsched submit --dry-run FILE (or run --dry-run) shows what fits and why"
    return f"hint: jobsched status {st.name}" + ("" if st.namespace == "default" else f" -n {st.namespace}") \
           + " shows every attempt and event"
