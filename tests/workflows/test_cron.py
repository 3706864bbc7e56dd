"""CronWorkflows: schedules (pure) and the controller's scheduler loop on an injected clock, so no
test waits for real minutes. Workflows it creates really run (local backend)."""

from __future__ import annotations

from datetime import UTC, datetime

from jobsched.workflows import cron
from jobsched.workflows.controller import WorkflowController
from jobsched.workflows.model import CronWorkflow


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def cw(schedule: str, **spec: object) -> dict:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow",
            "metadata": {"name": "nightly", "namespace": "default"},
            "spec": {"schedule": schedule, **spec, "workflowSpec": {
                "entrypoint": "main", "templates": [{"name": "main", "container": {
                    "image": "alpine", "command": ["python3", "-c", "import time; time.sleep(30)"]}}]}}}


def test_schedules_lists_ranges_steps_names_and_time_zones() -> None:
    c = CronWorkflow.model_validate(cw("*/20 9-10 * * mon-fri", timezone="Europe/Paris"))
    # 2026-11-27 is a Friday; 09:00 in Paris is 08:00 UTC
    got = [datetime.fromtimestamp(t, UTC).strftime("%a %H:%M") for t in
           cron.due(c, ts("2026-11-27T07:00:00"), ts("2026-11-28T12:00:00"))]
    assert got == ["Fri 08:00", "Fri 08:20", "Fri 08:40", "Fri 09:00", "Fri 09:20", "Fri 09:40"]
    assert cron.Schedule("@hourly").times(ts("2026-11-27T07:30:00"), ts("2026-11-27T09:00:00")) == [
        ts("2026-11-27T08:00:00"), ts("2026-11-27T09:00:00")]
    # day of month and day of week both restricted: either matches, as in cron
    both = cron.Schedule("0 0 1 * sun")
    assert both.matches(datetime(2026, 11, 1, tzinfo=UTC)) and both.matches(datetime(2026, 11, 8, tzinfo=UTC))


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def controller(tmp_path, runtime, clock: Clock) -> WorkflowController:
    base = WorkflowController.for_runtime(runtime)
    return WorkflowController(base.runner, runtime.store_path, tmp_path / "wf", clock=clock)


def test_scheduler_creates_workflows_and_honours_forbid_replace_and_deadline(tmp_path, wfh) -> None:
    clock = Clock(ts("2026-11-27T08:59:30"))
    ctl = controller(tmp_path, wfh.runtime, clock)
    try:
        ctl.submit_documents([cw("0 * * * *", concurrencyPolicy="Forbid")])
        ctl.reconcile()
        assert ctl.list() == []  # nothing due yet
        clock.t = ts("2026-11-27T09:00:05")
        ctl.reconcile()
        first = f"nightly-{int(ts('2026-11-27T09:00:00'))}"
        assert [w.name for w in ctl.list()] == [first]
        st = ctl.get("default", first)
        assert st.manifest["metadata"]["labels"]["workflows.argoproj.io/cron-workflow"] == "nightly"
        clock.t = ts("2026-11-27T10:00:01")  # the first still runs (30 s sleep): Forbid skips
        ctl.reconcile()
        assert [w.name for w in ctl.list()] == [first]
        assert ctl.crons.describe_all()[0]["skipped"][-1]["reason"] == f"concurrencyPolicy Forbid: {first} is running"

        ctl.submit_documents([cw("0 * * * *", concurrencyPolicy="Replace")])
        clock.t = ts("2026-11-27T11:00:01")
        ctl.reconcile()
        second = f"nightly-{int(ts('2026-11-27T11:00:00'))}"
        assert {w.name for w in ctl.list()} == {first, second}
        assert ctl.get("default", first).cancelled  # replaced

        ctl.submit_documents([cw("0 * * * *", startingDeadlineSeconds=10, suspend=False)])
        clock.t = ts("2026-11-27T15:00:30")  # the server was "down" past 12:00..15:00
        ctl.reconcile()
        assert len(ctl.list()) == 2  # 15:00 was missed by 30 s > startingDeadlineSeconds 10
        assert ctl.crons.describe_all()[0]["skipped"][-1] == {"scheduledTime": "2026-11-27T15:00:00Z",
                                                      "reason": "missed its starting deadline"}
    finally:
        for w in ctl.list():
            ctl.cancel(w.namespace, w.name)
        ctl.store.close()


def test_cron_workflows_and_templates_survive_a_restart(tmp_path, wfh) -> None:
    clock = Clock(ts("2026-11-27T08:00:00"))
    ctl = controller(tmp_path, wfh.runtime, clock)
    lib = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": "lib"},
           "spec": {"templates": [{"name": "t", "container": {"image": "a", "command": ["true"]}}]}}
    ctl.submit_documents([lib, cw("@daily")])
    ctl.store.close()
    again = controller(tmp_path, wfh.runtime, clock)
    try:
        assert [c["name"] for c in again.crons.describe_all()] == ["nightly"]
        assert (False, "lib") in again.templates
    finally:
        again.store.close()
