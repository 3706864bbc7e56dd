"""Deadlines, timeouts, exit handlers, parallelism, gang steps, cancel and restart."""

from __future__ import annotations

import time

import pytest

from tests.workflows.conftest import by_display

pytestmark = pytest.mark.slow

DEADLINES = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: deadlines}
spec:
  entrypoint: main
  activeDeadlineSeconds: 3
  onExit: report
  templates:
  - name: main
    dag:
      failFast: false
      tasks:
      - {name: pod-deadline, template: pod-deadline}
      - {name: timed-out, template: timed-out}
      - {name: forever, template: sleep}
      - {name: quick, template: ok, onExit: note}
  - name: pod-deadline
    activeDeadlineSeconds: 1
    container: {image: alpine, command: [sleep, "60"]}
  - name: timed-out
    timeout: 1s
    steps:
    - - {name: inner, template: sleep}
  - name: sleep
    container: {image: alpine, command: [sleep, "60"]}
  - name: ok
    container: {image: alpine, command: [echo, done]}
  - name: note
    container: {image: alpine, command: [echo, "exit handler of quick"]}
  - name: report
    container: {image: alpine, command: [echo, "workflow {{workflow.name}} {{workflow.status}}"]}
"""


def test_deadlines_timeout_and_exit_handlers(wfh):
    t0 = time.time()
    st = wfh.run(DEADLINES, timeout=40)
    assert time.time() - t0 < 20
    n = by_display(st)
    assert n["pod-deadline"].phase == "Failed"
    assert n["pod-deadline"].message == "Pod was active on the node longer than the specified deadline"
    assert n["timed-out"].phase == "Failed" and n["timed-out"].message == "timeout of 1s exceeded"
    assert n["inner"].phase == "Failed"
    assert n["forever"].phase == "Failed" and n["forever"].message == "Max duration limit exceeded"
    assert n["quick"].phase == "Succeeded"
    note = st.nodes["deadlines.quick.onExit"]
    assert note.outputs["result"] == "exit handler of quick" and note.started_at >= n["quick"].finished_at
    assert st.phase == "Failed"
    exit_node = st.nodes["deadlines.onExit"]
    assert exit_node.outputs["result"] == "workflow deadlines Failed"
    # the sleeping jobs were really stopped
    for name in ("pod-deadline", "inner", "forever"):
        job = wfh.runtime.service.get("default", n[name].attempts[0].job)
        assert job.phase.is_terminal() and job.phase.value != "Succeeded"


PARALLEL = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: parallel}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: one-at-a-time, template: serial}
    - - {name: two-at-a-time, template: pairs}
  - name: serial
    parallelism: 1
    steps:
    - - {name: s, template: work, withItems: [1, 2, 3]}
  - name: pairs
    parallelism: 2
    dag:
      tasks:
      - {name: p, template: work, withSequence: {count: "4"}}
  - name: work
    script:
      image: python
      command: [python]
      source: |
        import time
        time.sleep(0.3)
"""


def _max_overlap(nodes) -> int:
    events = sorted([(a.started_at, 1) for n in nodes for a in n.attempts]
                    + [(a.finished_at, -1) for n in nodes for a in n.attempts])
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def test_template_parallelism(wfh):
    st = wfh.run(PARALLEL)
    assert st.phase == "Succeeded", st.message
    serial = [n for n in st.nodes.values() if n.display_name.startswith("s(")]
    pairs = [n for n in st.nodes.values() if n.display_name.startswith("p(")]
    assert len(serial) == 3 and len(pairs) == 4
    assert _max_overlap(serial) == 1
    assert _max_overlap(pairs) == 2


def test_workflow_parallelism_and_gang_step(wfh):
    st = wfh.run("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: gang-wf}
spec:
  entrypoint: main
  parallelism: 1
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: gang}
      - {name: b, template: gang}
  - name: gang
    metadata:
      annotations: {jobsched.io/replicas: "2", jobsched.io/queue: default, jobsched.io/memory-policy: Fixed}
    container:
      image: pytorch
      command: [sh, -c, 'echo "$RANK/$WORLD_SIZE $MASTER_ADDR"']
      resources: {requests: {cpu: 100m, memory: 64Mi}}
""")
    assert st.phase == "Succeeded", st.message
    n = by_display(st)
    for t in "ab":
        assert n[t].outputs["result"] == "0/2 127.0.0.1"
        job = wfh.runtime.service.get("default", n[t].attempts[0].job)
        assert job.replicas == 2 and job.queue == "default"
    first, second = sorted((n["a"], n["b"]), key=lambda x: x.attempts[0].started_at)
    assert second.attempts[0].started_at >= first.attempts[0].finished_at


LONG = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: long}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: first, template: wait}
    - - {name: second, template: ok}
  - name: wait
    container: {image: alpine, command: [sh, -c, "sleep 1.5; echo waited"]}
  - name: ok
    container: {image: alpine, command: [echo, second]}
"""


def _wait_running(ctl, name: str, node: str) -> None:
    for _ in range(200):
        st = ctl.get("default", name)
        if node in st.nodes and st.nodes[node].phase == "Running":
            return
        time.sleep(0.05)
    raise AssertionError(f"{node} never ran")


def test_cancel_stops_the_running_step(wfh):
    wfh.ctl.submit(__import__("yaml").safe_load(LONG))
    _wait_running(wfh.ctl, "long", "long[0].first")
    st = wfh.ctl.cancel("default", "long")
    assert st.phase == "Failed" and st.message == "Workflow terminated by user"
    job = st.nodes["long[0].first"].attempts[0].job
    deadline = time.monotonic() + 20
    while not wfh.runtime.service.get("default", job).phase.is_terminal():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert wfh.runtime.service.get("default", job).phase.value == "Cancelled"
    assert "long[1].second" not in st.nodes


def test_server_restart_resumes_the_workflow(make_harness):
    h = make_harness()
    h.ctl.submit(__import__("yaml").safe_load(LONG))
    _wait_running(h.ctl, "long", "long[0].first")
    h.stop()  # the whole server goes away while 'first' runs
    h2 = make_harness()
    st = h2.ctl.wait("default", "long", 40)
    assert st.phase == "Succeeded", st.message
    first = st.nodes["long[0].first"]
    assert len(first.attempts) == 1 and first.outputs["result"] == "waited"
    assert st.nodes["long[1].second"].outputs["result"] == "second"
    assert [w.name for w in h2.ctl.list()] == ["long"]
    assert "first: waited" in h2.ctl.logs("default", "long")
