"""Lazy fan-out in the engine: loop limits at run time, the server's live-step cap, a stored cancel
intent honoured after a restart, and queue default memory for steps that request none."""

from __future__ import annotations

import pytest
import yaml

from jobsched.workflows.controller import WorkflowController
from jobsched.workflows.loops import ENV_MAX_LIVE_STEPS, ENV_MAX_LOOP_ITEMS
from jobsched.workflows.store import WorkflowStore
from tests.workflows.conftest import PY

pytestmark = pytest.mark.slow

FROM_OUTPUT = f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: from-output}}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {{name: gen, template: gen}}
    - - {{name: each, template: echo, arguments: {{parameters: [{{name: x, value: "{{{{item}}}}"}}]}},
          withParam: "{{{{steps.gen.outputs.result}}}}"}}
  - name: gen
    script:
      image: python
      command: [{PY}]
      source: print(list(range(30)))
  - name: echo
    inputs: {{parameters: [{{name: x}}]}}
    container: {{image: alpine, command: [echo, "{{{{inputs.parameters.x}}}}"]}}
"""

SLEEPY = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: sleepy}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: s, template: nap, withSequence: {count: "50"}}
  - name: nap
    container: {image: alpine, command: [sleep, "30"]}
"""


def test_withparam_over_the_limit_fails_the_node_naming_the_field(make_harness, monkeypatch):
    monkeypatch.setenv(ENV_MAX_LOOP_ITEMS, "20")
    h = make_harness()
    st = h.run(FROM_OUTPUT, timeout=120)
    assert st.phase == "Error"
    loop = st.nodes["from-output[1].each"]
    assert loop.phase == "Error"
    assert "withParam: 30 items exceed the limit of 20 per loop" in (loop.message or "")
    assert not [n for n in st.nodes.values() if n.display_name.startswith("each(")]


def test_live_step_cap_and_cancel_intent_survive_a_restart(make_harness, monkeypatch):
    monkeypatch.setenv(ENV_MAX_LIVE_STEPS, "3")
    h = make_harness()
    st = h.ctl.submit(yaml.safe_load(SLEEPY))

    def running() -> list[str]:
        return [a.job for n in h.ctl.get(st.namespace, st.name).nodes.values() for a in n.attempts]

    deadline_jobs: list[str] = []
    for _ in range(600):  # condition: the cap's worth of step jobs created
        deadline_jobs = running()
        if len(deadline_jobs) >= 3:
            break
        h.ctl._wake.wait(0.1)
    assert len(deadline_jobs) == 3  # the cap, not the 50 items
    loop = h.ctl.get(st.namespace, st.name).nodes["sleepy[0].s"].loop
    assert loop is not None and loop.total == 50 and loop.next == 3

    # the server dies after storing a cancel intent but before acting on it
    h.ctl.stop()
    store = WorkflowStore(h.runtime.store_path)
    store.request_cancel(st.namespace, st.name, 0.0)
    store.close()
    ctl = WorkflowController.for_runtime(h.runtime, interval=0.05)
    h.ctl = ctl
    ctl.start()
    for _ in range(600):
        if ctl.get(st.namespace, st.name, archived=0).done:
            break
        ctl._wake.wait(0.1)
    final = ctl.get(st.namespace, st.name)
    assert final.phase == "Failed" and final.message == "Workflow terminated by user"
    jobs = h.runtime.service.list()
    steps = [j for j in jobs if j.name.startswith("sleepy-")]
    assert sorted(j.name for j in steps) == sorted(deadline_jobs)  # nothing expanded after it
    for j in steps:  # each stopped (the runtime carries cancellations out on its next tick)
        for _ in range(600):
            if h.runtime.service.get(j.namespace, j.name).phase.is_terminal():
                break
            ctl._wake.wait(0.1)
        assert h.runtime.service.get(j.namespace, j.name).phase.value == "Cancelled"


def test_steps_without_requests_get_the_queue_default_memory(wfh):
    st = wfh.run("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: defaults}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: alpine, command: ["true"]}
""")
    assert st.phase == "Succeeded", st.message
    job = st.nodes["defaults"].attempts[0].job
    js = wfh.runtime.service.get("default", job)
    assert js.sizing.default_memory == 1 << 30  # the default queue's defaultMemory
    assert js.attempts[0].resources.limits["memory"] == 1 << 30
