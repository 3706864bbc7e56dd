"""Helpers for integration tests against a real Runtime (real processes, cgroups, SQLite)."""

from __future__ import annotations

import sys
import time
from typing import Any

from jobsched.spec.api import JobStatus

PY = sys.executable


def manifest(name: str, argv: list[str], memory: str = "256Mi", cpu: str = "100m", replicas: int = 1,
             **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "jobsched.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": {"replicas": replicas, **spec,
                     "template": {"command": argv, "resources": {"requests": {"cpu": cpu, "memory": memory}}}}}


def wait_for(service: Any, name: str, timeout: float = 60.0, phases: tuple[str, ...] | None = None) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        st = service.get("default", name)
        if (phases and st.phase.value in phases) or (not phases and st.phase.is_terminal()):
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} still {st.phase} after {timeout}s: {st.reason} {st.message}\n"
                                 + "\n".join(f"{e.reason}: {e.message}" for e in st.events))
        time.sleep(0.1)


# A training-like program: counts steps, checkpoints every step to $JOBSCHED_CHECKPOINT_DIR, resumes,
# and allocates MB_PER_STEP more memory each step (held), so it can outgrow its limit.
STEPPER = r"""
import os, sys, time, json
ck = os.environ["JOBSCHED_CHECKPOINT_DIR"]
path = os.path.join(ck, "state.json")
step = json.load(open(path))["step"] if os.path.exists(path) else 0
print("start step", step, "attempt", os.environ["JOBSCHED_ATTEMPT"], flush=True)
steps, mb, grow = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
hold = [bytearray(mb << 20)]
for s in range(step, steps):
    hold.append(bytearray(grow << 20))
    for b in hold[-1:]:
        b[::4096] = b"x" * len(b[::4096])
    if int(os.environ.get("RANK", "0")) == 0:
        tmp = path + ".tmp"
        json.dump({"step": s + 1}, open(tmp, "w")); os.replace(tmp, path)
    print("step", s + 1, flush=True)
    time.sleep(0.05)
print("done", flush=True)
"""
