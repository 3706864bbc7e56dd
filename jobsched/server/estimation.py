"""Admission sizing in the background: estimate (in a child process, so user code never runs in the
scheduler), consult the family's history, and choose the first attempt's memory.

Under Auto the job waits (reason EstimatingMemory) until sized; under Fixed it is admitted at once and
the estimate, when it arrives, only adds a warning if the declared size is below it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from jobsched.server import convert
from jobsched.server.controller import Controller
from jobsched.spec import quantity as q
from jobsched.spec.job import MemoryPolicy
from jobsched.spec.status import JobPhase
from jobsched.store import JobRow, Store

log = logging.getLogger("jobsched.estimation")
_CHILD = ("import json, sys\n"
          "from jobsched.rightsizing.estimator import estimate_manifest\n"
          "print(json.dumps(estimate_manifest(json.load(sys.stdin))))\n")


def estimate_in_child(manifest: dict[str, Any], timeout: float) -> tuple[dict[str, Any] | None, str]:
    """Run the estimator on a manifest in a fresh interpreter. Returns (result, error)."""
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(manifest), text=True,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"estimate timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"estimator exited {proc.returncode}"
        return None, last.split("Error: ", 1)[-1][:400]
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, "estimator printed no result"
    return (out if isinstance(out, dict) and out.get("peak_memory_bytes") else None), ""


class Estimator:
    def __init__(self, store: Store, controller: Controller, clock: Callable[[], float],
                 timeout: float = 180.0) -> None:
        self.store, self.controller, self.clock, self.timeout = store, controller, clock, timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jobsched-estimator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            todo = [j for j in self.store.jobs(phases=(JobPhase.PENDING.value, JobPhase.ADMITTED.value,
                                                       JobPhase.RUNNING.value))
                    if "estimated" not in j.sizing and not j.cancel_requested]
            for job in todo:
                if self._stop.is_set():
                    return
                try:
                    self.size(job)
                except Exception:
                    log.exception("sizing %s failed", job.key)
                    self.store.update_job(job.uid, sizing={**job.sizing, "estimated": False},
                                          sizing_ready=True)
            self._stop.wait(0.2)

    def size(self, job: JobRow) -> None:
        from jobsched.rightsizing.history import recommend
        from jobsched.rightsizing.policy import admission_memory

        spec = convert.job_spec(job)
        auto = spec.spec.memory_policy is MemoryPolicy.AUTO
        rs = spec.spec.right_sizing
        result, error = estimate_in_child(job.manifest, self.timeout)
        estimate = int(result["peak_memory_bytes"]) if result else None
        peaks = [int(r["peak"]) for r in self.store.history(job.family)
                 if r["reason"] in ("Completed", "OOMKilled")]
        floor = q.memory_bytes(rs.min_memory) if rs.min_memory is not None else 64 * 2**20
        recommended = recommend(peaks, margin=rs.margin, floor=floor) if peaks else None
        declared = job.memory
        pinned = spec.spec.template.resources.memory_limit()
        cap = self.controller.max_node_memory()
        if rs.max_memory is not None:
            cap = min(cap, q.memory_bytes(rs.max_memory))
        d = admission_memory(declared=declared, estimate=estimate, recommended=recommended, margin=rs.margin,
                             pinned_limit=pinned, auto=auto, cap=cap)
        now = self.clock()
        sizing = {**job.sizing, "estimated": estimate is not None, "estimated_memory": estimate,
                  "recommended_memory": recommended, "breakdown": (result or {}).get("breakdown", {}),
                  "why": d.reason,
                  # a CUDA job: bytes per replica per GPU (the container memory above is the host figure)
                  "device_estimate": (result or {}).get("device_peak_bytes")}
        fields: dict[str, Any] = {"sizing_ready": True}
        events = []
        if estimate is None:
            events.append(("Normal", "NoEstimate", f"no memory estimate: {error or 'not a PyTorch job'}"))
        else:
            events.append(("Normal", "Estimated", f"estimated peak memory {q.format_bytes(estimate)} per replica"))
        if auto:
            if d.memory is None:
                fields.update(phase=JobPhase.FAILED.value, reason="Unschedulable", message=d.reason,
                              finished_at=now)
                events.append(("Warning", "Unschedulable", d.reason))
            else:
                fields.update(memory=d.memory, reason=None)
                sizing["chosen_memory"] = d.memory
                events.append(("Normal", "Sized", f"memory request {q.format_bytes(d.memory)}: {d.reason}"))
        else:
            sizing["chosen_memory"] = declared or None
        if d.warning:
            events.append(("Warning", "MemoryBelowEstimate" if not auto else "Sizing", d.warning))
        fields["sizing"] = sizing
        fresh = self.store.job_by_uid(job.uid)
        if fresh is None or fresh.phase != JobPhase.PENDING.value and auto:
            return
        with self.store.tx() as c:
            self.store.update_job(job.uid, conn=c, **fields)
            for type_, reason, msg in events:
                self.store.add_event(job.uid, now, type_, reason, msg, conn=c)
        self.controller.wake()
