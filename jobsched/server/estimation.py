"""Admission sizing in the background: estimate (in a child process, so user code never runs in the
scheduler), consult the family's history, and choose the first attempt's memory.

Under Auto the job waits (reason EstimatingMemory) until sized; under Fixed it is admitted at once and
the estimate, when it arrives, only adds a warning if the declared size is below it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobsched.server import convert
from jobsched.server.controller import Controller
from jobsched.spec import quantity as q
from jobsched.spec.job import MemoryPolicy
from jobsched.spec.status import JobPhase
from jobsched.store import JobRow, Store

log = logging.getLogger("jobsched.estimation")
# The child imports the user's factory from the job's working directory, as `python -m` run there
# would; the user's prints go to stderr so that stdout carries one JSON line.
_CHILD = ("import contextlib, json, sys\n"
          "wd = sys.argv[1]\n"
          "if wd and wd not in sys.path:\n"
          "    sys.path.insert(0, wd)\n"
          "manifest = json.load(sys.stdin)\n"
          "from jobsched.rightsizing.estimator import EstimateError, estimate_manifest\n"
          "try:\n"
          "    with contextlib.redirect_stdout(sys.stderr):\n"
          "        out = estimate_manifest(manifest)\n"
          "except (EstimateError, ValueError) as e:\n"
          "    out = {'error': str(e)}\n"
          "print(json.dumps(out))\n")
_ROOT = str(Path(__file__).resolve().parents[2])  # so that the child imports this jobsched


def estimate_in_child(manifest: dict[str, Any], timeout: float,
                      working_dir: str | None = None) -> tuple[dict[str, Any] | None, str]:
    """Run the estimator on a manifest in a fresh interpreter whose working directory (and first
    sys.path entry) is the job's ``working_dir``. Returns (result, error)."""
    cwd = working_dir if working_dir and os.path.isdir(working_dir) else None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, cwd or ""], input=json.dumps(manifest),
                              text=True, capture_output=True, timeout=timeout, cwd=cwd, env=env)
    except subprocess.TimeoutExpired:
        return None, f"estimate timed out after {timeout:.0f} s"
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"estimator exited {proc.returncode}"
        return None, last.split("Error: ", 1)[-1][:400]
    if isinstance(out, dict) and out.get("error"):
        return None, str(out["error"])[:400]
    return (out if isinstance(out, dict) and out.get("peak_memory_bytes") else None), ""


def how_to_fix(error: str, factory: str | None, working_dir: str | None) -> str:
    """A failed estimate, with what to change so that the server can import the factory."""
    module = (factory or "").partition(":")[0]
    if "cannot import" not in error or not module:
        return f"memory estimate failed: {error}"
    if not working_dir:
        where = ("the job has no spec.template.workingDir: set it to the directory that holds "
                 f"{module.replace('.', '/')}.py")
    elif not os.path.isdir(working_dir):
        where = f"its workingDir {working_dir} does not exist on the server"
    else:
        where = (f"put {module.replace('.', '/')}.py in {working_dir} or point spec.template.workingDir "
                 "at the directory that holds it")
    return (f"memory estimate failed: module {module!r} could not be imported from {working_dir or '-'} "
            f"({error}); to fix: {where}, or correct spec.rightSizing.factory")


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
            todo = self.store.jobs(phases=(JobPhase.PENDING.value, JobPhase.ADMITTED.value,
                                           JobPhase.RUNNING.value), cancel_requested=False, unsized=True)
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
        from jobsched.rightsizing.estimator import names_factory
        from jobsched.rightsizing.history import recommend
        from jobsched.rightsizing.policy import admission_memory

        spec = convert.job_spec(job)
        auto = spec.spec.memory_policy is MemoryPolicy.AUTO
        rs = spec.spec.right_sizing
        wd = spec.spec.template.working_dir
        traceable = names_factory(spec)
        result, error = estimate_in_child(job.manifest, self.timeout, wd) if traceable else (None, "")
        estimate = int(result["peak_memory_bytes"]) if result else None
        peaks = [int(r["peak"]) for r in self.store.history(job.family)
                 if r["reason"] in ("Completed", "OOMKilled")]
        floor = q.memory_bytes(rs.min_memory) if rs.min_memory is not None else 64 * 2**20
        recommended = recommend(peaks, margin=rs.margin, floor=floor) if peaks else None
        declared = job.memory
        if auto and "default_memory" in job.sizing and (estimate or recommended):
            declared = 0  # nothing declared: the queue default only stands in for a missing size
        pinned = spec.spec.template.resources.memory_limit()
        cap = self.controller.max_node_memory()
        if rs.max_memory is not None:
            cap = min(cap, q.memory_bytes(rs.max_memory))
        d = admission_memory(declared=declared, estimate=estimate, recommended=recommended, margin=rs.margin,
                             pinned_limit=pinned, auto=auto, cap=cap)
        now = self.clock()
        sizing = {"estimated": estimate is not None, "estimated_memory": estimate,
                  "recommended_memory": recommended, "breakdown": (result or {}).get("breakdown", {}),
                  "why": d.reason,
                  # a CUDA job: bytes per replica per GPU (the container memory above is the host figure)
                  "device_estimate": (result or {}).get("device_peak_bytes")}
        fields: dict[str, Any] = {"sizing_ready": True}
        events = []
        if estimate is not None:
            events.append(("Normal", "Estimated", f"estimated peak memory {q.format_bytes(estimate)} per replica"))
        elif traceable:
            events.append(("Warning" if auto else "Normal", "EstimateFailed", how_to_fix(error, rs.factory, wd)))
        source = ""
        if auto and not traceable:
            source = (f" (no PyTorch factory to estimate: sized from the {len(peaks)} recorded run(s) of "
                      f"family {job.family})" if peaks else
                      f" (no PyTorch factory to estimate and no recorded run of family {job.family} yet)")
        if auto:
            if d.memory is None:
                fields.update(phase=JobPhase.FAILED.value, reason="Unschedulable", message=d.reason,
                              finished_at=now)
                events.append(("Warning", "Unschedulable", d.reason))
            else:
                fields.update(memory=d.memory, reason=None)
                sizing["chosen_memory"] = d.memory
                events.append(("Normal", "Sized", f"memory request {q.format_bytes(d.memory)}: {d.reason}{source}"))
        else:
            sizing["chosen_memory"] = job.memory or None
            if "default_memory" in job.sizing:
                sizing["why"] = f"memoryPolicy Fixed: queue default {q.format_bytes(job.memory)}"
        if d.warning:
            events.append(("Warning", "MemoryBelowEstimate" if not auto else "Sizing", d.warning))
        fresh = self.store.job_by_uid(job.uid)
        if fresh is None or fresh.phase != JobPhase.PENDING.value and auto:
            return
        if fresh.sizing.get("resized"):  # an attempt already ended and resized it: keep that size
            sizing.pop("chosen_memory", None)
            sizing.pop("why", None)
        fields["sizing"] = {**fresh.sizing, **sizing}  # keep what changed meanwhile (e.g. a back-off)
        with self.store.tx() as c:
            self.store.update_job(job.uid, conn=c, **fields)
            for type_, reason, msg in events:
                self.store.add_event(job.uid, now, type_, reason, msg, conn=c)
        self.controller.wake()
