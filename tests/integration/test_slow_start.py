"""Starts run off the controller loop: a start that hangs delays only its own job.

The backend is the real local backend (real shims and processes); the only double is the slowness:
the start of a job named ``slow-*`` waits for the test to open a gate before it really starts.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from jobsched.backends.base import GangLaunch
from jobsched.backends.local.backend import LocalBackend
from jobsched.server.runtime import Runtime
from tests.integration.helpers import PY, manifest, wait_for


class GatedStartBackend(LocalBackend):
    """LocalBackend whose start of ``slow-*`` jobs blocks until ``gate`` is set."""

    gate: threading.Event
    entered: threading.Event

    def start(self, gang: GangLaunch) -> dict[int, dict[str, object]]:
        if gang.job_key.split("/", 1)[1].startswith("slow-"):
            self.entered.set()
            assert self.gate.wait(120), "the test never opened the gate"
        return super().start(gang)


@pytest.fixture
def gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def make_backend(name: str, **options: Any) -> GatedStartBackend:
        b = GatedStartBackend(**options)
        b.gate, b.entered = threading.Event(), threading.Event()
        return b

    monkeypatch.setattr("jobsched.server.runtime.make_backend", make_backend)

    def make(**runtime_options: Any) -> Runtime:
        rt = Runtime(tmp_path / "home", **runtime_options)
        rt.start()
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.backend.gate.set()  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            for j in rt.service.list():
                rt.service.cancel(j.namespace, j.name)
            rt.stop()


def until(cond: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := cond()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return got


def replica_pid(rt: Runtime, key: str, attempt: int = 0) -> int:
    pid_file = rt.backend._attempt_dir(key, attempt) / "rank-0.pid.json"  # type: ignore[attr-defined]
    until(pid_file.exists, f"{key} replica pid file")
    return int(json.loads(pid_file.read_text())["child_pid"])


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_unrelated_job_finishes_while_a_start_hangs(gated: Callable[..., Runtime]) -> None:
    rt = gated()
    backend: Any = rt.backend
    svc = rt.service
    svc.submit(manifest("slow-a", ["sleep", "300"]))
    until(backend.entered.is_set, "the slow start to begin")

    svc.submit(manifest("quick", ["true"]))
    assert wait_for(svc, "quick").phase.value == "Succeeded"
    # ... while the slow start is still pending: assumed (Admitted, attempt starting), not bound.
    slow = svc.get("default", "slow-a")
    assert not backend.gate.is_set()
    assert slow.phase.value == "Admitted" and len(slow.attempts) == 1
    assert rt.store.attempts(slow.uid or "")[0].state == "starting"
    # The API answers meanwhile: status, a list page, a cancel.
    assert {j.name for j in svc.list_page(limit=10).items} == {"slow-a", "quick"}
    svc.submit(manifest("other", ["sleep", "300"], queue="default"))
    assert svc.cancel("default", "other").name == "other"
    assert wait_for(svc, "other").phase.value == "Cancelled"

    backend.gate.set()  # the start completes: the job runs
    assert wait_for(svc, "slow-a", phases=("Running",)).phase.value == "Running"


def test_cancel_during_a_start_stops_the_replicas_once_it_returns(gated: Callable[..., Runtime]) -> None:
    rt = gated()
    backend: Any = rt.backend
    rt.service.submit(manifest("slow-c", ["sleep", "300"]))
    until(backend.entered.is_set, "the slow start to begin")
    rt.service.cancel("default", "slow-c")
    backend.gate.set()
    st = wait_for(rt.service, "slow-c")
    assert st.phase.value == "Cancelled", st
    pid = replica_pid(rt, "default/slow-c")
    until(lambda: gone(pid), "the cancelled replica to be stopped")


def test_start_past_its_timeout_is_unreserved_and_its_replicas_killed(gated: Callable[..., Runtime]) -> None:
    rt = gated(start_timeout=1.0)
    backend: Any = rt.backend
    rt.service.submit(manifest("slow-t", ["sleep", "300"], maxRetries=0))
    until(backend.entered.is_set, "the slow start to begin")
    st = wait_for(rt.service, "slow-t")
    assert st.phase.value == "Failed" and st.reason == "StartFailed", st
    assert "did not finish within 1 s" in (st.attempts[0].message or ""), st.attempts[0]
    assert st.attempts[0].reason == "StartFailed"
    # The quota it held is free again: another job runs.
    rt.service.submit(manifest("after", [PY, "-c", "pass"]))
    assert wait_for(rt.service, "after").phase.value == "Succeeded"
    # The start returns late: its replicas are killed, and the job stays Failed.
    backend.gate.set()
    pid = replica_pid(rt, "default/slow-t")
    until(lambda: gone(pid), "the late replica to be killed")
    assert rt.service.get("default", "slow-t").phase.value == "Failed"
